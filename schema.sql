-- The whole schema of the Patients API. Safe to apply again and again (`flask --app app init-db`).
--
-- Other services (booking, the chatbot) write these tables too: every column we add has a default,
-- and ids default to gen_random_uuid(). Every primary and unique key carries clinic_id, so the tenant
-- tables can later be distributed by clinic_id (Citus) without a rewrite.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;
-- GIN operator classes for plain types (uuid here), so a trigram index can lead with clinic_id.
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- Spanish ordering of names (Á sorts with A, Ñ after N), the same on every server with ICU.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'names_es') THEN
        CREATE COLLATION names_es (provider = icu, locale = 'es');
    END IF;
END
$$;

-- Search folds case and accents: `perez` finds `Pérez`. unaccent() is only STABLE (its dictionary
-- could change), so an IMMUTABLE wrapper naming the dictionary explicitly lets us index the result.
-- Lowered under names_es whatever the caller's collation: the stored search_name is folded from
-- full_name (names_es) and a search term from plain text (the database's own locale, which under C
-- lowers ASCII only and elsewhere folds a final Σ differently); one collation, one folding.
DO $$
DECLARE
    ext_schema text;
BEGIN
    SELECT n.nspname INTO ext_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'unaccent';
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION fold_search(text) RETURNS text
             LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
             AS %L',
        format('SELECT lower(%I.unaccent(%L::regdictionary, $1) COLLATE names_es)',
               ext_schema, ext_schema || '.unaccent'));
END
$$;

CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE IF NOT EXISTS clinics (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL CHECK (btrim(name) <> ''),
    plan         text NOT NULL DEFAULT 'basic' CHECK (plan IN ('basic', 'pro')),
    country_code text NOT NULL DEFAULT 'SV' CHECK (country_code ~ '^[A-Z]{2}$'),
    timezone     text NOT NULL DEFAULT 'America/El_Salvador',
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- A clinic's time zone must be one PostgreSQL knows: the export converts dates with it, and a
-- misspelt zone would break a download halfway. NOT VALID: rows written before are not rechecked.
CREATE OR REPLACE FUNCTION is_time_zone(zone text) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM now() AT TIME ZONE zone;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'clinics_timezone_known') THEN
        ALTER TABLE clinics ADD CONSTRAINT clinics_timezone_known CHECK (is_time_zone(timezone)) NOT VALID;
    END IF;
END
$$;
-- The WhatsApp Cloud API number that receives this clinic's messages (the webhook's routing key).
-- Unique without clinic_id: clinics is the tenant table itself (a reference table under Citus).
ALTER TABLE clinics ADD COLUMN IF NOT EXISTS whatsapp_phone_number_id text UNIQUE;

CREATE TABLE IF NOT EXISTS doctors (
    id        uuid NOT NULL DEFAULT gen_random_uuid(),
    clinic_id uuid NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    full_name text NOT NULL,
    specialty text,
    PRIMARY KEY (clinic_id, id)
);

