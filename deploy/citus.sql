-- Distributing the schema on Citus by clinic_id (README "Scaling", "Distributing on Citus").
--
-- On a Citus coordinator (CREATE EXTENSION citus, the workers added with citus_add_node), as a
-- superuser, `flask --app app init-db` applies schema.sql and then this file, in one transaction
-- (patients/db.py); so does `psql -1 -v ON_ERROR_STOP=1 -f schema.sql -f deploy/citus.sql`. The first
-- run distributes the tables; later runs leave them as they are and only put back what schema.sql
-- replaced (the functions below). On Citus, schema.sql is never applied without this file after it.
--
-- clinics is a reference table (a copy on every node), so a tenant table's foreign key to it and
-- a join on it stay on one node. Every tenant table is hash-distributed on clinic_id and colocated
-- with patients: one clinic's rows of every table live in shards of the same range on the same
-- worker, so a statement filtered on one clinic_id runs whole on that worker (a router query),
-- and the foreign keys between tenant tables, which all carry clinic_id, are checked there.
-- Every primary key and unique constraint of a tenant table already holds clinic_id (schema.sql),
-- as Citus requires.

CREATE EXTENSION IF NOT EXISTS citus;

-- The updated_at trigger on patients has to run on the shards; Citus creates triggers there only
-- with this on (by default it refuses them, as a trigger that reads other distributed tables could
-- see only its own shard). That one reads only the row at hand, and the one below writes only the
-- clinic's own colocated shard. Set for the database too, so schema.sql applied again (its DROP
-- TRIGGER / CREATE TRIGGER) still works.
SET citus.enable_unsafe_triggers = on;
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET citus.enable_unsafe_triggers = on', current_database());
END
$$;

-- whatsapp_identities' foreign key to patients is ON DELETE SET NULL (patient_id): Citus refuses
-- SET NULL on any foreign key that holds the distribution column, even with a column list that
-- leaves clinic_id alone. This trigger does its work instead: a deleted patient's identities stay
-- and forget the patient (created before the tables are distributed, so it is on every shard).
CREATE OR REPLACE FUNCTION whatsapp_identities_forget_patient() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE whatsapp_identities
       SET patient_id = NULL
     WHERE clinic_id = OLD.clinic_id AND patient_id = OLD.id;
    RETURN NULL;
END
$$;

-- The tenant tables, parents first. Their foreign keys are dropped for the change and put back
-- after, with the same names and definitions: once clinics is a reference table, Citus turns every
-- plain table with a foreign key to it into a "Citus local table" on the coordinator, and making
-- those distributed then fails on the foreign keys between them (and would recreate the tables,
-- dropping the functions typed on their rows, patient_list_item() and matching_patients()).
-- Without foreign keys each table is distributed in place.
SET citus.multi_shard_modify_mode = 'sequential';
DO $$
DECLARE
    tenants text[] := ARRAY['patients', 'doctors', 'appointments', 'audit_log', 'inbound_messages',
                            'whatsapp_identities', 'whatsapp_statuses'];
    tenant text;
    fk record;
    readd text[] := '{}';
    stmt text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM unnest(tenants) t
                    WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition
                                       WHERE logicalrelid = t::regclass AND partmethod = 'h')) THEN
        RETURN;  -- distributed before
    END IF;
    FOR fk IN SELECT c.conrelid::regclass AS tab, c.conname, pg_get_constraintdef(c.oid) AS def,
                     c.confdeltype
                FROM pg_constraint c
               WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY (tenants) LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tab, fk.conname);
        IF fk.confdeltype <> 'n' THEN  -- SET NULL: the trigger instead (above)
            readd := readd || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.tab, fk.conname, fk.def);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                    WHERE logicalrelid = 'clinics'::regclass AND repmodel = 't') THEN
        PERFORM create_reference_table('clinics');
    END IF;
    DROP TRIGGER IF EXISTS patients_forget_whatsapp_identities ON patients;
    CREATE TRIGGER patients_forget_whatsapp_identities AFTER DELETE ON patients
        FOR EACH ROW EXECUTE FUNCTION whatsapp_identities_forget_patient();
    FOREACH tenant IN ARRAY tenants LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                        WHERE logicalrelid = tenant::regclass AND partmethod = 'h') THEN
            PERFORM create_distributed_table(tenant, 'clinic_id',
                colocate_with => CASE WHEN tenant = 'patients' THEN 'none' ELSE 'patients' END);
        END IF;
    END LOOP;
    FOREACH stmt IN ARRAY readd LOOP
        EXECUTE stmt;
    END LOOP;
END
$$;

