-- The whole schema of the Patients API. Safe to apply again and again (`flask --app app init-db`).
--
-- Other services (booking, the chatbot) write these tables too: every column we add has a default,
-- and ids default to gen_random_uuid(). Every primary and unique key carries clinic_id, so the tenant
-- tables can later be distributed by clinic_id (Citus) without a rewrite.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- Search folds case and accents: `perez` finds `Pérez`. unaccent() is only STABLE (its dictionary
-- could change), so an IMMUTABLE wrapper naming the dictionary explicitly lets us index the result.
-- Accents are stripped before lowering, so the folding is right under any database locale.
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
        format('SELECT lower(%I.unaccent(%L::regdictionary, $1))', ext_schema, ext_schema || '.unaccent'));
END
$$;

-- Spanish ordering of names (Á sorts with A, Ñ after N), the same on every server with ICU.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'names_es') THEN
        CREATE COLLATION names_es (provider = icu, locale = 'es');
    END IF;
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
-- Substring search (ILIKE '%term%') on the folded name and on the phone digits.
CREATE INDEX IF NOT EXISTS patients_search_name_trgm ON patients USING gin (search_name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS patients_phone_trgm ON patients USING gin (phone gin_trgm_ops);
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
    sender_phone text NOT NULL,             -- E.164, comparable with patients.phone
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

-- The patients of a clinic that a search finds, written once for the list's search and the export,
-- so the two can never disagree. Folded names containing the folded term, or phones containing
-- `phone_digits` (NULL when the term does not read as a phone); no term: the whole clinic.
-- The term is folded first and escaped after, backslash first, then the wildcards: unaccent turns
-- a few characters into %, _ or \ (fullwidth ％ ＿ ＼), so escaping before folding would let them
-- through as wildcards. A plain SQL function with a single SELECT: PostgreSQL inlines it into the
-- calling query and plans it with the actual values, trigram indexes included.
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
            OR p.search_name LIKE ('%' || replace(replace(replace(fold_search(in_term),
                                                                  '\', '\\'),
                                                          '%', '\%'),
                                                  '_', '\_') || '%') ESCAPE '\'
            OR (in_phone_digits IS NOT NULL AND p.phone LIKE ('%' || in_phone_digits || '%')))
$$;
