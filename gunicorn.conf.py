"""gunicorn settings for the Patients API (the Procfile's web process and `make run` read this file).

Every value comes from patients/config.py, the one reader of the environment. Mistakes in it stop
the master before it forks: one line on stderr and exit status 1, not a traceback from every
worker it would boot (and not an embedded PostgreSQL left running behind them).
"""

import atexit
import errno
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from patients.api.errors import install_early_errors
from patients.config import ConfigError, app_settings, check_app_settings, server_settings


def _refuse(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
    sys.exit(1)  # SystemExit passes through gunicorn's config loader and arbiter untouched


try:
    settings = server_settings()
    check_app_settings(app_settings())
except ConfigError as exc:
    _refuse(str(exc))

bind = f"{settings['host']}:{settings['port']}"
# Threads overlap the waits on PostgreSQL; a process per core spreads the Python work.
workers = settings["workers"]
# gthread, not sync, even behind nginx (which gunicorn's docs pair with sync workers). Measured by
# `make bench` behind deploy/nginx.conf on 2 cores (bench/results.md, "Worker model", 2026-12-01):
# at 16 clients 2 x 4 gthread served the list at 998 req/s (p99 34 ms), 2 sync workers at 984,
# 5 sync workers (2 x cores + 1) at 864 (p99 27 ms); while one slow client downloaded an export,
# 859, 506 and 834. nginx buffers requests and JSON answers, but streams the export unbuffered (its
# audit row must say how much the client really took), so a slow download, like an import, holds
# what serves it for its whole length: a whole sync worker, one thread of a gthread one. Five sync
# workers come close only with five processes' memory (2.5x), and five slow downloads would leave
# no worker at all; 2 x 4 threads serve as fast with eight slots in two processes.
worker_class = "gthread"
threads = settings["threads"]
# Never preload: each worker opens its own connection pool after the fork.
preload_app = False
# A request that takes longer than this is killed (its transaction rolls back with the connection).
timeout = settings["timeout"]
graceful_timeout = 20
keepalive = 5
# gunicorn applies no X-Forwarded-* itself (an empty list: no peer is trusted); the app's ProxyFix
# (TRUSTED_PROXIES hops, default none) decides what request.remote_addr, the scheme and the host
# are. Production keeps HOST (a platform routes to 0.0.0.0); with nginx on the same host, bind
# HOST=127.0.0.1 so nothing else reaches gunicorn.
forwarded_allow_ips = settings["forwarded_allow_ips"]
# A second gunicorn beside this one (tests, bench) must not fight over the default control socket.
control_socket_disable = settings["control_socket"] is None
if not control_socket_disable:
    control_socket = settings["control_socket"]
accesslog = None  # the app logs each request as a JSON line, without query strings
errorlog = "-"
limit_request_line = 8190
limit_request_fields = 100

install_early_errors()  # requests gunicorn refuses itself are answered in JSON too

_embedded = None


def check_free(address) -> None:
    """gunicorn would retry a taken port five times, a line each, then give up: say it once."""
    if not isinstance(address, tuple):  # a unix socket path
        return
    host, port = address[0], address[1]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                _refuse(f"port {port} is taken: PORT={port + 1} (or stop what listens on it)")
            _refuse(f"cannot listen on {host}:{port}: {exc.strerror}")


def on_starting(server):
    """Before binding and forking: a free port, and the database (the embedded default started)."""
    global _embedded
    for address in server.cfg.address:
        check_free(address)
    import psycopg

    from patients.config import first_line
    from patients.db import apply_schema
    from patients.ops.embedded_pg import start_embedded

    if not settings["database_url"]:
        try:
            url, _embedded = start_embedded(say=server.log.info)
        except RuntimeError as exc:
            _refuse(first_line(exc))
        if _embedded is not None:
            # Also when the master dies another way than on_exit covers (a worker that cannot
            # boot halts it from inside the arbiter); workers inherit this hook, hence the pid.
            atexit.register(_stop_embedded, os.getpid())
        os.environ["DATABASE_URL"] = url  # the workers' create_app() reads it
        with psycopg.connect(url) as conn:
            apply_schema(conn)
        return
    try:
        with psycopg.connect(settings["database_url"], connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        # Not fatal: a database that comes up after us is served as soon as it answers (503
        # until then), so a restart never depends on the order things boot in.
        server.log.warning("the database does not answer yet: %s", first_line(exc))


def _stop_embedded(master_pid: int) -> None:
    if os.getpid() == master_pid and _embedded is not None:
        _embedded.stop()


def on_exit(server):
    if _embedded is not None:
        server.log.info("stopping the embedded PostgreSQL")
        _embedded.stop()
