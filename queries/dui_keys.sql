-- Re-encrypting DUIs under the newest key of DUI_KEYS (`flask --app app rotate-dui-keys`).
-- An operator command across all clinics: it walks rows by (clinic_id, id), the primary key.

-- name: count_duis_to_rotate :scalar
-- How many DUIs are still under another key than the newest (for the progress bar).
SELECT count(*)
  FROM patients
 WHERE dui_key_id IS NOT NULL AND dui_key_id <> %(newest_key_id)s;

-- name: lock_duis_to_rotate :many
-- The next batch after the last row seen, locked until the batch commits. SKIP LOCKED: a row a
-- request is writing right now is left for the next run instead of making us wait.
SELECT clinic_id::text AS clinic_id, id::text AS id, dui_ciphertext, dui_key_id
  FROM patients
 WHERE dui_key_id IS NOT NULL AND dui_key_id <> %(newest_key_id)s
   AND (%(after_clinic_id)s::uuid IS NULL
        OR (clinic_id, id) > (%(after_clinic_id)s::uuid, %(after_id)s::uuid))
 ORDER BY clinic_id, id
 LIMIT %(batch_size)s
   FOR UPDATE SKIP LOCKED;

-- name: rewrite_duis :execrows
-- One batch of new ciphertexts, in one statement.
UPDATE patients p
   SET dui_ciphertext = n.dui_ciphertext, dui_key_id = n.dui_key_id
  FROM unnest(%(clinic_ids)s::uuid[], %(ids)s::uuid[], %(ciphertexts)s::bytea[],
              %(key_ids)s::text[]) AS n (clinic_id, id, dui_ciphertext, dui_key_id)
 WHERE p.clinic_id = n.clinic_id AND p.id = n.id;
