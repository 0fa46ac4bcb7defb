"""The framework floor: gunicorn (same gunicorn.conf.py) answering `SELECT 1` from the same pool.

No Flask, no auth, no logging: what any Python service on this stack pays per request. The
product's list throughput is compared with this. Not a route of the product.
"""

from patients.config import app_settings
from patients.db import make_pool
from patients.repository import queries

BODY = b'{"ok":1}'


def create_app():
    settings = app_settings()
    pool = make_pool(
        settings["DATABASE_URL"],
        max_size=settings["POOL_MAX_SIZE"],
        timeout=settings["POOL_TIMEOUT"],
    )

    def app(environ, start_response):
        with pool.connection() as conn:
            queries.ping(conn)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "8")])
        return [BODY]

    return app
