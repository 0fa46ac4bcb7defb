"""Writing the audit trail: who did what to which patient, when, in the transaction that did it."""

from psycopg.types.json import Jsonb

from patients.repository import queries
from patients.tokens import Caller

ACTIONS = {
    "dui.reveal",
    "patient.block",
    "patient.unblock",
    "patients.import",
    "patients.export",
}


def record(
    conn,
    who: Caller,
    action: str,
    *,
    patient_id: str | None = None,
    details: dict | None = None,
    request_id: str | None = None,
) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action}")
    queries.record_audit(
        conn,
        clinic_id=who.clinic_id,
        actor_id=who.user_id,
        actor_role=who.role,
        action=action,
        patient_id=patient_id,
        details=Jsonb(details or {}),
        request_id=request_id,
    )
