-- The WhatsApp Cloud API inbound webhook (POST /webhooks/whatsapp): who a sender is, queueing
-- messages for the chatbot, delivery statuses, and notifications no clinic could take. No bearer
-- token here: the clinic comes from the receiving number (clinics.whatsapp_phone_number_id).

-- name: lock_whatsapp_identities :execrows
-- Before a delivery writes its identities (in its own order: each may build on the one before),
-- it takes a transaction lock on every identity it will write (`identities`: a JSON array of
-- {phone_number_id, kind, value}), all in one order, so two deliveries naming the same people in
-- opposite orders queue up instead of deadlocking (one would fail with a 500, and Meta retry it).
-- The order is the lock ids' own: sorted by anything else, two colliding hashes could still cross.
SELECT pg_advisory_xact_lock(k.lock_id)
  FROM (SELECT DISTINCT
               hashtextextended('whatsapp.identity:' || i.phone_number_id || ':' || i.kind || ':'
                                || i.value, 0) AS lock_id
          FROM jsonb_to_recordset(%(identities)s::jsonb)
               AS i(phone_number_id text, kind text, value text)
         ORDER BY 1) k;

-- name: record_whatsapp_identity :one
-- One thing WhatsApp said about who a sender is: the person known by (from_phone, from_user_id) is
-- also (to_phone, to_user_id): a number change (user_changed_number), a new user id
-- (user_changed_user_id), or a user id seen beside a phone in a message (source 'message').
-- The new identities get the patient the old ones resolve to (when there is one, else what they
-- had) and the number the clinic knows this person by, inherited along the chain of changes.
-- Waiting messages of the new identities are not touched here (the chatbot's claim resolves their
-- sender again, blocking deletes them by the same rules): a delivery then never holds a queue row
-- while it waits for a patient's lock, the order a block takes the other way round. No row: no
-- clinic has this phone_number_id.
WITH fact AS (
    SELECT c.id AS clinic_id,
           %(from_phone)s::text AS from_phone, %(from_user_id)s::text AS from_user_id,
           %(to_phone)s::text AS to_phone, %(to_user_id)s::text AS to_user_id,
           %(source)s::text AS source
      FROM clinics c
     WHERE c.whatsapp_phone_number_id = %(phone_number_id)s
), person AS (
    SELECT f.*,
           (SELECT s.patient_id
              FROM whatsapp_sender_patients(f.clinic_id, f.from_phone, f.from_user_id) s
             ORDER BY s.rank, s.patient_id
             LIMIT 1) AS patient_id,
           whatsapp_known_phone(f.clinic_id, f.from_phone, f.from_user_id) AS known_phone
      FROM fact f
), saved AS (
    INSERT INTO whatsapp_identities AS i (clinic_id, kind, value, patient_id, phone, source)
    SELECT p.clinic_id, v.kind, v.value, p.patient_id, p.known_phone, p.source
      FROM person p
     CROSS JOIN LATERAL (VALUES ('wa_id', p.to_phone), ('user_id', p.to_user_id)) AS v (kind, value)
     WHERE v.value IS NOT NULL
    ON CONFLICT (clinic_id, kind, value) DO UPDATE
       SET patient_id = coalesce(EXCLUDED.patient_id, i.patient_id),
           phone = coalesce(EXCLUDED.phone, i.phone),
           source = EXCLUDED.source,
           updated_at = now()
    RETURNING i.kind
)
SELECT p.clinic_id::text AS clinic_id, p.patient_id::text AS patient_id,
       (SELECT count(*) FROM saved) AS identities
  FROM person p;

