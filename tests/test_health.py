"""/healthz answers 200 with a database and 503 (JSON, Retry-After, quickly) without one."""

import time

from app import create_app


def test_healthz_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_healthz_down_is_a_quick_503(config, tmp_path):
    # A socket directory where no PostgreSQL listens: the database is simply not there.
    dead = f"postgresql://postgres@/postgres?host={tmp_path}&port=5999"
    app = create_app({**config, "DATABASE_URL": dead, "POOL_TIMEOUT": 1.0})
    try:
        started = time.monotonic()
        response = app.test_client().get("/healthz")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.json["code"] == "SERVICE_UNAVAILABLE"
        assert response.headers["Retry-After"]
        assert elapsed < 5
    finally:
        app.extensions["pool"].close(timeout=1)
