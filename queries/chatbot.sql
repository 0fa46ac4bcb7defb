-- The chatbot's side of inbound_messages: workers claim waiting messages under a lease, answer
-- them, and mark them processed. Several workers at once never get the same message: the claim
-- locks rows FOR UPDATE SKIP LOCKED and a claimed row stays out of every other claim until its
-- lease ends. A worker that dies never completes, so its lease runs out and the message comes back.
-- Every query is per clinic; a worker learns which clinics have work from LISTEN inbound_messages
-- (the payload is the clinic id) or from waiting_clinics.

-- name: waiting_clinics :many
-- The clinics with a message a worker could claim now (waiting, not parked, lease free or run
-- out): where a worker starts, and what it sweeps when no notification came for a while (run-out
-- leases and retry delays notify nobody). Each clinic is asked on its own, by clinic_id.
SELECT c.id::text AS clinic_id
  FROM clinics c
 WHERE EXISTS (SELECT 1
                 FROM inbound_messages m
                WHERE m.clinic_id = c.id
                  AND m.processed_at IS NULL
                  AND m.failed_at IS NULL
                  AND (m.claimed_until IS NULL OR m.claimed_until <= now()))
 ORDER BY c.id;

-- name: claim_inbound_messages :many
-- Up to `limit` waiting messages of the clinic, oldest first, for one worker for `lease_seconds`.
-- Rows another worker is claiming right now are skipped (SKIP LOCKED), rows it has claimed are
-- excluded by their lease (PostgreSQL re-checks the condition on the row it locks, so a claim that
-- committed a moment ago is seen). Each claim gets a new claim_token: only its holder can complete
-- or release the message, so a worker whose lease ran out and was taken over cannot finish it too.
-- The rows taken are judged here, and only they, so a claim costs the same whatever the backlog:
-- - the block, checked again: a sender who is by now a blocked patient (blocked since the message
--   arrived, or linked to one since: a number change, a user id seen beside a blocked phone) is
--   never handed out; the message is deleted, as blocking would have;
-- - a message tried `max_attempts` times already and never answered (the chatbot fails on it, or
--   dies on it and its lease runs out) is parked (failed_at), out of every claim, for an operator.
--   Attempts, not claims: every row of a batch is claimed, but only the ones a worker reached
--   (still_claimed) were tried, so the messages behind one that kills its worker are not parked;
-- - the others are leased, and the patient the sender resolves to now is filled in when the
--   message had none (a user id linked after it arrived).
-- One row always: `looked` is how many rows were taken; the claimed messages' columns are null
-- when none was (all blocked or parked: the caller claims again).
WITH picked AS (
    SELECT m.clinic_id, m.id,
           whatsapp_sender_blocked(m.clinic_id, m.sender_phone, m.sender_user_id, m.patient_id)
               AS blocked,
           m.attempts >= %(max_attempts)s AS spent,
           (SELECT s.patient_id
              FROM whatsapp_sender_patients(m.clinic_id, m.sender_phone, m.sender_user_id) s
             ORDER BY s.rank, s.patient_id
             LIMIT 1) AS resolved
      FROM inbound_messages m
     WHERE m.clinic_id = %(clinic_id)s
       AND m.processed_at IS NULL
       AND m.failed_at IS NULL
       AND (m.claimed_until IS NULL OR m.claimed_until <= now())
     ORDER BY m.received_at, m.id
     LIMIT %(limit)s
       FOR UPDATE OF m SKIP LOCKED
), dropped AS (
    DELETE FROM inbound_messages m
     USING picked p
     WHERE m.clinic_id = p.clinic_id AND m.id = p.id AND p.blocked
), parked AS (
    UPDATE inbound_messages m
       SET failed_at = now(), claimed_until = NULL, claim_token = NULL, claimed_by = NULL
      FROM picked p
     WHERE m.clinic_id = p.clinic_id AND m.id = p.id AND NOT p.blocked AND p.spent
), claimed AS (
    UPDATE inbound_messages m
       SET claim_token = gen_random_uuid(),
           claimed_by = %(worker)s,
           claimed_until = now() + make_interval(secs => %(lease_seconds)s),
           claim_count = m.claim_count + 1,
           patient_id = coalesce(m.patient_id, p.resolved)
      FROM picked p
     WHERE m.clinic_id = p.clinic_id AND m.id = p.id AND NOT p.blocked AND NOT p.spent
    RETURNING m.*
)
SELECT (SELECT count(*) FROM picked) AS looked,
       m.clinic_id::text AS clinic_id, m.id, m.message_id, m.sender_phone, m.sender_user_id,
       m.sender_name, m.sender_username, m.patient_id::text AS patient_id, m.message_type,
       m.body, m.payload, m.sent_at, m.received_at, m.claim_token::text AS claim_token,
       m.claimed_until, m.claim_count, m.attempts
  FROM (SELECT 1) one
  LEFT JOIN claimed m ON true;