-- The search index's keys for one clinic's text: one key for the clinic itself, and one per
-- 3-character substring of the text (raw, unpadded: a term found by LIKE '%term%' has each of its
-- own 3-character substrings inside the text), each key a hash of the substring seeded with the
-- clinic's. A GIN index over these keys holds, under each key, only that clinic's rows, so a search
-- reads what its clinic holds whatever the others hold (README "Scaling"). A text under 3
-- characters has only the clinic's key. 64-bit hashes: a collision costs a recheck, never a wrong
-- answer (the LIKE stays). GIN drops repeated keys itself. PL/pgSQL: computed in half the time of
-- the same in SQL (generate_series and a subquery per row), which every write and build pays; never
-- inlined either, so an index's expression and a query's call compare equal. Reads no table
-- (IMMUTABLE, fine under Citus). Changing what it returns means REINDEXing both indexes on it.
CREATE OR REPLACE FUNCTION clinic_trigram_keys(clinic uuid, folded text) RETURNS bigint[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT
AS $$
DECLARE
    seed bigint := uuid_hash_extended(clinic, 0);
    keys bigint[] := ARRAY[seed];
BEGIN
    FOR i IN 1 .. length(folded) - 2 LOOP
        keys := keys || hashtextextended(substr(folded, i, 3) COLLATE "C", seed);
    END LOOP;
    RETURN keys;
END
$$;

CREATE TABLE IF NOT EXISTS patients (
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    clinic_id      uuid NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    full_name      text COLLATE names_es NOT NULL CHECK (btrim(full_name) <> ''),
    phone          text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    email          text,
    -- The DUI, AES-256-GCM encrypted by the app (nonce || ciphertext || tag), bound to the clinic,
    -- the patient and the key; dui_key_id names the key of DUI_KEYS that wrote it.
    dui_ciphertext bytea,
    dui_key_id     text,
    notes          text,
    no_show_count  int NOT NULL DEFAULT 0 CHECK (no_show_count >= 0),
    is_blocked     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    search_name    text GENERATED ALWAYS AS (fold_search(full_name)) STORED,
    PRIMARY KEY (clinic_id, id),
    UNIQUE (clinic_id, phone),
    CHECK ((dui_ciphertext IS NULL) = (dui_key_id IS NULL))
);

-- The list's order (name, then id) within a clinic: paging walks this index.
CREATE INDEX IF NOT EXISTS patients_clinic_name_idx ON patients (clinic_id, full_name, id);
-- Substring search (LIKE '%term%') on the folded name and on the phone digits, keyed by clinic and
-- trigram (clinic_trigram_keys above): each key's entry lists only its clinic's rows, so a clinic's
-- search reads what that clinic holds, not what every clinic holds (README "Scaling").
-- An index a failed CREATE INDEX CONCURRENTLY left INVALID (README "Scaling") is dropped first,
-- so applying the schema builds it again instead of keeping a useless index that still costs
-- every write.
DO $$
DECLARE
    idx regclass;
BEGIN
    FOR idx IN
        SELECT indexrelid::regclass FROM pg_index
         WHERE indrelid = 'patients'::regclass AND NOT indisvalid
           AND indexrelid::regclass::text IN ('patients_clinic_name_keys',
                                              'patients_clinic_phone_keys')
    LOOP
        EXECUTE format('DROP INDEX %s', idx);
    END LOOP;
END
$$;
CREATE INDEX IF NOT EXISTS patients_clinic_name_keys
    ON patients USING gin (clinic_trigram_keys(clinic_id, search_name));
CREATE INDEX IF NOT EXISTS patients_clinic_phone_keys
    ON patients USING gin (clinic_trigram_keys(clinic_id, phone));
-- The trigram indexes these replace (databases made before them): the global ones, then the
-- clinic-first btree_gin ones (whose clinic entry and trigram entries were separate lists, so a
-- search still intersected with the whole table's list of each trigram). No query reads them any
-- more, and every insert and update of a patient paid for them.
DROP INDEX IF EXISTS patients_search_name_trgm;
DROP INDEX IF EXISTS patients_phone_trgm;
DROP INDEX IF EXISTS patients_clinic_search_name_trgm;
DROP INDEX IF EXISTS patients_clinic_phone_trgm;
-- Key rotation finds the rows still under an older key.
CREATE INDEX IF NOT EXISTS patients_dui_key_idx ON patients (dui_key_id) WHERE dui_key_id IS NOT NULL;

DROP TRIGGER IF EXISTS patients_touch_updated_at ON patients;
CREATE TRIGGER patients_touch_updated_at BEFORE UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE IF NOT EXISTS appointments (
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    clinic_id        uuid NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id       uuid NOT NULL,
    doctor_id        uuid,
    appointment_date date NOT NULL,
    start_time       time NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, id),
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE,
    FOREIGN KEY (clinic_id, doctor_id) REFERENCES doctors (clinic_id, id)
);
CREATE INDEX IF NOT EXISTS appointments_patient_idx
    ON appointments (clinic_id, patient_id, appointment_date DESC, start_time DESC);

-- The audit trail of sensitive actions: DUI reveals, blocks, imports, exports. Append-only.
CREATE TABLE IF NOT EXISTS audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    clinic_id  uuid NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    actor_id   text NOT NULL,
    actor_role text NOT NULL,
    action     text NOT NULL,
    patient_id uuid,
    details    jsonb NOT NULL DEFAULT '{}',
    request_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, id)
);
-- The client's address (behind the reverse proxy: the address the proxy saw); NULL when unknown,
-- and for rows written by services that do not know it.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS client_ip inet DEFAULT NULL;
CREATE INDEX IF NOT EXISTS audit_log_clinic_time_idx ON audit_log (clinic_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_log_patient_idx
    ON audit_log (clinic_id, patient_id, created_at DESC) WHERE patient_id IS NOT NULL;
-- GET /api/audit?action=… walks this one, newest first.
CREATE INDEX IF NOT EXISTS audit_log_action_idx ON audit_log (clinic_id, action, created_at DESC, id DESC);

-- The chatbot's inbound queue, filled by POST /webhooks/whatsapp. One row per WhatsApp message id
-- per clinic (the sender retries); the chatbot sets processed_at once it has answered. Messages
-- from blocked patients never get here, and blocking deletes the ones still waiting.
CREATE TABLE IF NOT EXISTS inbound_messages (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    clinic_id    uuid NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    message_id   text NOT NULL,             -- WhatsApp's id (wamid.…)
    sender_phone text,                      -- E.164, comparable with patients.phone; null: a user id only
    patient_id   uuid,                      -- the patient with that phone when it arrived, if any
    message_type text NOT NULL DEFAULT 'text',
    body         text,                      -- text.body for text messages
    payload      jsonb NOT NULL DEFAULT '{}', -- the whole message object, for other types
    sent_at      timestamptz,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    PRIMARY KEY (clinic_id, id),
    UNIQUE (clinic_id, message_id)
);
-- What is still waiting, oldest first (the chatbot), and per sender (blocking drops them).
CREATE INDEX IF NOT EXISTS inbound_messages_waiting_idx
    ON inbound_messages (clinic_id, received_at, id) WHERE processed_at IS NULL;
CREATE INDEX IF NOT EXISTS inbound_messages_sender_idx
    ON inbound_messages (clinic_id, sender_phone) WHERE processed_at IS NULL;

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
-- (sender_phone was NOT NULL before senders known only by a user id: databases made then.)
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
-- Times a worker started answering it (still_claimed, right before sending): what parking judges.
-- Not claim_count: a claim leases a whole batch, and the rows a worker never reached (it died on
-- an older one, or a slow answer let their lease run out) were claimed but never tried.
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS attempts int NOT NULL DEFAULT 0;
-- Parked: tried too often without being answered (the chatbot fails on it, or dies on it), so it
-- is out of every claim and kept for an operator instead of blocking the clinic's queue.
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS failed_at timestamptz DEFAULT NULL;
CREATE INDEX IF NOT EXISTS inbound_messages_parked_idx
    ON inbound_messages (clinic_id, failed_at) WHERE failed_at IS NOT NULL;
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

-- The list-item shape of a patient, written once: the list, the block answer and the full record
-- all build their JSON with it. It never includes the DUI or the notes.
CREATE OR REPLACE FUNCTION patient_list_item(p patients) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN json_build_object(
        'id', p.id,
        'full_name', p.full_name,
        'phone', p.phone,
        'email', p.email,
        'no_show_count', p.no_show_count,
        'is_blocked', p.is_blocked,
        'created_at', to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));

