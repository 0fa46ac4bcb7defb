"""`make run` and its companions: from a clean checkout to a working curl, and back to nothing running.

    python -m patients.ops.dev serve [--env-file PATH]   make run
    python -m patients.ops.dev status                    make status
    python -m patients.ops.dev stop                      make stop
    python -m patients.ops.dev psql                      make psql
    python -m patients.ops.dev clean-data                make clean-data

`serve` writes `.env` with fresh secrets on first use, starts the embedded PostgreSQL (unless
DATABASE_URL names another server), applies the schema, loads the demo clinic, mints tokens,
starts gunicorn, waits for /healthz and prints, last, the `export` lines the README's examples use.
Ctrl-C, SIGTERM or SIGHUP stop gunicorn and the PostgreSQL it runs on. Stopping never depends on
stdout: `make run | tee log` loses its reader on Ctrl-C, so every line we print may fail, and a
failed print must not skip the stop (it did: BrokenPipeError, PostgreSQL left running).

Mistakes a newcomer makes (port taken, wrong DATABASE_URL, a bad JWT_SECRET) are one line on
stderr and exit status 1, before anything is seeded.

Only the standard library at import time, so `make stop` and `make status` work before the venv.
"""

import argparse
import base64
import contextlib
import errno
import http.client
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from patients.ops.embedded_pg import Cluster, project_cluster

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / ".env"
OWNER_FILE = (
    "make-run.pid"  # in the embedded cluster's socket folder: "<serve pid> <gunicorn pid> <port>"
)
TOKEN_HOURS = 12


class Refusal(Exception):
    """A mistake we can name: printed as one line on stderr, exit status 1."""

    def __init__(self, message: str, **params):
        super().__init__(message % params if params else message)


# -- printing that cannot fail ---------------------------------------------------------------
def _emit(stream, text: str) -> None:
    try:
        stream.write(text + "\n")
        stream.flush()
    except (BrokenPipeError, OSError, ValueError):
        # The reader is gone (`| tee` after Ctrl-C). Point the descriptor at /dev/null so neither
        # this nor the interpreter's final flush raises again, and carry on stopping.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


def say(*lines: str) -> None:
    for line in lines:
        _emit(sys.stdout, line)


def warn(line: str) -> None:
    _emit(sys.stderr, line)


# -- .env -----------------------------------------------------------------------------------
def new_dui_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def ensure_env_file(path: Path) -> None:
    """Fresh secrets on first use; demo WhatsApp values added to an older .env that has none."""
    demo = {
        "WHATSAPP_VERIFY_TOKEN": f"demo-verify-{secrets.token_hex(8)}",
        "WHATSAPP_APP_SECRET": f"demo-app-secret-{secrets.token_hex(16)}",
    }
    if not path.exists():
        path.write_text(
            "# Made by `make run` for this checkout; never commit it.\n"
            f"JWT_SECRET={secrets.token_urlsafe(48)}\n"
            f"DUI_KEYS={new_dui_key()}\n"
            "# Demo values so the README's webhook examples work; use Meta's in production.\n"
            + "".join(f"{name}={value}\n" for name, value in demo.items())
        )
        path.chmod(0o600)
        return
    present = {line.partition("=")[0].strip() for line in path.read_text().splitlines()}
    missing = {name: value for name, value in demo.items() if name not in present}
    if missing:
        with path.open("a") as env:
            env.write("# Demo values added by `make run` for the README's webhook examples.\n")
            env.writelines(f"{name}={value}\n" for name, value in missing.items())


def load_env_file(path: Path) -> None:
    """The environment wins over .env, so `PORT=8001 make run` does what it says."""
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            os.environ.setdefault(name.strip(), value.strip())


