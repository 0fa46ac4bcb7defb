-- Retention of the chatbot's messages (`flask --app app purge-messages`): message text is
-- health-related personal data, so what the chatbot has answered is deleted after N days.
-- Every statement is per clinic and works in small batches, each its own transaction.

-- name: clinics_with_expired_messages :many
-- Per clinic, how many answered messages are older than the cutoff (for the progress bar), and how
-- many older ones were never answered (kept: the chatbot still owes them an answer).
SELECT c.id::text AS clinic_id,
       (SELECT count(*) FROM inbound_messages m
         WHERE m.clinic_id = c.id AND m.processed_at IS NOT NULL
           AND m.received_at < %(cutoff)s) AS expired,
       (SELECT count(*) FROM inbound_messages m
         WHERE m.clinic_id = c.id AND m.processed_at IS NULL
           AND m.received_at < %(cutoff)s) AS unanswered
  FROM clinics c
 ORDER BY c.id;

-- name: purge_expired_messages :execrows
-- One batch: the clinic's oldest answered messages received before the cutoff. Rows someone holds
-- (a chatbot worker, another purge) are skipped, never waited for; the next run takes them.
DELETE FROM inbound_messages m
 WHERE (m.clinic_id, m.id) IN (
        SELECT e.clinic_id, e.id
          FROM inbound_messages e
         WHERE e.clinic_id = %(clinic_id)s
           AND e.processed_at IS NOT NULL
           AND e.received_at < %(cutoff)s
         ORDER BY e.received_at, e.id
         LIMIT %(batch)s
           FOR UPDATE SKIP LOCKED);

-- name: purge_expired_statuses :execrows
-- One batch of the clinic's delivery statuses received before the cutoff (they name the recipient).
DELETE FROM whatsapp_statuses s
 WHERE (s.clinic_id, s.id) IN (
        SELECT e.clinic_id, e.id
          FROM whatsapp_statuses e
         WHERE e.clinic_id = %(clinic_id)s AND e.received_at < %(cutoff)s
         ORDER BY e.received_at, e.id
         LIMIT %(batch)s
           FOR UPDATE SKIP LOCKED);

-- name: purge_expired_unrouted :execrows
-- Unrouted notifications hold message text too: the same cutoff applies to them.
DELETE FROM whatsapp_unrouted WHERE received_at < %(cutoff)s;
