-- The WhatsApp Cloud API inbound webhook (POST /webhooks/whatsapp): routing messages to clinics and
-- queueing them for the chatbot. No bearer token here: the clinic comes from the receiving number.

-- name: queue_inbound_messages :many
-- All the messages of one delivery in one statement. `messages` is a JSON array of
-- {phone_number_id, message_id, sender (E.164), sent_at (unix seconds), message_type, body, payload}.
-- Each message's clinic is the one whose whatsapp_phone_number_id received it. A sender who is a
-- blocked patient of that clinic is dropped; everything else is inserted once per (clinic, message
-- id), so a retried delivery queues nothing new. The sender patients are locked FOR SHARE: a block
-- in progress makes us wait and then read its result, and a block that comes after us waits for
-- this commit and then deletes what we queued. One row per distinct message, with its outcome.
WITH incoming AS (
    SELECT DISTINCT ON (m.phone_number_id, m.message_id) m.*
      FROM jsonb_to_recordset(%(messages)s::jsonb)
           AS m(phone_number_id text, message_id text, sender text, sent_at bigint,
                message_type text, body text, payload jsonb)
     ORDER BY m.phone_number_id, m.message_id
), routed AS (
    SELECT c.id AS clinic_id, i.*
      FROM incoming i
      JOIN clinics c ON c.whatsapp_phone_number_id = i.phone_number_id
), senders AS (
    SELECT p.clinic_id, p.phone, p.id, p.is_blocked
      FROM patients p
     WHERE (p.clinic_id, p.phone) IN (SELECT clinic_id, sender FROM routed)
       FOR SHARE
), queued AS (
    INSERT INTO inbound_messages
           (clinic_id, message_id, sender_phone, patient_id, message_type, body, payload, sent_at)
    SELECT r.clinic_id, r.message_id, r.sender, s.id, r.message_type, r.body,
           coalesce(r.payload, '{}'::jsonb), to_timestamp(r.sent_at)
      FROM routed r
      LEFT JOIN senders s ON s.clinic_id = r.clinic_id AND s.phone = r.sender
     WHERE s.is_blocked IS NOT TRUE
    ON CONFLICT (clinic_id, message_id) DO NOTHING
    RETURNING clinic_id, message_id
)
SELECT i.phone_number_id,
       CASE WHEN r.clinic_id IS NULL THEN 'unknown_number'
            WHEN s.is_blocked THEN 'blocked'
            WHEN q.message_id IS NOT NULL THEN 'queued'
            ELSE 'duplicate' END AS outcome
  FROM incoming i
  LEFT JOIN routed r ON r.phone_number_id = i.phone_number_id AND r.message_id = i.message_id
  LEFT JOIN senders s ON s.clinic_id = r.clinic_id AND s.phone = r.sender
  LEFT JOIN queued q ON q.clinic_id = r.clinic_id AND q.message_id = r.message_id;
