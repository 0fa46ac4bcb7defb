-- Blocking and unblocking a patient (PATCH /api/patients/{id}/block). Every query filters on the
-- caller's clinic_id.

-- name: set_patient_blocked :one
-- The patient's row is locked first, so the answer says truly what it was before (was_blocked) and
-- a webhook delivery for this patient waits for us (it locks the same row FOR SHARE). Setting the
-- value it already has changes nothing, not even updated_at. `body` is the list item, built by the
-- same function as the list. No row: no such patient in this clinic.
WITH target AS (
    SELECT p.clinic_id, p.id, p.is_blocked AS was_blocked, patient_list_item(p) AS item
      FROM patients p
     WHERE p.clinic_id = %(clinic_id)s AND p.id = %(patient_id)s
       FOR NO KEY UPDATE
), changed AS (
    UPDATE patients p
       SET is_blocked = %(blocked)s
      FROM target t
     WHERE p.clinic_id = t.clinic_id AND p.id = t.id AND t.was_blocked <> %(blocked)s
    RETURNING patient_list_item(p) AS item
)
SELECT t.was_blocked,
       coalesce((SELECT item FROM changed), t.item)::text AS body
  FROM target t;

-- name: drop_waiting_messages :execrows
-- The blocked patient's messages still waiting in the chatbot's queue: linked to them, or from a
-- sender who resolves to them (their phone in any equivalent form, a number they changed to, their
-- user id). A statement of its own, after set_patient_blocked took the row lock: its fresh
-- snapshot also sees a message that a webhook delivery committed while we waited for that lock.
DELETE FROM inbound_messages m
 USING patients p
 WHERE p.clinic_id = %(clinic_id)s AND p.id = %(patient_id)s
   AND m.clinic_id = p.clinic_id
   AND m.processed_at IS NULL
   AND (m.patient_id = p.id
        OR m.sender_phone = ANY (whatsapp_phone_variants(p.phone))
        OR p.id IN (SELECT s.patient_id
                      FROM whatsapp_sender_patients(m.clinic_id, m.sender_phone, m.sender_user_id) s));
