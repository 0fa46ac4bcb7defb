"""GET /api/patients (list and search) and GET /api/patients/<id> (the full record)."""

from flask import Blueprint, Response, request

from patients import db, search
from patients.api import params
from patients.api.auth import caller, require_role, reveal_parameters, reveals_dui
from patients.api.errors import not_found
from patients.repository import queries

bp = Blueprint("patients", __name__, url_prefix="/api/patients")


@bp.get("")
@require_role("admin", "staff")
def list_patients():
    term = params.text(request.args, "search")
    page = params.page(request.args)
    limit = params.limit(request.args)
    blocked = params.boolean(request.args, "blocked")

    arguments = {
        "clinic_id": caller().clinic_id,
        "blocked": blocked,
        "page": page,
        "limit": limit,
        "offset": (page - 1) * limit,
    }
    with db.connection() as conn:
        if term is None:
            row = queries.list_patients(conn, **arguments)
        else:
            find = (
                queries.search_patients
                if search.narrowed_by_trigrams(term)
                else queries.search_patients_short_term
            )
            row = find(conn, **arguments, **search.parameters(term))
    # PostgreSQL built the whole body; it goes out as it came.
    return Response(row["body"], mimetype="application/json")


@bp.get("/<patient_id:patient_id>")
@require_role("admin", "staff")
@reveals_dui
def show_patient(patient_id):
    patient_id = params.patient_id(patient_id)
    with db.connection() as conn:
        row = queries.get_patient_record(
            conn, clinic_id=caller().clinic_id, patient_id=patient_id, **reveal_parameters()
        )
    if row is None:
        raise not_found()
    # PostgreSQL built the body; @reveals_dui puts the DUI in (clear or null) and sends it.
    return row