-- The functions that read tenant tables, as PL/pgSQL, built from schema.sql's own bodies (no copy
-- to keep in step). schema.sql writes them in plain SQL to be inlined into the calling query, which
-- Citus cannot plan: the coordinator sees no distributed table in "FROM matching_patients(...)",
-- hands the query to PostgreSQL's planner, which inlines the body (a scan of patients), and Citus
-- then refuses it ("parameterized queries for SQL functions referencing distributed tables are not
-- supported"). As PL/pgSQL each body is planned with its actual values and, the clinic_id being
-- fixed, runs on the clinic's shard. schema.sql applied again puts the SQL ones back, so this file
-- always follows it (init-db does that: patients/db.py).
DO $$
DECLARE
    fn record;
BEGIN
    FOR fn IN SELECT p.proname, p.prosrc, p.proretset, p.provolatile,
                     pg_get_function_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result
                FROM pg_proc p
               WHERE p.oid IN ('matching_patients(uuid,boolean,text,text)'::regprocedure,
                               'whatsapp_sender_patients(uuid,text,text)'::regprocedure,
                               'whatsapp_known_phone(uuid,text,text)'::regprocedure,
                               'whatsapp_sender_blocked(uuid,text,text,uuid)'::regprocedure)
                 AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql') LOOP
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql %s PARALLEL SAFE'
            -- Planned for its actual values each time, as the pool plans the app's statements:
            -- a cached generic plan would weigh '%%' || $3 || '%%' without knowing the term.
            || ' SET plan_cache_mode = force_custom_plan AS %L',
            quote_ident(fn.proname), fn.args, fn.result,
            CASE fn.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
            -- The body's columns win over the OUT parameters of the same name (patient_id, rank).
            E'#variable_conflict use_column\nBEGIN\n'
            || CASE WHEN fn.proretset THEN 'RETURN QUERY ' || fn.prosrc || E';\n'
                    ELSE 'RETURN (' || fn.prosrc || E');\n' END
            || 'END');
    END LOOP;
END
$$;

-- Those functions run inside the clinic's query on its worker and query the clinic's shards from
-- there (matching_patients() inside the search, whatsapp_sender_patients() inside blocking and the
-- webhook). Citus refuses such nested queries by default, because a nested query that went to
-- another node would be outside the caller's transaction. Ours never do: each one filters on the
-- caller's own clinic_id, whose shards of every table are colocated on the node already running
-- the caller, so Citus runs them there, in the same transaction. (A query file that wrote the
-- filter out in place of the function would need neither this nor the PL/pgSQL versions; README.)
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET citus.allow_nested_distributed_execution = on',
                   current_database());
END
$$;

-- A patient's list item, built from a patients row: on a worker the row is a shard's
-- (patients_102008), a type patient_list_item(patients) does not take, so calls there failed with
-- "function patient_list_item(patients_102008) does not exist". This one takes any row (an exact
-- match for a shard's row; a patients row still gets schema.sql's) and hands it on as a patients
-- row, column for column.
CREATE OR REPLACE FUNCTION patient_list_item(p record) RETURNS json
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN patient_list_item(p::text::patients);
END
$$;
-- IMMUTABLE, as Citus wants of a function in an UPDATE's RETURNING (the block's answer): its
-- result depends on the row alone (fixed formats, UTC, no setting or locale read). schema.sql calls
-- it STABLE only because json_build_object() and to_char() in general are.
ALTER FUNCTION patient_list_item(patients) IMMUTABLE;

-- Our functions on every worker: the router queries run there whole, calling fold_search() (the
-- generated search_name), phone_international() (the export), matching_patients(),
-- patient_list_item() and the WhatsApp sender functions. Citus sends a function to the workers
-- when it is created, except when it depends on a table not yet distributed (the two typed on a
-- patients row, created before this file ran): those are sent here.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN SELECT p.oid::regprocedure
                FROM pg_proc p
               WHERE p.pronamespace = 'public'::regnamespace
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                    AND d.deptype = 'e')
                 AND NOT EXISTS (SELECT 1 FROM pg_dist_object o
                                  WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid) LOOP
        PERFORM create_distributed_function(fn);
    END LOOP;
END
$$;

-- No NOTIFY from the queue's shards. The trigger would fire on the worker holding the clinic's
-- shard, where no chatbot listens (they LISTEN on the coordinator), and a transaction that ran
-- NOTIFY cannot be prepared, so any write to inbound_messages that Citus commits in two phases
-- failed ("cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY"). Chatbot
-- workers find their work by waiting_clinics instead, every `poll` seconds (patients/chatbot.py).
DROP TRIGGER IF EXISTS inbound_messages_notify ON inbound_messages;

-- whatsapp_unrouted has no clinic (a notification no clinic could take) and is read and written
-- only on its own: it stays a plain table on the coordinator.
