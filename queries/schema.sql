-- name: lock_schema :exec
-- Two processes applying schema.sql at once (workers, CI) take turns; released at commit.
SELECT pg_advisory_xact_lock(4242);

-- name: citus_installed :sql
-- Whether this database is a Citus one (deploy/citus.sql then follows schema.sql). Read through a
-- cursor of its own: the callers' connections return tuples or dicts.
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus');
