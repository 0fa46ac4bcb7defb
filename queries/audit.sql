-- name: withdraw_reveal_audit :exec
-- A dui.reveal row that get_patient_record wrote in this very transaction, for a DUI that then
-- failed to open (a ciphertext copied from another row, or under a key no longer in DUI_KEYS):
-- nothing was revealed, so the row never commits.
DELETE FROM audit_log
 WHERE clinic_id = %(clinic_id)s AND id = %(audit_id)s AND action = 'dui.reveal';

-- name: record_audit :exec
-- One row of the audit trail, written in the caller's transaction so it commits with the action.
INSERT INTO audit_log (clinic_id, actor_id, actor_role, action, patient_id, details, request_id,
                       client_ip)
VALUES (%(clinic_id)s, %(actor_id)s, %(actor_role)s, %(action)s, %(patient_id)s,
        %(details)s, %(request_id)s, %(client_ip)s::inet);
