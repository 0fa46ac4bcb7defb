"""gunicorn settings for the Patients API (the Procfile's web process reads this file).

Every value comes from patients/config.py, the one reader of the environment.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from patients.api.errors import install_early_errors
from patients.config import server_settings

settings = server_settings()

bind = f"{settings['host']}:{settings['port']}"
# Threads overlap the waits on PostgreSQL; a process per core spreads the Python work.
workers = settings["workers"]
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


def on_starting(server):
    """The embedded default: no DATABASE_URL, so start the project's own PostgreSQL first."""
    global _embedded
    if settings["database_url"]:
        return
    import psycopg

    from patients.db import apply_schema
    from patients.ops.embedded_pg import start_embedded

    url, _embedded = start_embedded(say=server.log.info)
    os.environ["DATABASE_URL"] = url  # the workers' create_app() reads it
    with psycopg.connect(url) as conn:
        apply_schema(conn)


def when_ready(server):
    if settings["ready_hint"]:
        print(settings["ready_hint"], flush=True)


def on_exit(server):
    if _embedded is not None:
        server.log.info("stopping the embedded PostgreSQL")
        _embedded.stop()
