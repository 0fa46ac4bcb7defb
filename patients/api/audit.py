"""GET /api/audit: the clinic's audit trail (DUI reveals, blocks, imports, exports), for admins."""

from flask import Blueprint, Response, request

from patients import audit, db
from patients.api import params
from patients.api.auth import caller, require_role
from patients.repository import queries

bp = Blueprint("audit", __name__, url_prefix="/api/audit")


@bp.get("")
@require_role("admin")
def list_entries():
    page = params.page(request.args)
    limit = params.limit(request.args)
    patient_id = params.id_filter(request.args, "patient_id")
    action = params.choice(request.args, "action", audit.ACTIONS)
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