-- name: queue_inbound_messages :many
-- All the messages of one delivery in one statement. `messages` is a JSON array of
-- {phone_number_id, message_id, sender (E.164 or null), user_id (BSUID or null), name, username,
-- sent_at (unix seconds), message_type, body, payload}. Each message's clinic is the one whose
-- whatsapp_phone_number_id received it. The sender is resolved by whatsapp_sender_patients() (its
-- phone, the forms equivalent to it, its user id and number changes); a sender who is a blocked
-- patient of that clinic, by any of these, is dropped. Everything else is inserted once per
-- (clinic, message id), so a retried delivery queues nothing new, linked to the best match.
-- The sender's patients are locked FOR SHARE: a block in progress makes us wait and then read its
-- result, and a block that comes after us waits for this commit and then deletes what we queued.
-- One row per distinct message, with its outcome.
WITH incoming AS (
    SELECT DISTINCT ON (m.phone_number_id, m.message_id) m.*
      FROM jsonb_to_recordset(%(messages)s::jsonb)
           AS m(phone_number_id text, message_id text, sender text, user_id text, name text,
                username text, sent_at bigint, message_type text, body text, payload jsonb)
     ORDER BY m.phone_number_id, m.message_id
), routed AS (
    SELECT c.id AS clinic_id, i.*
      FROM incoming i
      JOIN clinics c ON c.whatsapp_phone_number_id = i.phone_number_id
), matches AS (
    SELECT r.clinic_id, r.message_id, s.patient_id, s.rank
      FROM routed r
     CROSS JOIN LATERAL whatsapp_sender_patients(r.clinic_id, r.sender, r.user_id) s
), senders AS (
    SELECT p.clinic_id, p.id, p.is_blocked
      FROM patients p
     WHERE (p.clinic_id, p.id) IN (SELECT clinic_id, patient_id FROM matches)
       FOR SHARE
), judged AS (
    SELECT r.clinic_id, r.message_id,
           coalesce(bool_or(s.is_blocked), false) AS blocked,
           (array_agg(s.id ORDER BY m.rank, s.id) FILTER (WHERE s.id IS NOT NULL))[1] AS patient_id
      FROM routed r
      LEFT JOIN matches m ON m.clinic_id = r.clinic_id AND m.message_id = r.message_id
      LEFT JOIN senders s ON s.clinic_id = m.clinic_id AND s.id = m.patient_id
     GROUP BY r.clinic_id, r.message_id
), queued AS (
    INSERT INTO inbound_messages
           (clinic_id, message_id, sender_phone, sender_user_id, sender_name, sender_username,
            patient_id, message_type, body, payload, sent_at)
    SELECT r.clinic_id, r.message_id, r.sender, r.user_id, r.name, r.username,
           j.patient_id, r.message_type, r.body, coalesce(r.payload, '{}'::jsonb),
           to_timestamp(r.sent_at)
      FROM routed r
      JOIN judged j ON j.clinic_id = r.clinic_id AND j.message_id = r.message_id
     WHERE NOT j.blocked
    ON CONFLICT (clinic_id, message_id) DO NOTHING
    RETURNING clinic_id, message_id
)
SELECT i.phone_number_id,
       CASE WHEN r.clinic_id IS NULL THEN 'unknown_number'
            WHEN j.blocked THEN 'blocked'
            WHEN q.message_id IS NOT NULL THEN 'queued'
            ELSE 'duplicate' END AS outcome
  FROM incoming i
  LEFT JOIN routed r ON r.phone_number_id = i.phone_number_id AND r.message_id = i.message_id
  LEFT JOIN judged j ON j.clinic_id = r.clinic_id AND j.message_id = r.message_id
  LEFT JOIN queued q ON q.clinic_id = r.clinic_id AND q.message_id = r.message_id;

-- name: record_whatsapp_statuses :execrows
-- The delivery statuses of one delivery (`statuses`: a JSON array of {phone_number_id,
-- message_id, status, recipient_phone, recipient_user_id, status_at, error_code, error_title,
-- error_details, payload}), each kept once per (clinic, message, status): Meta's retries add
-- nothing. Statuses for a number no clinic has are left to the unrouted notifications.
INSERT INTO whatsapp_statuses
       (clinic_id, message_id, status, recipient_phone, recipient_user_id, status_at,
        error_code, error_title, error_details, payload)
SELECT c.id, s.message_id, s.status, s.recipient_phone, s.recipient_user_id,
       to_timestamp(s.status_at), s.error_code, s.error_title, s.error_details,
       coalesce(s.payload, '{}'::jsonb)
  FROM jsonb_to_recordset(%(statuses)s::jsonb)
       AS s(phone_number_id text, message_id text, status text, recipient_phone text,
            recipient_user_id text, status_at bigint, error_code int, error_title text,
            error_details text, payload jsonb)
  JOIN clinics c ON c.whatsapp_phone_number_id = s.phone_number_id
ON CONFLICT (clinic_id, message_id, status) DO NOTHING;

-- name: keep_unrouted_notifications :many
-- The changes of a delivery (`changes`: a JSON array of {phone_number_id, value}) whose number no
-- clinic has, kept as Meta sent them so an operator who sets the number later loses nothing.
INSERT INTO whatsapp_unrouted (phone_number_id, value)
SELECT u.phone_number_id, u.value
  FROM jsonb_to_recordset(%(changes)s::jsonb) AS u(phone_number_id text, value jsonb)
 WHERE NOT EXISTS (SELECT 1 FROM clinics c WHERE c.whatsapp_phone_number_id = u.phone_number_id)
RETURNING phone_number_id;

-- name: trim_unrouted_notifications :execrows
-- Only the newest `keep` unrouted notifications stay: a number nobody ever sets cannot fill the disk.
DELETE FROM whatsapp_unrouted
 WHERE id < (SELECT u.id FROM whatsapp_unrouted u ORDER BY u.id DESC OFFSET %(keep)s - 1 LIMIT 1);

-- name: unrouted_summary :many
-- What is kept, per receiving number: how many, since when, and whether a clinic has it by now.
SELECT u.phone_number_id, count(*) AS notifications, min(u.received_at) AS first_at,
       max(u.received_at) AS last_at,
       EXISTS (SELECT 1 FROM clinics c WHERE c.whatsapp_phone_number_id = u.phone_number_id) AS routable
  FROM whatsapp_unrouted u
 GROUP BY u.phone_number_id
 ORDER BY max(u.received_at) DESC;

-- name: lock_routable_unrouted :many
-- The kept notifications whose number a clinic has by now, oldest first, locked for the replay.
SELECT u.id, u.value
  FROM whatsapp_unrouted u
 WHERE EXISTS (SELECT 1 FROM clinics c WHERE c.whatsapp_phone_number_id = u.phone_number_id)
 ORDER BY u.id
   FOR UPDATE SKIP LOCKED;

-- name: forget_unrouted :execrows
DELETE FROM whatsapp_unrouted WHERE id = ANY (%(ids)s::bigint[]);
