-- WhatsApp: who a sender is, the chatbot's lease on the queue, delivery statuses, unrouted notifications.

-- The forms one mobile number takes between WhatsApp and what a clinic typed, so they match as one
-- person. WhatsApp writes Argentine mobiles with the 9 of international mobile dialling (+54 9 11 …),
-- people often without it (+54 11 …); it still sends Mexican mobiles with the 1 that Mexico dropped
-- in 2019 (+52 1 55 …); Brazilian accounts older than the ninth digit (2012-2016) still come with
-- eight (+55 51 9999-8888 for +55 51 99999-8888). Anything else is only itself.
CREATE OR REPLACE FUNCTION whatsapp_phone_variants(phone text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN CASE
        WHEN phone ~ '^\+549[1-3][0-9]{9}$' THEN ARRAY[phone, '+54' || substr(phone, 5)]
        WHEN phone ~ '^\+54[1-3][0-9]{9}$' THEN ARRAY[phone, '+549' || substr(phone, 4)]
        WHEN phone ~ '^\+521[0-9]{10}$' THEN ARRAY[phone, '+52' || substr(phone, 5)]
        WHEN phone ~ '^\+52[0-9]{10}$' THEN ARRAY[phone, '+521' || substr(phone, 4)]
        WHEN phone ~ '^\+55[1-9][0-9][6-9][0-9]{7}$'
            THEN ARRAY[phone, '+55' || substr(phone, 4, 2) || '9' || substr(phone, 6)]
        WHEN phone ~ '^\+55[1-9][0-9]9[6-9][0-9]{7}$'
            THEN ARRAY[phone, '+55' || substr(phone, 4, 2) || substr(phone, 7)]
        ELSE ARRAY[phone]
    END;

-- What WhatsApp told us about a person beyond the phone staff typed: a number they changed to
-- (kind 'wa_id', value E.164) or their business-scoped user id (kind 'user_id', value the BSUID),
-- and who they are: `patient_id` when known, and `phone`, the number the clinic knows them by, so a
-- patient registered later with that number is matched too. Written by the webhook only.
CREATE TABLE IF NOT EXISTS whatsapp_identities (
    clinic_id  uuid NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('wa_id', 'user_id')),
    value      text NOT NULL,
    patient_id uuid,
    phone      text,
    source     text NOT NULL DEFAULT 'message',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, kind, value),
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE SET NULL (patient_id)
);
CREATE INDEX IF NOT EXISTS whatsapp_identities_patient_idx
    ON whatsapp_identities (clinic_id, patient_id) WHERE patient_id IS NOT NULL;

-- The patients a WhatsApp sender (a phone, a user id, either may be null) is, in one clinic, best
-- first: the patient with exactly that phone (0), with an equivalent form of it (1), the one an
-- identity row names (2), the ones whose phone is the number that identity is known by (3).
-- The webhook, the chatbot's claim and blocking all ask this one function.
CREATE OR REPLACE FUNCTION whatsapp_sender_patients(in_clinic uuid, in_phone text, in_user_id text)
    RETURNS TABLE (patient_id uuid, rank int)
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH known AS (
        SELECT i.patient_id, i.phone
          FROM whatsapp_identities i
         WHERE i.clinic_id = in_clinic
           AND ((i.kind = 'wa_id' AND i.value = ANY (whatsapp_phone_variants(in_phone)))
                OR (i.kind = 'user_id' AND i.value = in_user_id))
    ), found AS (
        SELECT p.id, CASE WHEN p.phone = in_phone THEN 0 ELSE 1 END AS rank
          FROM patients p
         WHERE p.clinic_id = in_clinic AND p.phone = ANY (whatsapp_phone_variants(in_phone))
        UNION ALL
        SELECT k.patient_id, 2 FROM known k WHERE k.patient_id IS NOT NULL
        UNION ALL
        SELECT p.id, 3
          FROM known k
          JOIN patients p ON p.clinic_id = in_clinic AND p.phone = ANY (whatsapp_phone_variants(k.phone))
    )
    SELECT f.id, min(f.rank)::int FROM found f GROUP BY f.id
$$;