-- BEGIN phone_international (generated by patients/ops/phone_formats.py; do not edit)
-- A stored phone (E.164, digits only by the table's CHECK) in libphonenumber's INTERNATIONAL format
-- (phonenumbers 9.0.43) for the calling codes of SV, GT, HN, US, MX, NI, CR, PA, BZ, CO, VE, EC,
-- PE, BO, CL, AR, UY, PY, BR, CU, DO, HT, ES, IT; any other calling code: `+<code> <national
-- number>`. Not STRICT, so PostgreSQL inlines it into the export's COPY.
CREATE OR REPLACE FUNCTION phone_international(e164 text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN left(e164, 4) = '+503' THEN '+503 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[89])' AND length(e164) = 11
                THEN substr(e164, 5, 3) || ' ' || substr(e164, 8, 4)
            WHEN substr(e164, 5) ~ '^(?:[25-7])' AND length(e164) = 12
                THEN substr(e164, 5, 4) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 5) ~ '^(?:[89])' AND length(e164) = 15
                THEN substr(e164, 5, 3) || ' ' || substr(e164, 8, 4) || ' ' || substr(e164, 12, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 4) = '+502' THEN '+502 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[2-8])' AND length(e164) = 12
                THEN substr(e164, 5, 4) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 5) ~ '^(?:1)' AND length(e164) = 15
                THEN substr(e164, 5, 4) || ' ' || substr(e164, 9, 3) || ' ' || substr(e164, 12, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 4) = '+504' THEN '+504 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[237-9])' AND length(e164) = 12
                THEN substr(e164, 5, 4) || '-' || substr(e164, 9, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 2) = '+1' THEN '+1 ' || CASE
            WHEN substr(e164, 3) ~ '^(?:310)' AND length(e164) = 9
                THEN substr(e164, 3, 3) || '-' || substr(e164, 6, 4)
            WHEN substr(e164, 3) ~ '^(?:[2-9])' AND length(e164) = 12
                THEN substr(e164, 3, 3) || '-' || substr(e164, 6, 3) || '-' || substr(e164, 9, 4)
            ELSE substr(e164, 3) END
        WHEN left(e164, 3) = '+52' THEN '+52 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:33|5[56]|81)' AND length(e164) = 13
                THEN substr(e164, 4, 2) || ' ' || substr(e164, 6, 4) || ' ' || substr(e164, 10, 4)
            WHEN substr(e164, 4) ~ '^(?:[2-9])' AND length(e164) = 13
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 3) || ' ' || substr(e164, 10, 4)
            ELSE substr(e164, 4) END
        WHEN left(e164, 4) = '+505' THEN '+505 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[125-8])' AND length(e164) = 12
                THEN substr(e164, 5, 4) || ' ' || substr(e164, 9, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 4) = '+506' THEN '+506 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[2-7]|8[3-9])' AND length(e164) = 12
                THEN substr(e164, 5, 4) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 5) ~ '^(?:[89])' AND length(e164) = 14
                THEN substr(e164, 5, 3) || '-' || substr(e164, 8, 3) || '-' || substr(e164, 11, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 4) = '+507' THEN '+507 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[1-57-9])' AND length(e164) = 11
                THEN substr(e164, 5, 3) || '-' || substr(e164, 8, 4)
            WHEN substr(e164, 5) ~ '^(?:[68])' AND length(e164) = 12
                THEN substr(e164, 5, 4) || '-' || substr(e164, 9, 4)
            WHEN substr(e164, 5) ~ '^(?:8)' AND length(e164) = 14
                THEN substr(e164, 5, 3) || ' ' || substr(e164, 8, 3) || ' ' || substr(e164, 11, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 4) = '+501' THEN '+501 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[2-8])' AND length(e164) = 11
                THEN substr(e164, 5, 3) || '-' || substr(e164, 8, 4)
            WHEN substr(e164, 5) ~ '^(?:0)' AND length(e164) = 15
                THEN substr(e164, 5, 1) || '-' || substr(e164, 6, 3) || '-' || substr(e164, 9, 4) || '-' || substr(e164, 13, 3)
            ELSE substr(e164, 5) END
        WHEN left(e164, 3) = '+57' THEN '+57 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:46)' AND length(e164) = 11
                THEN substr(e164, 4, 4) || ' ' || substr(e164, 8, 4)
            WHEN substr(e164, 4) ~ '^(?:6|90)' AND length(e164) = 13
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 7)
            WHEN substr(e164, 4) ~ '^(?:3[0-357]|94)' AND length(e164) = 13
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 7)
            WHEN substr(e164, 4) ~ '^(?:1)' AND length(e164) = 14
                THEN substr(e164, 4, 1) || ' ' || substr(e164, 5, 3) || ' ' || substr(e164, 8, 7)
            ELSE substr(e164, 4) END
        WHEN left(e164, 3) = '+58' THEN '+58 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:[24-689])' AND length(e164) = 13
                THEN substr(e164, 4, 3) || '-' || substr(e164, 7, 7)
            ELSE substr(e164, 4) END
        WHEN left(e164, 4) = '+593' THEN '+593 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[2-7])' AND length(e164) = 12
                THEN substr(e164, 5, 1) || '-' || substr(e164, 6, 3) || '-' || substr(e164, 9, 4)
            WHEN substr(e164, 5) ~ '^(?:9)' AND length(e164) = 13
                THEN substr(e164, 5, 2) || ' ' || substr(e164, 7, 3) || ' ' || substr(e164, 10, 4)
            WHEN substr(e164, 5) ~ '^(?:1)' AND substr(e164, 5) ~ '^(?:(\d{4})(\d{3})(\d{3,4}))$'
                THEN regexp_replace(substr(e164, 5), '^(\d{4})(\d{3})(\d{3,4})$', '\1 \2 \3')
            ELSE substr(e164, 5) END
        WHEN left(e164, 3) = '+51' THEN '+51 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:80)' AND length(e164) = 11
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 5)
            WHEN substr(e164, 4) ~ '^(?:1)' AND length(e164) = 11
                THEN substr(e164, 4, 1) || ' ' || substr(e164, 5, 7)
            WHEN substr(e164, 4) ~ '^(?:[4-8])' AND length(e164) = 11
                THEN substr(e164, 4, 2) || ' ' || substr(e164, 6, 6)
            WHEN substr(e164, 4) ~ '^(?:9)' AND length(e164) = 12
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 3) || ' ' || substr(e164, 10, 3)
            ELSE substr(e164, 4) END
        WHEN left(e164, 4) = '+591' THEN '+591 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[23]|4[46]|50)' AND length(e164) = 12
                THEN substr(e164, 5, 1) || ' ' || substr(e164, 6, 7)
            WHEN substr(e164, 5) ~ '^(?:[5-7])' AND length(e164) = 12
                THEN substr(e164, 5, 8)
            WHEN substr(e164, 5) ~ '^(?:8)' AND length(e164) = 13
                THEN substr(e164, 5, 3) || ' ' || substr(e164, 8, 2) || ' ' || substr(e164, 10, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 3) = '+56' THEN '+56 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:2196)' AND length(e164) = 12
                THEN substr(e164, 4, 5) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 4) ~ '^(?:60|809)' AND length(e164) = 12
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 3) || ' ' || substr(e164, 10, 3)
            WHEN substr(e164, 4) ~ '^(?:44)' AND length(e164) = 12
                THEN substr(e164, 4, 2) || ' ' || substr(e164, 6, 3) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 4) ~ '^(?:2[1-36])' AND length(e164) = 12
                THEN substr(e164, 4, 1) || ' ' || substr(e164, 5, 4) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 4) ~ '^(?:9(?:10|[2-9]))' AND length(e164) = 12
                THEN substr(e164, 4, 1) || ' ' || substr(e164, 5, 4) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 4) ~ '^(?:3[2-5]|[47]|5[1-3578]|6[13-57]|8(?:0[1-8]|[1-9]))' AND length(e164) = 12
                THEN substr(e164, 4, 2) || ' ' || substr(e164, 6, 3) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 4) ~ '^(?:60|8)' AND substr(e164, 4) ~ '^(?:(\d{3})(\d{3})(\d{3,4}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{3})(\d{3})(\d{3,4})$', '\1 \2 \3')
            WHEN substr(e164, 4) ~ '^(?:1)' AND length(e164) = 14
                THEN substr(e164, 4, 4) || ' ' || substr(e164, 8, 3) || ' ' || substr(e164, 11, 4)
            WHEN substr(e164, 4) ~ '^(?:60)' AND length(e164) = 14
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 3) || ' ' || substr(e164, 10, 2) || ' ' || substr(e164, 12, 3)
            ELSE substr(e164, 4) END
        WHEN left(e164, 3) = '+54' THEN '+54 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:2(?:[23]02|6(?:[25]|4(?:64|[78]))|9(?:[02356]|4(?:[0268]|5[2-6])|72|8[23]))|3(?:3[28]|4(?:[04679]|3(?:5(?:4[0-25689]|[56])|[78])|58|8[2379])|5(?:[2467]|3[237]|8(?:[23]|4(?:[45]|60)|5(?:4[0-39]|5|64)))|7[1-578]|8(?:[2469]|3[278]|54(?:4|5[13-7]|6[89])|86[3-6]))|2(?:2[24-9]|3[1-59]|47)|38(?:[58][78]|7[378])|3(?:454|85[56])[46]|3(?:4(?:36|5[56])|8(?:[38]5|76))[4-6])' AND length(e164) = 13
                THEN substr(e164, 4, 4) || ' ' || substr(e164, 8, 2) || '-' || substr(e164, 10, 4)
            WHEN substr(e164, 4) ~ '^(?:1)' AND length(e164) = 13
                THEN substr(e164, 4, 2) || ' ' || substr(e164, 6, 4) || '-' || substr(e164, 10, 4)
            WHEN substr(e164, 4) ~ '^(?:[68])' AND length(e164) = 13
                THEN substr(e164, 4, 3) || '-' || substr(e164, 7, 3) || '-' || substr(e164, 10, 4)
            WHEN substr(e164, 4) ~ '^(?:[23])' AND length(e164) = 13
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 3) || '-' || substr(e164, 10, 4)
            WHEN substr(e164, 4) ~ '^(?:9(?:2(?:[23]02|6(?:[25]|4(?:64|[78]))|9(?:[02356]|4(?:[0268]|5[2-6])|72|8[23]))|3(?:3[28]|4(?:[04679]|3(?:5(?:4[0-25689]|[56])|[78])|5(?:4[46]|8)|8[2379])|5(?:[2467]|3[237]|8(?:[23]|4(?:[45]|60)|5(?:4[0-39]|5|64)))|7[1-578]|8(?:[2469]|3[278]|5(?:4(?:4|5[13-7]|6[89])|[56][46]|[78])|7[378]|8(?:6[3-6]|[78]))))|92(?:2[24-9]|3[1-59]|47)|93(?:4(?:36|5[56])|8(?:[38]5|76))[4-6])' AND length(e164) = 14
                THEN substr(e164, 4, 1) || ' ' || substr(e164, 5, 4) || ' ' || substr(e164, 9, 2) || '-' || substr(e164, 11, 4)
            WHEN substr(e164, 4) ~ '^(?:91)' AND length(e164) = 14
                THEN substr(e164, 4, 1) || ' ' || substr(e164, 5, 2) || ' ' || substr(e164, 7, 4) || '-' || substr(e164, 11, 4)
            WHEN substr(e164, 4) ~ '^(?:8)' AND length(e164) = 14
                THEN substr(e164, 4, 3) || '-' || substr(e164, 7, 3) || '-' || substr(e164, 10, 5)
            WHEN substr(e164, 4) ~ '^(?:9)' AND length(e164) = 14
                THEN substr(e164, 4, 1) || ' ' || substr(e164, 5, 3) || ' ' || substr(e164, 8, 3) || '-' || substr(e164, 11, 4)
            ELSE substr(e164, 4) END
        WHEN left(e164, 4) = '+598' THEN '+598 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:21)' AND substr(e164, 5) ~ '^(?:(\d{4,5}))$'
                THEN regexp_replace(substr(e164, 5), '^(\d{4,5})$', '\1')
            WHEN substr(e164, 5) ~ '^(?:0)' AND substr(e164, 5) ~ '^(?:(\d{3})(\d{3,4}))$'
                THEN regexp_replace(substr(e164, 5), '^(\d{3})(\d{3,4})$', '\1 \2')
            WHEN substr(e164, 5) ~ '^(?:[49]0|8)' AND length(e164) = 11
                THEN substr(e164, 5, 3) || ' ' || substr(e164, 8, 4)
            WHEN substr(e164, 5) ~ '^(?:9)' AND length(e164) = 12
                THEN substr(e164, 5, 2) || ' ' || substr(e164, 7, 3) || ' ' || substr(e164, 10, 3)
            WHEN substr(e164, 5) ~ '^(?:[124])' AND length(e164) = 12
                THEN substr(e164, 5, 4) || ' ' || substr(e164, 9, 4)
            WHEN substr(e164, 5) ~ '^(?:0)' AND substr(e164, 5) ~ '^(?:(\d{3})(\d{3})(\d{2,4}))$'
                THEN regexp_replace(substr(e164, 5), '^(\d{3})(\d{3})(\d{2,4})$', '\1 \2 \3')
            WHEN substr(e164, 5) ~ '^(?:0)' AND substr(e164, 5) ~ '^(?:(\d{3})(\d{3})(\d{3})(\d{2,4}))$'
                THEN regexp_replace(substr(e164, 5), '^(\d{3})(\d{3})(\d{3})(\d{2,4})$', '\1 \2 \3 \4')
            ELSE substr(e164, 5) END
        WHEN left(e164, 4) = '+595' THEN '+595 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[2-9]0)' AND substr(e164, 5) ~ '^(?:(\d{3})(\d{3,6}))$'
                THEN regexp_replace(substr(e164, 5), '^(\d{3})(\d{3,6})$', '\1 \2')
            WHEN substr(e164, 5) ~ '^(?:3[289]|4[246-8]|61|7[1-3]|8[1-36])' AND length(e164) = 11
                THEN substr(e164, 5, 2) || ' ' || substr(e164, 7, 5)
            WHEN substr(e164, 5) ~ '^(?:2[279]|3[13-5]|4[359]|5|6(?:[34]|7[1-46-8])|7[46-8]|85)' AND substr(e164, 5) ~ '^(?:(\d{3})(\d{4,5}))$'
                THEN regexp_replace(substr(e164, 5), '^(\d{3})(\d{4,5})$', '\1 \2')
            WHEN substr(e164, 5) ~ '^(?:2[14-68]|3[26-9]|4[1246-8]|6(?:1|75)|7[1-35]|8[1-36])' AND substr(e164, 5) ~ '^(?:(\d{2})(\d{3})(\d{3,4}))$'
                THEN regexp_replace(substr(e164, 5), '^(\d{2})(\d{3})(\d{3,4})$', '\1 \2 \3')
            WHEN substr(e164, 5) ~ '^(?:87)' AND length(e164) = 13
                THEN substr(e164, 5, 2) || ' ' || substr(e164, 7, 3) || ' ' || substr(e164, 10, 4)
            WHEN substr(e164, 5) ~ '^(?:9(?:[5-79]|8[1-8]))' AND length(e164) = 13
                THEN substr(e164, 5, 3) || ' ' || substr(e164, 8, 6)
            WHEN substr(e164, 5) ~ '^(?:[2-8])' AND length(e164) = 13
                THEN substr(e164, 5, 3) || ' ' || substr(e164, 8, 3) || ' ' || substr(e164, 11, 3)
            WHEN substr(e164, 5) ~ '^(?:9)' AND length(e164) = 15
                THEN substr(e164, 5, 4) || ' ' || substr(e164, 9, 3) || ' ' || substr(e164, 12, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 3) = '+55' THEN '+55 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:300|4(?:0(?:0|20)|370|864))' AND length(e164) = 11
                THEN substr(e164, 4, 4) || '-' || substr(e164, 8, 4)
            WHEN substr(e164, 4) ~ '^(?:(?:[358]|90)0)' AND substr(e164, 4) ~ '^(?:(\d{3})(\d{2,3})(\d{4}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{3})(\d{2,3})(\d{4})$', '\1 \2 \3')
            WHEN substr(e164, 4) ~ '^(?:(?:[14689][1-9]|2[12478]|3[1-578]|5[13-5]|7[13-579])[2-57])' AND length(e164) = 13
                THEN substr(e164, 4, 2) || ' ' || substr(e164, 6, 4) || '-' || substr(e164, 10, 4)
            WHEN substr(e164, 4) ~ '^(?:[16][1-9]|[2-57-9])' AND length(e164) = 14
                THEN substr(e164, 4, 2) || ' ' || substr(e164, 6, 5) || '-' || substr(e164, 11, 4)
            ELSE substr(e164, 4) END
        WHEN left(e164, 3) = '+53' THEN '+53 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:2[1-4]|[34])' AND substr(e164, 4) ~ '^(?:(\d{2})(\d{4,6}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{2})(\d{4,6})$', '\1 \2')
            WHEN substr(e164, 4) ~ '^(?:7)' AND substr(e164, 4) ~ '^(?:(\d)(\d{6,7}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d)(\d{6,7})$', '\1 \2')
            WHEN substr(e164, 4) ~ '^(?:[56])' AND length(e164) = 11
                THEN substr(e164, 4, 1) || ' ' || substr(e164, 5, 7)
            WHEN substr(e164, 4) ~ '^(?:8)' AND length(e164) = 13
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 7)
            ELSE substr(e164, 4) END
        WHEN left(e164, 4) = '+509' THEN '+509 ' || CASE
            WHEN substr(e164, 5) ~ '^(?:[2-589])' AND length(e164) = 12
                THEN substr(e164, 5, 2) || ' ' || substr(e164, 7, 2) || ' ' || substr(e164, 9, 4)
            ELSE substr(e164, 5) END
        WHEN left(e164, 3) = '+34' THEN '+34 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:[89]00)' AND length(e164) = 12
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 3) || ' ' || substr(e164, 10, 3)
            WHEN substr(e164, 4) ~ '^(?:[4-9])' AND length(e164) = 12
                THEN substr(e164, 4, 3) || ' ' || substr(e164, 7, 2) || ' ' || substr(e164, 9, 2) || ' ' || substr(e164, 11, 2)
            ELSE substr(e164, 4) END
        WHEN left(e164, 3) = '+39' THEN '+39 ' || CASE
            WHEN substr(e164, 4) ~ '^(?:0[26])' AND substr(e164, 4) ~ '^(?:(\d{2})(\d{4,6}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{2})(\d{4,6})$', '\1 \2')
            WHEN substr(e164, 4) ~ '^(?:0[13-57-9][0159]|8(?:03|4[17]|9(?:2|3[04]|[45][0-4])))' AND substr(e164, 4) ~ '^(?:(\d{3})(\d{3,6}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{3})(\d{3,6})$', '\1 \2')
            WHEN substr(e164, 4) ~ '^(?:0(?:[13-579][2-46-8]|8[236-8]))' AND substr(e164, 4) ~ '^(?:(\d{4})(\d{2,6}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{4})(\d{2,6})$', '\1 \2')
            WHEN substr(e164, 4) ~ '^(?:894)' AND length(e164) = 11
                THEN substr(e164, 4, 4) || ' ' || substr(e164, 8, 4)
            WHEN substr(e164, 4) ~ '^(?:0[26]|5)' AND substr(e164, 4) ~ '^(?:(\d{2})(\d{3,4})(\d{4}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{2})(\d{3,4})(\d{4})$', '\1 \2 \3')
            WHEN substr(e164, 4) ~ '^(?:1(?:44|[679])|[378]|43)' AND substr(e164, 4) ~ '^(?:(\d{3})(\d{3})(\d{3,4}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{3})(\d{3})(\d{3,4})$', '\1 \2 \3')
            WHEN substr(e164, 4) ~ '^(?:0[13-57-9][0159]|14)' AND substr(e164, 4) ~ '^(?:(\d{3})(\d{3,4})(\d{4}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{3})(\d{3,4})(\d{4})$', '\1 \2 \3')
            WHEN substr(e164, 4) ~ '^(?:0[26])' AND length(e164) = 14
                THEN substr(e164, 4, 2) || ' ' || substr(e164, 6, 4) || ' ' || substr(e164, 10, 5)
            WHEN substr(e164, 4) ~ '^(?:0)' AND length(e164) = 14
                THEN substr(e164, 4, 4) || ' ' || substr(e164, 8, 3) || ' ' || substr(e164, 11, 4)
            WHEN substr(e164, 4) ~ '^(?:[03])' AND substr(e164, 4) ~ '^(?:(\d{3})(\d{4})(\d{4,5}))$'
                THEN regexp_replace(substr(e164, 4), '^(\d{3})(\d{4})(\d{4,5})$', '\1 \2 \3')
            ELSE substr(e164, 4) END
        ELSE regexp_replace(e164, '^[+](1|7|20|27|30|31|32|33|34|36|39|40|41|43|44|45|46|47|48|49|51|52|53|54|55|56|57|58|60|61|62|63|64|65|66|81|82|84|86|90|91|92|93|94|95|98|211|212|213|216|218|220|221|222|223|224|225|226|227|228|229|230|231|232|233|234|235|236|237|238|239|240|241|242|243|244|245|246|247|248|249|250|251|252|253|254|255|256|257|258|260|261|262|263|264|265|266|267|268|269|290|291|297|298|299|350|351|352|353|354|355|356|357|358|359|370|371|372|373|374|375|376|377|378|380|381|382|383|385|386|387|389|420|421|423|500|501|502|503|504|505|506|507|508|509|590|591|592|593|594|595|596|597|598|599|670|672|673|674|675|676|677|678|679|680|681|682|683|685|686|687|688|689|690|691|692|800|808|850|852|853|855|856|870|878|880|881|882|883|886|888|960|961|962|963|964|965|966|967|968|970|971|972|973|974|975|976|977|979|992|993|994|995|996|998)([0-9]+)$', '+\1 \2')
    END;
