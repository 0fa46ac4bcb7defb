-- The benchmark's own statements, on its own cluster (never the product's database).
-- The product's queries (queries/*.sql) are what both sides of every figure run.

-- name: ensure_meta :exec
-- Which data set this cluster holds (a run whose spec differs rebuilds it) and where its parts are.
CREATE TABLE IF NOT EXISTS bench_meta (
    spec     text PRIMARY KEY,
    layout   jsonb NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
);

-- name: dataset_layout :one
SELECT spec, layout FROM bench_meta ORDER BY built_at DESC LIMIT 1;

-- name: record_layout :exec
INSERT INTO bench_meta (spec, layout) VALUES (%(spec)s, %(layout)s);

-- name: tune_wal :exec
-- Loading a million rows wants fewer checkpoints; reading them, a cache that holds the hot clinic.
-- Both sides of every figure run on this same server. (ALTER SYSTEM: one statement per call.)
ALTER SYSTEM SET max_wal_size = '4GB';

-- name: tune_buffers :exec
ALTER SYSTEM SET shared_buffers = '1GB';

-- name: loading_session :exec
-- Only this loading session: a crash while loading means rebuilding anyway.
SET synchronous_commit = off;
SET maintenance_work_mem = '1GB';

-- name: drop_secondary_indexes :exec
-- COPY into tables without their secondary indexes, then build them once (schema.sql again):
-- much faster than maintaining two trigram indexes row by row. Keys (primary, unique) stay.
DO $$
DECLARE
    idx regclass;
BEGIN
    FOR idx IN
        SELECT indexrelid::regclass FROM pg_index
         WHERE indrelid IN ('patients'::regclass, 'appointments'::regclass)
           AND NOT indisprimary AND NOT indisunique
    LOOP
        EXECUTE format('DROP INDEX %s', idx);
    END LOOP;
END
$$;

-- name: analyze :exec
VACUUM (ANALYZE);

-- name: clear_clinic_patients :execrows
DELETE FROM patients WHERE clinic_id = %(clinic_id)s;

-- name: count_clinic_patients :scalar
SELECT count(*) FROM patients WHERE clinic_id = %(clinic_id)s;

-- name: dataset_counts :one
SELECT (SELECT count(*) FROM clinics) AS clinics,
       (SELECT count(*) FROM patients) AS patients,
       (SELECT count(*) FROM appointments) AS appointments,
       pg_size_pretty(pg_database_size(current_database())) AS size;

-- name: explain_to_client :exec
-- EXPLAIN (ANALYZE, BUFFERS) of the product's own statements, run as they are: auto_explain hands
-- each plan to this session as a NOTICE, so no query text is pasted together anywhere.
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_level = notice;

-- name: explain_off :exec
SET auto_explain.log_min_duration = -1;

-- name: server_version :scalar
SHOW server_version;

-- name: index_build_progress :one
SELECT index_relid::regclass::text AS index, phase, blocks_done, blocks_total,
       tuples_done, tuples_total
  FROM pg_stat_progress_create_index
 LIMIT 1;

-- name: clear_bench_audit :execrows
-- The dui.reveal rows the admin-record figures wrote (the service's and the bare app's, both
-- signed `bench`), so the data set does not grow from run to run.
DELETE FROM audit_log WHERE actor_id = 'bench' AND action = 'dui.reveal';
