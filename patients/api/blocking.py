"""PATCH /api/patients/<id>/block: block or unblock a patient; the WhatsApp webhook honours it."""

from flask import Blueprint, Response, request

from patients import db
from patients.api import params
from patients.api.auth import caller, record, require_role
from patients.api.errors import not_found, validation_error
from patients.messages import N_
from patients.repository import queries

bp = Blueprint("blocking", __name__, url_prefix="/api/patients")

MAX_REASON_LENGTH = 500
FIELDS = {"blocked", "reason"}


@bp.patch("/<patient_id:patient_id>/block")
@require_role("admin", "staff")
def set_blocked(patient_id):
    patient_id = params.patient_id(patient_id)
    blocked, reason = read_body()
    clinic_id = caller().clinic_id
    with db.connection() as conn:
        row = queries.set_patient_blocked(
            conn, clinic_id=clinic_id, patient_id=patient_id, blocked=blocked
        )
        if row is None:
            raise not_found()
        dropped = 0
        if blocked:
            # Also when it was blocked already: a safety net for anything another writer queued.
            dropped = queries.drop_waiting_messages(
                conn, clinic_id=clinic_id, patient_id=patient_id
            )
        # Only a change is audited: repeating the current value (a double click) changes nothing.
        if row["was_blocked"] != blocked:
            record(
                conn,
                "patient.block" if blocked else "patient.unblock",
                patient_id=patient_id,
                details={
                    "from": row["was_blocked"],
                    "to": blocked,
                    "reason": reason,
                    "dropped_messages": dropped,
                },
            )
    return Response(row["body"], mimetype="application/json")


def read_body() -> tuple[bool, str | None]:
    """{"blocked": <boolean>, "reason": <optional string>}, nothing else."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise validation_error("body", N_('must be a JSON object like {"blocked": true}'))
    for field in body:
        if field not in FIELDS:
            raise validation_error(str(field)[:100], N_("is not a known field"))
    if "blocked" not in body:
        raise validation_error("blocked", N_("is required"))
    blocked = body["blocked"]
    if not isinstance(blocked, bool):
        raise validation_error("blocked", N_("must be true or false"))
    reason = body.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise validation_error("reason", N_("must be a string"))
        if "\x00" in reason:
            raise validation_error("reason", N_("must not contain NUL characters"))
        if len(reason) > MAX_REASON_LENGTH:
            raise validation_error(
                "reason", N_("must be at most %(maximum)d characters"), maximum=MAX_REASON_LENGTH
            )
        reason = reason.strip() or None
    return blocked, reason