# -- checks before anything is started --------------------------------------------------------
def check_port(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise Refusal("HOST=%(host)s is not an address of this machine", host=host) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Refusal(
                    "port %(port)s is taken: PORT=%(other)s make run", port=port, other=port + 1
                ) from None
            raise Refusal(
                "cannot listen on %(host)s:%(port)s: %(why)s",
                host=host,
                port=port,
                why=exc.strerror,
            ) from None


def owner_path(cluster: Cluster) -> Path:
    return cluster.socket_dir / OWNER_FILE


def read_owner(cluster: Cluster) -> tuple[int, int, int] | None:
    """(serve pid, gunicorn pid, port) of a `make run` of this checkout that is still alive."""
    try:
        serve_pid, gunicorn_pid, port = map(int, owner_path(cluster).read_text().split())
    except (OSError, ValueError):
        return None
    return (serve_pid, gunicorn_pid, port) if alive(serve_pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_health(host: str, port: int, gunicorn: subprocess.Popen, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gunicorn.poll() is not None:
            raise SystemExit(gunicorn.returncode or 1)  # gunicorn said why, in one line
        if healthz(host, port) == 200:
            return
        time.sleep(0.2)
    raise Refusal("gunicorn did not answer /healthz within %(s)d s", s=timeout)


# -- make run ---------------------------------------------------------------------------------
_interrupted = False


def _interrupt(signum, frame):
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def serve(env_file: Path) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)  # also when started with SIGINT ignored (`&`)
    ensure_env_file(env_file)
    load_env_file(env_file)
    # This machine only, unless HOST says otherwise: a development server with demo tokens is no
    # one else's business (production's default, 0.0.0.0, is what platforms route to).
    os.environ.setdefault("HOST", "127.0.0.1")

    gunicorn = None
    cluster = None  # the embedded PostgreSQL, when this run owns it
    try:
        from patients.config import ConfigError, app_settings, check_app_settings, server_settings

        try:
            settings, server = app_settings(), server_settings()
            check_app_settings(settings)
        except ConfigError as exc:
            raise Refusal(str(exc)) from None
        host, port = server["host"], server["port"]
        check_port(host, port)

        embedded = project_cluster()
        url = settings["DATABASE_URL"] or ""
        if not url or url == embedded.url:  # a pasted `export DATABASE_URL=` of the embedded one
            owner = read_owner(embedded)
            if owner:
                raise Refusal(
                    "make run of this checkout already serves on port %(port)s: make stop",
                    port=owner[2],
                )
            # Ours to stop from now on, also when an earlier run was killed and left it running.
            cluster = embedded
            if not embedded.running():
                say(f"Starting the embedded PostgreSQL in {embedded.datadir} …")
                try:
                    embedded.start()
                except RuntimeError as exc:
                    raise Refusal(str(exc).splitlines()[0]) from None
            url = embedded.url
            os.environ["DATABASE_URL"] = url

        demo = prepare_database(url)

        # The URL to paste: all interfaces include loopback.
        base_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        base = f"http://{base_host}:{port}"
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--log-level", "warning", "app:create_app()"],
            cwd=ROOT,
            # Out of the terminal's process group: Ctrl-C reaches us alone and we stop gunicorn
            # with one signal. Had its workers the terminal's SIGINT and then the master's
            # SIGQUIT, the second could land inside the first's handler and deadlock a worker
            # on its thread pool's lock (seen: one stop in six, 20 s until the master's SIGKILL).
            start_new_session=True,
        )
        if cluster is not None:
            owner_path(cluster).write_text(f"{os.getpid()} {gunicorn.pid} {port}\n")
        wait_for_health(base_host, port, gunicorn)
        say(
            "",
            f"Patients API on {base}, demo clinic {demo['clinic_id']} (Pro plan). "
            "Ctrl-C stops it (and its PostgreSQL).",
            f"Tokens live {TOKEN_HOURS} hours; more: .venv/bin/flask --app app mint-token "
            f"--clinic {demo['clinic_id']} --role staff",
            "Paste these lines into another terminal, then try the README's examples:",
            "",
            f"export BASE={base}",
            f"export ADMIN_TOKEN={demo['admin_token']}",
            f"export STAFF_TOKEN={demo['staff_token']}",
            f"export PATIENT_ID={demo['patient_id']}",
            f"export DATABASE_URL={shlex.quote(url)}",
            f"export WHATSAPP_VERIFY_TOKEN={shlex.quote(settings['WHATSAPP_VERIFY_TOKEN'] or '')} "
            f"WHATSAPP_APP_SECRET={shlex.quote(settings['WHATSAPP_APP_SECRET'] or '')}",
        )
        code = gunicorn.wait()
        return 130 if _interrupted else code
    except KeyboardInterrupt:
        return 130
    except Refusal as exc:
        warn(str(exc))
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        stopped = []
        if gunicorn is not None and gunicorn.poll() is None:
            gunicorn.send_signal(signal.SIGINT)  # gunicorn's quick shutdown, as Ctrl-C would be
            try:
                gunicorn.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(gunicorn.pid, signal.SIGKILL)  # its group: master and workers
                gunicorn.wait()
            stopped.append("gunicorn")
        if cluster is not None:
            with contextlib.suppress(OSError):
                owner_path(cluster).unlink()
            if cluster.running():
                cluster.stop()
                stopped.append("the embedded PostgreSQL")
        if stopped:  # said after the fact: a failed print can no longer skip a stop
            say(f"Stopped {' and '.join(stopped)}.")


def prepare_database(url: str) -> dict:
    """Schema, demo clinic and tokens: one line of what went wrong if the database is not usable."""
    import psycopg

    from app import create_app
    from patients.db import apply_schema, cannot_connect
    from patients.ops import cli

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            apply_schema(conn)
    except psycopg.OperationalError as exc:
        raise Refusal(cannot_connect(url, exc)) from None
    say("Schema applied. Loading the demo clinic …")
    app = create_app({"DATABASE_URL": url, "POOL_MAX_SIZE": 1})
    try:
        with app.app_context(), app.extensions["pool"].connection() as conn:
            demo = cli.seed_demo_clinic(conn, app.extensions["dui_keys"])
        return {
            "clinic_id": demo.clinic_id,
            "patient_id": demo.patient_id,
            "admin_token": cli.mint_configured_token(
                app.config, demo.clinic_id, "admin", "demo-admin", TOKEN_HOURS
            ),
            "staff_token": cli.mint_configured_token(
                app.config, demo.clinic_id, "staff", "demo-staff", TOKEN_HOURS
            ),
        }
    finally:
        app.extensions["pool"].close()


# -- make status / stop / psql / clean-data ---------------------------------------------------
def status() -> int:
    cluster = project_cluster()
    owner = read_owner(cluster)
    if not cluster.initialised():
        say(f"embedded PostgreSQL: no data yet ({cluster.datadir}; make run creates it)")
    elif cluster.running():
        say(f"embedded PostgreSQL: running, data in {cluster.datadir}")
        say(f"  export DATABASE_URL={shlex.quote(cluster.url)}")
    else:
        say(f"embedded PostgreSQL: stopped, data in {cluster.datadir}")
    if owner:
        serve_pid, gunicorn_pid, port = owner
        health = healthz("127.0.0.1", port) or "does not answer"
        say(
            f"make run: serving on port {port} (pid {serve_pid}, gunicorn {gunicorn_pid}), /healthz {health}"
        )
    else:
        leftover = leftover_gunicorn(cluster)
        if leftover:
            say(f"make run: not running, but its gunicorn (pid {leftover}) is: make stop")
        else:
            say("make run: not running")
    from patients.config import app_settings

    url = app_settings()["DATABASE_URL"]
    if url and url != cluster.url:
        say("DATABASE_URL is set: make run would use that database, not the embedded one")
    return 0


def leftover_gunicorn(cluster: Cluster) -> int | None:
    """The gunicorn of a `make run` killed with -9 outlives it; the owner file names it."""
    try:
        _, gunicorn_pid, _ = map(int, owner_path(cluster).read_text().split())
        command = Path(f"/proc/{gunicorn_pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return gunicorn_pid if b"gunicorn" in command else None  # not a recycled pid


def healthz(host: str, port: int) -> int | None:
    """/healthz's status, None when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=3)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def stop() -> int:
    cluster = project_cluster()
    owner = read_owner(cluster)
    did = False
    if owner:
        serve_pid = owner[0]
        os.kill(serve_pid, signal.SIGTERM)  # it stops its gunicorn and PostgreSQL itself
        deadline = time.monotonic() + 40
        while alive(serve_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        say(f"stopped make run (pid {serve_pid})")
        did = True
    else:
        leftover = leftover_gunicorn(cluster)
        if leftover:
            os.kill(leftover, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while alive(leftover) and time.monotonic() < deadline:
                time.sleep(0.2)
            say(f"stopped a leftover gunicorn (pid {leftover})")
            did = True
        with contextlib.suppress(OSError):
            owner_path(cluster).unlink()
    if cluster.running():
        cluster.stop()
        say(f"stopped the embedded PostgreSQL ({cluster.datadir})")
        did = True
    if not did:
        say("nothing of this checkout is running")
    return 0


def psql() -> int:
    from patients.config import app_settings

    cluster = project_cluster()
    url = app_settings()["DATABASE_URL"] or cluster.url
    if url == cluster.url and not cluster.running():
        raise Refusal("the embedded PostgreSQL is not running: make run (or make status)")
    binary = shutil.which("psql") or str(cluster.bindir / "psql")
    os.execv(binary, [binary, url])  # noqa: S606 (psql, found on the PATH or beside pg_ctl)


def clean_data() -> int:
    cluster = project_cluster()
    owner = read_owner(cluster)
    if owner:
        raise Refusal("make run serves on port %(port)s: make stop first", port=owner[2])
    if cluster.running():
        cluster.stop()
    removed = []
    folder = cluster.datadir
    # The fallback for clones the postgres user cannot reach: remove the whole <hash>/ folder.
    if folder.parent.parent == Path("/var/lib/patients-api"):
        folder = folder.parent
    for path in (folder, cluster.socket_dir):
        if path.exists():
            shutil.rmtree(path)
            removed.append(str(path))
    say(f"removed {', '.join(removed)}" if removed else f"no data to remove ({cluster.datadir})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patients.ops.dev")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="make run")
    run.add_argument("--env-file", type=Path, default=ENV_FILE)
    for name in ("status", "stop", "psql", "clean-data"):
        commands.add_parser(name, help=f"make {name}")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args.env_file)
        return {"status": status, "stop": stop, "psql": psql, "clean-data": clean_data}[
            args.command
        ]()
    except Refusal as exc:
        warn(str(exc))
        return 1
    except RuntimeError as exc:  # the embedded PostgreSQL's: no binaries, initdb or start failed
        warn(str(exc).strip().splitlines()[0])
        return 1


if __name__ == "__main__":
    sys.exit(main())
