"""`make run`: the embedded default from a clean checkout to a working curl.

Creates `.env` with fresh secrets on first use, starts the project's own PostgreSQL (unless
DATABASE_URL is set), applies the schema, loads the demo clinic, mints tokens, and serves on
gunicorn. Ctrl-C stops gunicorn and the PostgreSQL it started.
"""

import base64
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / ".env"


def ensure_env_file() -> None:
    if ENV_FILE.exists():
        return
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    ENV_FILE.write_text(
        "# Made by `make run` for this checkout; never commit it.\n"
        f"JWT_SECRET={secrets.token_urlsafe(48)}\n"
        f"DUI_KEYS={key}\n"
    )
    ENV_FILE.chmod(0o600)


def load_env_file() -> None:
    for line in ENV_FILE.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            os.environ.setdefault(name.strip(), value.strip())


def interrupt(signum, frame):
    raise KeyboardInterrupt


def serve() -> int:
    signal.signal(signal.SIGTERM, interrupt)  # `kill` stops gunicorn and PostgreSQL like Ctrl-C
    ensure_env_file()
    load_env_file()

    from app import create_app
    from patients.config import app_settings, server_settings
    from patients.db import apply_schema
    from patients.ops import cli
    from patients.ops.embedded_pg import start_embedded

    started = None
    url = app_settings()["DATABASE_URL"]
    if not url:
        url, started = start_embedded(
            say=lambda line: print(line[:1].upper() + line[1:] + " …", flush=True)
        )
        # gunicorn's master finds it running and leaves it to us
        os.environ["DATABASE_URL"] = url
    try:
        with psycopg.connect(url) as conn:
            apply_schema(conn)
        print("Schema applied. Loading the demo clinic …", flush=True)
        app = create_app({"POOL_MAX_SIZE": 1})
        with app.app_context():
            with app.extensions["pool"].connection() as conn:
                clinic_id = cli.seed_demo_clinic(conn, app.extensions["dui_keys"])
            admin = cli.mint_configured_token(app.config, clinic_id, "admin", "demo-admin", 12)
            staff = cli.mint_configured_token(app.config, clinic_id, "staff", "demo-staff", 12)
        app.extensions["pool"].close()

        # This machine only: a development server with demo tokens is no one else's business
        # (HOST=0.0.0.0 make run to show it on the network).
        os.environ.setdefault("HOST", "127.0.0.1")
        port = server_settings()["port"]
        base = f"http://127.0.0.1:{port}"
        os.environ["PATIENTS_READY_HINT"] = "\n".join(
            [
                "",
                f"Patients API is up on {base} (demo clinic {clinic_id}, Pro plan).",
                "Tokens live 12 hours; mint more with: "
                f".venv/bin/flask --app app mint-token --clinic {clinic_id} --role staff",
                f"Staff token: {staff}",
                f"Admin token: {admin}",
                "Stop with Ctrl-C. Try:",
                f"curl -s -H 'Authorization: Bearer {staff}' '{base}/api/patients?search=perez&limit=3'",
            ]
        )
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--log-level", "warning", "app:create_app()"],
            cwd=ROOT,
        )
        try:
            return gunicorn.wait()
        except KeyboardInterrupt:
            gunicorn.send_signal(signal.SIGTERM)
            return gunicorn.wait()
    finally:
        if started is not None:
            print("Stopping the embedded PostgreSQL …", flush=True)
            started.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        sys.exit("usage: python -m patients.ops.dev serve")
    sys.exit(serve())