-- name: complete_inbound_message :execrows
-- The worker answered: processed_at is set, if the message is still its own (same claim_token,
-- not deleted by a block). 0 rows: it was not, and the worker must not count it as answered.
UPDATE inbound_messages
   SET processed_at = now(), claimed_until = NULL
 WHERE clinic_id = %(clinic_id)s AND id = %(id)s
   AND claim_token = %(claim_token)s::uuid
   AND processed_at IS NULL;

-- name: release_inbound_message :execrows
-- The worker gives a message back without answering (it cannot right now): free for the next claim.
UPDATE inbound_messages
   SET claimed_until = NULL, claim_token = NULL, claimed_by = NULL
 WHERE clinic_id = %(clinic_id)s AND id = %(id)s
   AND claim_token = %(claim_token)s::uuid
   AND processed_at IS NULL;

-- name: fail_inbound_message :one
-- The chatbot could not answer: the message goes back to the queue after `retry_seconds` (so a
-- failing send is not retried in a tight loop, and the rest of the queue goes first), or, tried
-- `max_attempts` times already (this attempt included: still_claimed counted it), it is parked
-- (failed_at) for an operator. No row: not this worker's any more (blocked, taken over).
UPDATE inbound_messages
   SET claim_token = NULL, claimed_by = NULL,
       claimed_until = CASE WHEN attempts < %(max_attempts)s
                            THEN now() + make_interval(secs => %(retry_seconds)s) END,
       failed_at = CASE WHEN attempts >= %(max_attempts)s THEN now() END
 WHERE clinic_id = %(clinic_id)s AND id = %(id)s
   AND claim_token = %(claim_token)s::uuid
   AND processed_at IS NULL
RETURNING failed_at IS NOT NULL AS parked, attempts;

-- name: still_claimed :scalar
-- Right before sending: is the message still this worker's, unanswered, and its sender not blocked
-- meanwhile? Extends the lease so the send that follows has a full lease to finish in, and counts
-- the attempt (for this message only): from here on the chatbot is answering it, and a worker that
-- dies now died on this one. Returns the attempt's number; no row: do not send.
UPDATE inbound_messages m
   SET claimed_until = now() + make_interval(secs => %(lease_seconds)s),
       attempts = m.attempts + 1
 WHERE m.clinic_id = %(clinic_id)s AND m.id = %(id)s
   AND m.claim_token = %(claim_token)s::uuid
   AND m.processed_at IS NULL
   AND NOT whatsapp_sender_blocked(m.clinic_id, m.sender_phone, m.sender_user_id, m.patient_id)
RETURNING m.attempts;

-- name: recent_failed_statuses :many
-- What became of the chatbot's recent sends that failed (e.g. 131047: the 24-hour window closed,
-- only a template can reach the user now), newest first.
SELECT s.message_id, s.status, s.recipient_phone, s.recipient_user_id, s.status_at,
       s.error_code, s.error_title, s.error_details, s.received_at
  FROM whatsapp_statuses s
 WHERE s.clinic_id = %(clinic_id)s AND s.status = 'failed'
 ORDER BY s.received_at DESC, s.id DESC
 LIMIT %(limit)s;
