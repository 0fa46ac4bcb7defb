-- name: record_audit :exec
-- One row of the audit trail, written in the caller's transaction so it commits with the action.
INSERT INTO audit_log (clinic_id, actor_id, actor_role, action, patient_id, details, request_id,
                       client_ip)
VALUES (%(clinic_id)s, %(actor_id)s, %(actor_role)s, %(action)s, %(patient_id)s,
        %(details)s, %(request_id)s, %(client_ip)s::inet);