-- END phone_international

-- The patients of a clinic that a search finds, written once for the list's search and the export,
-- so the two can never disagree. Folded names containing the folded term, or phones containing
-- `phone_digits` (NULL when the term does not read as a phone); no term: the whole clinic.
-- The term is folded first and escaped after, backslash first, then the wildcards: unaccent turns
-- a few characters into %, _ or \ (fullwidth ％ ＿ ＼), so escaping before folding would let them
-- through as wildcards. Each branch also asks for the term's keys (clinic_trigram_keys), which the
-- keys' GIN indexes answer from the clinic's own rows; the LIKE stays the exact check. A term under
-- 3 characters has no trigram: `length(...) < 3` folds that condition away at planning, and the
-- short-term query walks the name index instead. A plain SQL function with a single SELECT:
-- PostgreSQL inlines it into the calling query and plans it with the actual values, the keys'
-- indexes included.
CREATE OR REPLACE FUNCTION matching_patients(
        in_clinic uuid, in_blocked boolean, in_term text, in_phone_digits text)
    RETURNS SETOF patients
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT *
      FROM patients p
     WHERE p.clinic_id = in_clinic
       AND (in_blocked IS NULL OR p.is_blocked = in_blocked)
       AND (in_term IS NULL
            OR (p.search_name LIKE ('%' || replace(replace(replace(fold_search(in_term),
                                                                   '\', '\\'),
                                                           '%', '\%'),
                                                   '_', '\_') || '%') ESCAPE '\'
                AND (length(fold_search(in_term)) < 3
                     OR clinic_trigram_keys(p.clinic_id, p.search_name)
                        @> clinic_trigram_keys(in_clinic, fold_search(in_term))))
            OR (in_phone_digits IS NOT NULL
                AND p.phone LIKE ('%' || in_phone_digits || '%')
                AND (length(in_phone_digits) < 3
                     OR clinic_trigram_keys(p.clinic_id, p.phone)
                        @> clinic_trigram_keys(in_clinic, in_phone_digits))))
$$;
