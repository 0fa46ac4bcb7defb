-- name: lock_schema :exec
-- Two processes applying schema.sql at once (workers, CI) take turns; released at commit.
SELECT pg_advisory_xact_lock(4242);
