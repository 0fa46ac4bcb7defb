"""gunicorn settings for the Patients API (the Procfile's web process reads this file)."""

import os
import sys

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Threads overlap the waits on PostgreSQL; a process per core spreads the Python work.
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Never preload: each worker opens its own connection pool after the fork.
preload_app = False
# A request that takes longer than this is killed (its transaction rolls back with the connection).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5
# gunicorn itself trusts X-Forwarded-* only from the proxy on this host; the app's ProxyFix
# (TRUSTED_PROXIES hops) decides what request.remote_addr and the scheme are.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# A second gunicorn beside this one (tests, bench) must not fight over the default control socket.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
accesslog = None  # the app logs each request as a JSON line, without query strings
errorlog = "-"
limit_request_line = 8190
limit_request_fields = 100

_embedded = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from patients import server_errors  # noqa: E402

server_errors.install()  # requests gunicorn refuses itself are answered in JSON too


def on_starting(server):
    """The embedded default: no DATABASE_URL, so start the project's own PostgreSQL first."""
    global _embedded
    if os.environ.get("DATABASE_URL"):
        return
    import psycopg

    from patients.db import apply_schema
    from patients.embedded_pg import project_cluster

    cluster = project_cluster()
    if not cluster.running():
        server.log.info("starting the embedded PostgreSQL in %s", cluster.datadir)
        cluster.start()
        _embedded = cluster
    os.environ["DATABASE_URL"] = cluster.url
    with psycopg.connect(cluster.url) as conn:
        apply_schema(conn)


def when_ready(server):
    hint = os.environ.get("PATIENTS_READY_HINT")
    if hint:
        print(hint, flush=True)


def on_exit(server):
    if _embedded is not None:
        server.log.info("stopping the embedded PostgreSQL")
        _embedded.stop()
