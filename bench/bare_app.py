"""The bare reference: a plain Flask app on the same gunicorn configuration, answering the same SQL.

What any Flask service on this stack pays per request: HTTP through gunicorn, Flask's routing and
request context, a connection from a psycopg_pool pool (its defaults: no check on checkout), the
product's own named queries (patients.repository) with the parameters the product's views pass,
and the answer as JSON. Nothing else: no token (the clinic comes in the `X-Clinic-Id` header), no
access log, no request hooks, no input validation, no error vocabulary. The service's per-request
cost is measured against this (`bench.run`); bench/floor.py (no Flask at all) stays beside it.

Each route runs the statements its product endpoint runs, in the same order, on connections with
the same session settings, and answers the same body (the bench checks that byte for byte), so
what the two sides differ by is the service's own code.
Not a route of the product; run with `gunicorn -c gunicorn.conf.py 'bench.bare_app:create_app()'`.
"""

import json
import uuid

from flask import Flask, Response, request
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from patients import search
from patients.config import app_settings
from patients.dui import DuiKeys
from patients.repository import queries

# The session the product's connections get (patients/db.py): the same plans, the same limits.
OPTIONS = (
    "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000"
    " -c plan_cache_mode=force_custom_plan"
)


def create_app() -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    settings = app_settings()
    pool = ConnectionPool(
        settings["DATABASE_URL"],
        min_size=1,
        max_size=settings["POOL_MAX_SIZE"],
        timeout=settings["POOL_TIMEOUT"],
        kwargs={"row_factory": dict_row, "options": OPTIONS, "application_name": "bench-bare"},
        name="bare",
        open=True,
    )
    keys = DuiKeys(settings["DUI_KEYS"])

    @app.get("/healthz")
    def healthz():
        with pool.connection() as conn:
            queries.ping(conn)
        return {"status": "ok"}

    @app.get("/api/patients")
    def list_patients():
        term = request.args.get("search")
        page = int(request.args.get("page", "1"))
        limit = 50
        params = {
            "clinic_id": request.headers["X-Clinic-Id"],
            "blocked": None,
            "page": page,
            "limit": limit,
            "offset": (page - 1) * limit,
        }
        with pool.connection() as conn:
            if term is None:
                row = queries.list_patients(conn, **params)
            elif search.narrowed_by_trigrams(term):
                row = queries.search_patients(conn, **params, **search.parameters(term))
            else:
                row = queries.search_patients_short_term(conn, **params, **search.parameters(term))
        return Response(row["body"], mimetype="application/json")

    @app.get("/api/patients/<patient_id>")
    def show_patient(patient_id):
        """The record as an admin reads it: the reveal audited by the same statement, the DUI
        opened and put in the body PostgreSQL built."""
        clinic_id = request.headers["X-Clinic-Id"]
        with pool.connection() as conn:
            row = queries.get_patient_record(
                conn,
                clinic_id=clinic_id,
                patient_id=patient_id,
                reveal=True,
                actor_id="bench",
                actor_role="admin",
                request_id=uuid.uuid4().hex,
                client_ip=request.remote_addr,
            )
        body = row["body"]
        if row["audit_id"] is not None:
            clear = keys.decrypt(clinic_id, row["id"], row["dui_ciphertext"], row["dui_key_id"])
            body = body[: -len("null}")] + json.dumps(clear) + "}"
        return Response(body, mimetype="application/json")

    return app
