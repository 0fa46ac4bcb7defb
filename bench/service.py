"""The service under test, run as in production: the tests' own live gunicorn (tests/live.py)."""

import secrets
from pathlib import Path

from patients.config import server_settings
from tests.live import LiveServer, status_kb

JWT_SECRET = "bench-" + secrets.token_hex(24)


def Gunicorn(app: str, env: dict, log_path: Path) -> LiveServer:
    """`app` is the WSGI target (the product, or one of the bench's floors), with every worker
    and thread that gunicorn.conf.py would give it."""
    settings = server_settings()
    return LiveServer(
        app=app,
        env={**env, "JWT_SECRET": JWT_SECRET},
        workers=settings["workers"],
        threads=settings["threads"],
        log_path=log_path,
    )


def vm_hwm_kb(pid: int) -> int:
    return status_kb(pid, "VmHWM")
