"""GET /healthz: is the database answering? No auth, for load balancers and the run command."""

from flask import Blueprint

from patients import db
from patients.repository import queries

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    with db.connection() as conn:
        queries.ping(conn)
    return {"status": "ok"}
