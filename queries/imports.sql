-- The CSV import (POST /api/patients/import): validated rows are COPY'd into a temporary table and
-- upserted in one statement; DUIs, encrypted by the app once each patient's id is known, follow
-- through a second temporary table. Everything runs in the request's one transaction.

-- name: set_lock_timeout :exec
-- How long the next lock waits may take in this transaction ('0' = no limit, the default).
SELECT set_config('lock_timeout', %(timeout)s, true);

-- name: lock_clinic_imports :exec
-- Imports of one clinic take turns (until the transaction ends), so two at once both succeed and
-- their counts add up; other clinics' imports are not held up.
SELECT pg_advisory_xact_lock(hashtextextended('patients.import:' || %(clinic_id)s::text, 0));

-- name: stored_values_for_import :many
-- The stored name and email of the file's rows whose name or email the import would refuse:
-- such a cell is accepted when it is exactly what is stored for that phone (an export of what
-- another service wrote, imported back), and then brings nothing new.
SELECT p.phone, p.full_name, p.email
  FROM patients p
 WHERE p.clinic_id = %(clinic_id)s
   AND p.phone = ANY(%(phones)s::text[]);

-- name: create_import_rows :exec
-- One row per phone (the app merged duplicates, so the upsert never touches a key twice).
-- Only whether a row carries a DUI travels here, never the DUI itself.
CREATE TEMPORARY TABLE import_rows (
    full_name text NOT NULL,
    phone     text NOT NULL PRIMARY KEY,
    email     text,
    has_dui   boolean NOT NULL
) ON COMMIT DROP;

-- name: copy_import_rows :sql
COPY import_rows (full_name, phone, email, has_dui) FROM STDIN;

-- name: lock_known_phones_with_dui :many
-- The ids of the patients the file's DUIs go to, where they exist already: the app encrypts each
-- DUI for its patient's id before the upsert, so each row is written once. FOR UPDATE keeps these
-- rows (their id, phone and DUI) as they are until the import commits. The stored DUI comes along
-- so the app can tell a DUI the file repeats (sent no further) from a new one.
SELECT p.id::text AS id, p.phone, p.dui_ciphertext, p.dui_key_id
  FROM patients p
  JOIN import_rows r ON r.phone = p.phone
 WHERE p.clinic_id = %(clinic_id)s
   AND r.has_dui
 ORDER BY p.phone
   FOR UPDATE OF p;

-- name: create_import_duis :exec
-- Ciphertexts only, each bound to the id it was encrypted for: a clear DUI never enters a table,
-- temporary ones included.
CREATE TEMPORARY TABLE import_duis (
    phone          text NOT NULL PRIMARY KEY,
    patient_id     uuid NOT NULL,
    dui_ciphertext bytea NOT NULL,
    dui_key_id     text NOT NULL
) ON COMMIT DROP;

-- name: copy_import_duis :sql
COPY import_duis (phone, patient_id, dui_ciphertext, dui_key_id) FROM STDIN;

-- name: upsert_import_rows :one
-- New phones create patients, known phones update them. An empty cell (NULL here) never erases a
-- stored value; notes, no_show_count and is_blocked are not in the SET list, so never touched.
-- A known patient whose cells bring nothing new is not written at all (the WHERE ... IS DISTINCT
-- FROM): its updated_at stays, and it is neither created nor updated, so the app counts it as
-- unchanged. "Nothing new" is judged after the normalising a cell gets on its way in, on both
-- sides: a name without surrounding whitespace (the `space` parameter: the characters Python's
-- str.strip() takes off, as the import does off each cell), an email also without regard to case
-- (email-validator lower-cases the domain). So a stored " Ana" or "Ana@Example.COM" that another service wrote,
-- exported and imported back, is unchanged and keeps its stored spelling; a field that does
-- change takes the file's value, and the other field stays as stored.
-- A DUI arrives here only when it differs from the stored one (the app compared them).
-- A DUI is written only to the row whose id it was encrypted for (EXCLUDED.id = p.id); a phone
-- that another service created after lock_known_phones_with_dui ran comes back in dui_targets
-- ([[patient id, phone], …]) for the app to encrypt again and apply with apply_import_duis.
-- xmax = 0 on the returned version means the row was inserted, not updated.
WITH upserted AS (
    INSERT INTO patients AS p (id, clinic_id, full_name, phone, email, dui_ciphertext, dui_key_id)
    SELECT coalesce(d.patient_id, gen_random_uuid()), %(clinic_id)s::uuid, r.full_name, r.phone,
           r.email, d.dui_ciphertext, d.dui_key_id
      FROM import_rows r
      LEFT JOIN import_duis d ON d.phone = r.phone
     ORDER BY r.phone
    ON CONFLICT (clinic_id, phone) DO UPDATE
       SET full_name      = CASE WHEN btrim(EXCLUDED.full_name, %(space)s)
                                      IN ('', btrim(p.full_name, %(space)s))
                                 THEN p.full_name ELSE EXCLUDED.full_name END,
           email          = CASE WHEN EXCLUDED.email IS NULL
                                   OR lower(btrim(EXCLUDED.email, %(space)s))
                                      = lower(btrim(p.email, %(space)s))
                                 THEN p.email ELSE EXCLUDED.email END,
           dui_ciphertext = CASE WHEN EXCLUDED.dui_ciphertext IS NOT NULL AND EXCLUDED.id = p.id
                                 THEN EXCLUDED.dui_ciphertext ELSE p.dui_ciphertext END,
           dui_key_id     = CASE WHEN EXCLUDED.dui_ciphertext IS NOT NULL AND EXCLUDED.id = p.id
                                 THEN EXCLUDED.dui_key_id ELSE p.dui_key_id END
     WHERE btrim(EXCLUDED.full_name, %(space)s)
               NOT IN ('', btrim(p.full_name, %(space)s))
        OR (EXCLUDED.email IS NOT NULL
            AND lower(btrim(EXCLUDED.email, %(space)s))
                IS DISTINCT FROM lower(btrim(p.email, %(space)s)))
        OR EXCLUDED.dui_ciphertext IS NOT NULL  -- a new DUI (for another id: see dui_targets)
    RETURNING p.id, p.phone, (p.xmax = 0) AS created
)
SELECT count(*) FILTER (WHERE u.created)::int AS created,
       count(*) FILTER (WHERE NOT u.created)::int AS updated,
       coalesce(json_agg(json_build_array(u.id, u.phone)) FILTER (WHERE u.id <> d.patient_id),
                '[]'::json) AS dui_targets
  FROM upserted u
  LEFT JOIN import_duis d ON d.phone = u.phone;

-- name: clear_import_duis :exec
TRUNCATE import_duis;

-- name: apply_import_duis :execrows
UPDATE patients p
   SET dui_ciphertext = d.dui_ciphertext,
       dui_key_id     = d.dui_key_id
  FROM import_duis d
 WHERE p.clinic_id = %(clinic_id)s
   AND p.id = d.patient_id
   AND p.phone = d.phone;
