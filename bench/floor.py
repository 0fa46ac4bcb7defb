"""The framework floor: gunicorn (same gunicorn.conf.py) answering `SELECT 1` from the same pool.

No Flask, no auth, no logging: what any Python service on this stack pays per request. The
product's list throughput is compared with this. Not a route of the product.
"""

import os

from patients.db import make_pool
from patients.repository import queries

BODY = b'{"ok":1}'


def create_app():
    pool = make_pool(
        os.environ["DATABASE_URL"],
        max_size=int(os.environ.get("POOL_MAX_SIZE", "4")),
        timeout=float(os.environ.get("POOL_TIMEOUT", "3")),
    )

    def app(environ, start_response):
        with pool.connection() as conn:
            queries.ping(conn)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "8")])
        return [BODY]

    return app
