"""Mistakes a newcomer or an operator makes are refused in one line and a non-zero exit status.

Configuration: each process is run for real (gunicorn with gunicorn.conf.py, `python -m
patients.ops.dev serve`, which is `make run`, and `flask --app app …`) and its stderr must be the
one line that names the problem, never a traceback, never once per worker. Operator commands:
through Flask's CLI runner, with the database checked afterwards (nothing written).
"""

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import jwt
import pytest

from tests.helpers import DUI_KEY, JWT_SECRET

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(database_url, **changes) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WHATSAPP_", "GUNICORN_", "PG")) and k not in ("HOST", "PORT")
    }
    env.update(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET, DUI_KEYS=DUI_KEY)
    env.update(WEB_CONCURRENCY="2", PYTHONUNBUFFERED="1")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def gunicorn(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", *args, "app:create_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=45,
    )


def make_run(env: dict, tmp_path) -> subprocess.CompletedProcess:
    env_file = tmp_path / "env"
    if not env_file.exists():
        env_file.write_text("")  # everything from `env`; serve adds only the demo webhook values
    return subprocess.run(
        [sys.executable, "-m", "patients.ops.dev", "serve", "--env-file", str(env_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=45,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


JWT_LINE = (
    "JWT_SECRET must be set (at least 32 characters): "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
)


@pytest.mark.parametrize("secret", [None, "", "too-short"])
def test_gunicorn_without_a_usable_jwt_secret(database_url, secret):
    result = gunicorn(environment(database_url, JWT_SECRET=secret), "--bind", "127.0.0.1:1")
    assert one_line(result) == JWT_LINE
    assert result.returncode == 1


def test_gunicorn_with_the_example_placeholder_secret(database_url):
    """.env.example's old value was long enough: an operator who copied it ran on a public secret."""
    placeholder = "change-me-to-at-least-32-random-characters-please"
    result = gunicorn(environment(database_url, JWT_SECRET=placeholder), "--bind", "127.0.0.1:1")
    assert one_line(result) == (
        "JWT_SECRET is still the example's placeholder: make one with "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
    )


def test_gunicorn_with_a_jwks_url_that_is_not_https(database_url):
    env = environment(database_url, JWT_JWKS_URL="http://example.org/auth/v1/.well-known/jwks.json")
    line = one_line(gunicorn(env, "--bind", "127.0.0.1:1"))
    assert line.startswith(
        "JWT_JWKS_URL: 'http://example.org/auth/v1/.well-known/jwks.json' is not"
    )


def test_gunicorn_with_a_dui_key_that_is_not_one(database_url):
    result = gunicorn(environment(database_url, DUI_KEYS="nonsense"))
    assert one_line(result) == (
        "DUI_KEYS entry 1 is not 32 bytes: python3 -c "
        "'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
    )


def test_gunicorn_with_a_port_that_is_not_a_number(database_url):
    result = gunicorn(environment(database_url, PORT="eighty"))
    assert one_line(result) == "PORT must be a whole number, not 'eighty'"


@pytest.mark.parametrize("wait", ["0", "-5"])
def test_gunicorn_with_an_import_lock_wait_that_cannot_work(database_url, wait):
    # 0 used to become PostgreSQL's lock_timeout '0ms' (wait forever), -5 a 500 on every import.
    result = gunicorn(environment(database_url, IMPORT_LOCK_WAIT_SECONDS=wait))
    assert one_line(result) == (
        "IMPORT_LOCK_WAIT_SECONDS must be a number of seconds above 0 and at most 3600, "
        f"not {float(wait)!r}"
    )
    assert result.returncode == 1


def test_gunicorn_with_a_database_url_that_is_not_one(database_url):
    result = gunicorn(environment(database_url, DATABASE_URL="not a url"))
    assert one_line(result).startswith("DATABASE_URL is not a PostgreSQL URL: ")


def test_gunicorn_on_a_taken_port(database_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gunicorn(environment(database_url, PORT=str(port)), "--log-level", "warning")
    # Not five "Connection in use" retries and a traceback: one line, at once.
    assert one_line(result) == f"port {port} is taken: PORT={port + 1} (or stop what listens on it)"
    assert result.returncode == 1


def test_make_run_on_a_taken_port(database_url, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = make_run(environment(database_url, PORT=str(port)), tmp_path)
    assert one_line(result) == f"port {port} is taken: PORT={port + 1} make run"
    assert result.stdout == ""  # refused before anything was started or seeded


def test_make_run_with_a_database_that_does_not_answer(database_url, tmp_path):
    result = make_run(environment(UNREACHABLE, PORT=str(free_port())), tmp_path)
    assert one_line(result) == (
        "cannot connect to the database at 127.0.0.1:1/nothing: Connection refused"
    )
    assert result.returncode == 1


def test_make_run_with_a_short_jwt_secret_in_env(database_url, tmp_path):
    (tmp_path / "env").write_text("JWT_SECRET=short\n")
    result = make_run(environment(database_url, JWT_SECRET=None, PORT=str(free_port())), tmp_path)
    assert one_line(result) == JWT_LINE


def test_make_run_writes_demo_webhook_values_into_an_older_env_file(database_url, tmp_path):
    """An .env made before the webhook examples existed gets the demo values added, once."""
    (tmp_path / "env").write_text("JWT_SECRET=short\n")
    make_run(environment(database_url, JWT_SECRET=None, PORT=str(free_port())), tmp_path)
    make_run(environment(database_url, JWT_SECRET=None, PORT=str(free_port())), tmp_path)
    lines = (tmp_path / "env").read_text().splitlines()
    assert lines[0] == "JWT_SECRET=short"
    assert [line.split("=")[0] for line in lines if "=" in line] == [
        "JWT_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "WHATSAPP_APP_SECRET",
    ]


def test_flask_commands_without_a_jwt_secret(database_url):
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "init-db"],
        cwd=ROOT,
        env=environment(database_url, JWT_SECRET=None),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert one_line(result) == f"Error: {JWT_LINE}"


def test_flask_command_with_a_database_that_does_not_answer():
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "init-db"],
        cwd=ROOT,
        env=environment(UNREACHABLE),
        capture_output=True,
        text=True,
        timeout=30,
    )
    # The pool, opened by create_app(), logs its own failed attempts (JSON log lines, before or
    # after); the command's answer is one line of its own.
    assert result.returncode == 1 and "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if not line.startswith('{"ts"')]
    assert said == [
        "Error: cannot connect to the database at 127.0.0.1:1/nothing: Connection refused"
    ]


# -- operator commands refuse mistakes ------------------------------------------------------
def clinics_named(sql, name):
    return sql.execute("SELECT country_code FROM clinics WHERE name = %s", (name,)).fetchall()


def test_create_clinic_refuses_an_unknown_country(runner, sql):
    name = f"Clínica {uuid.uuid4().hex[:8]}"
    result = runner.invoke(args=["create-clinic", name, "--country", "ZZ"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: unknown country 'ZZ': use a two-letter region phonenumbers knows "
        "(SV, GT, HN, MX, US, …)\n"
    )
    assert clinics_named(sql, name) == []


def test_create_clinic_refuses_an_unknown_time_zone(runner, sql):
    name = f"Clínica {uuid.uuid4().hex[:8]}"
    result = runner.invoke(args=["create-clinic", name, "--timezone", "Mars/Olympus"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: unknown time zone 'Mars/Olympus': use an IANA name such as America/El_Salvador\n"
    )
    assert clinics_named(sql, name) == []


def test_create_clinic_takes_a_lower_case_country(runner, sql):
    name = f"Clínica {uuid.uuid4().hex[:8]}"
    result = runner.invoke(args=["create-clinic", name, "--country", "gt"])
    assert result.exit_code == 0, result.output
    assert str(uuid.UUID(result.output.strip())) == result.output.strip()
    assert clinics_named(sql, name) == [{"country_code": "GT"}]


def test_mint_token_refuses_a_clinic_that_does_not_exist(runner):
    missing = uuid.uuid4()
    result = runner.invoke(args=["mint-token", "--clinic", str(missing)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: no clinic {missing} in this database: create-clinic prints the id of a new one\n"
    )


def test_mint_token_refuses_a_lifetime_that_is_over(runner, clinic):
    result = runner.invoke(args=["mint-token", "--clinic", clinic.id, "--hours", "0"])
    assert result.exit_code == 1
    assert result.output == "Error: --hours must be more than 0\n"


def test_mint_token_for_a_clinic_that_exists(runner, clinic, client):
    result = runner.invoke(args=["mint-token", "--clinic", clinic.id, "--role", "admin"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["app_metadata"] == {"clinic_id": clinic.id, "role": "admin"}
    answer = client.get("/api/audit", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
