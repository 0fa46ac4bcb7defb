-- Reading the audit trail (GET /api/audit): only the caller's clinic, newest first.

-- name: list_audit_entries :one
-- One page of entries with the exact total, as the response body's JSON. Ties on created_at (rows
-- written in one transaction) are broken by id, so pages never repeat or skip a row.
WITH matches AS (
    SELECT *
      FROM audit_log
     WHERE clinic_id = %(clinic_id)s
       AND (%(patient_id)s::uuid IS NULL OR patient_id = %(patient_id)s::uuid)
       AND (%(action)s::text IS NULL OR action = %(action)s::text)
)
SELECT json_build_object(
           'entries', coalesce((SELECT json_agg(json_build_object(
                                           'id', a.id,
                                           'created_at', to_char(a.created_at AT TIME ZONE 'UTC',
                                                                 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                           'action', a.action,
                                           'actor_id', a.actor_id,
                                           'actor_role', a.actor_role,
                                           'patient_id', a.patient_id,
                                           'details', a.details,
                                           'request_id', a.request_id,
                                           'client_ip', host(a.client_ip))
                                       ORDER BY a.created_at DESC, a.id DESC)
                                  FROM (SELECT * FROM matches
                                         ORDER BY created_at DESC, id DESC
                                         LIMIT %(limit)s OFFSET %(offset)s) a), '[]'::json),
           'total', (SELECT count(*) FROM matches),
           'page', %(page)s::int,
           'limit', %(limit)s::int)::text AS body;