-- The number the clinic knows a sender by: the one a number change left on the sender's phone,
-- else that phone itself, else the one its user id was last seen with.
CREATE OR REPLACE FUNCTION whatsapp_known_phone(in_clinic uuid, in_phone text, in_user_id text)
    RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT i.phone
           FROM whatsapp_identities i
          WHERE i.clinic_id = in_clinic AND i.kind = 'wa_id' AND i.phone IS NOT NULL
            AND i.value = ANY (whatsapp_phone_variants(in_phone))
          ORDER BY i.updated_at DESC
          LIMIT 1),
        in_phone,
        (SELECT i.phone
           FROM whatsapp_identities i
          WHERE i.clinic_id = in_clinic AND i.kind = 'user_id' AND i.value = in_user_id))
$$;

-- Whether a waiting message's sender is (now) a blocked patient: the patient it was linked to, or
-- any patient the sender resolves to.
CREATE OR REPLACE FUNCTION whatsapp_sender_blocked(
        in_clinic uuid, in_phone text, in_user_id text, in_patient uuid)
    RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (
        SELECT 1 FROM patients p
         WHERE p.clinic_id = in_clinic AND p.is_blocked
           AND (p.id = in_patient
                OR p.id IN (SELECT s.patient_id FROM whatsapp_sender_patients(in_clinic, in_phone, in_user_id) s)))
$$;

-- The queue, for senders known only by a user id, the contact's name, and the chatbot's lease.
ALTER TABLE inbound_messages ALTER COLUMN sender_phone DROP NOT NULL;
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS sender_user_id text;   -- the BSUID (from_user_id)
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS sender_name text;      -- contacts[].profile.name
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS sender_username text;  -- contacts[].profile.username
-- A worker's claim: whoever holds claim_token until claimed_until answers the message; after that
-- it is free again, so a crashed worker's messages come back.
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS claim_token uuid;
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS claimed_by text;
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS claim_count int NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS inbound_messages_user_idx
    ON inbound_messages (clinic_id, sender_user_id) WHERE processed_at IS NULL;
-- Retention walks the answered messages oldest first.
CREATE INDEX IF NOT EXISTS inbound_messages_processed_idx
    ON inbound_messages (clinic_id, received_at, id) WHERE processed_at IS NOT NULL;

-- Tell listening chatbot workers which clinics have new messages (LISTEN inbound_messages), once per
-- clinic and statement, whoever inserts. The payload is the clinic id only: no patient data travels
-- in a notification. PostgreSQL delivers it at commit, and folds duplicates within a transaction.
CREATE OR REPLACE FUNCTION notify_inbound_messages() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('inbound_messages', c.clinic_id::text)
       FROM (SELECT DISTINCT clinic_id FROM inserted) c;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS inbound_messages_notify ON inbound_messages;
CREATE TRIGGER inbound_messages_notify AFTER INSERT ON inbound_messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION notify_inbound_messages();

-- Delivery statuses of the messages the chatbot sent (sent, delivered, read, failed with Meta's
-- error, e.g. 131047 outside the 24-hour window), one row per message and status.
CREATE TABLE IF NOT EXISTS whatsapp_statuses (
    id                bigint GENERATED ALWAYS AS IDENTITY,
    clinic_id         uuid NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    message_id        text NOT NULL,           -- the wamid of the message we sent
    status            text NOT NULL,
    recipient_phone   text,                    -- E.164
    recipient_user_id text,                    -- the BSUID, when the message went to one
    status_at         timestamptz,
    error_code        int,
    error_title       text,
    error_details     text,
    payload           jsonb NOT NULL DEFAULT '{}',
    received_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, id),
    UNIQUE (clinic_id, message_id, status)
);
CREATE INDEX IF NOT EXISTS whatsapp_statuses_failed_idx
    ON whatsapp_statuses (clinic_id, received_at DESC) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS whatsapp_statuses_received_idx ON whatsapp_statuses (clinic_id, received_at);

-- Notifications for a phone_number_id no clinic has yet (an operator forgot to set it): kept, the
-- newest 1000, so nothing is lost until the number is set. Not tenant data: no clinic is known.
CREATE TABLE IF NOT EXISTS whatsapp_unrouted (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number_id text NOT NULL,
    value           jsonb NOT NULL,            -- the change's value, as Meta sent it
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS whatsapp_unrouted_number_idx ON whatsapp_unrouted (phone_number_id, id);
