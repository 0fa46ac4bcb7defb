"""GET /api/audit: the clinic's audit trail (DUI reveals, blocks, imports, exports), for admins."""

import uuid

from flask import Blueprint, Response, request

from patients import audit, db
from patients.api import params
from patients.api.auth import caller, require_role
from patients.api.errors import validation_error
from patients.messages import N_
from patients.repository import queries

bp = Blueprint("audit", __name__, url_prefix="/api/audit")


@bp.get("")
@require_role("admin")
def list_entries():
    page = params.integer(request.args, "page", default=1, minimum=1, maximum=1_000_000)
    limit = params.integer(request.args, "limit", default=50, minimum=1, maximum=200)
    patient_id, action = patient_filter(), action_filter()
    with db.connection() as conn:
        row = queries.list_audit_entries(
            conn,
            clinic_id=caller().clinic_id,
            patient_id=patient_id,
            action=action,
            page=page,
            limit=limit,
            offset=(page - 1) * limit,
        )
    return Response(row["body"], mimetype="application/json")


def patient_filter() -> str | None:
    # A query parameter, unlike a path id: a malformed one is the caller's mistake (400), not a 404.
    raw = params.text(request.args, "patient_id")
    if raw is None:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise validation_error("patient_id", N_("must be a patient id (a UUID)")) from None


def action_filter() -> str | None:
    raw = params.text(request.args, "action")
    if raw is not None and raw not in audit.ACTIONS:
        raise validation_error(
            "action", N_("must be one of %(actions)s"), actions=", ".join(sorted(audit.ACTIONS))
        )
    return raw
