"""The database life cycle in one place: the pool, the request's transaction, the schema.

The pool is created by `create_app()`, which gunicorn calls in each worker after the fork (no
`preload_app`), so no connection is ever shared between processes.
"""

import contextlib
import logging
import select
import time
from pathlib import Path

import click
import psycopg
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from patients.config import POOL_MAX_SIZE, POOL_TIMEOUT
from patients.repository import queries

log = logging.getLogger(__name__)

SCHEMA = Path(__file__).resolve().parent.parent / "schema.sql"
# What Citus needs on top of schema.sql (README "Distributing on Citus").
CITUS_SCHEMA = SCHEMA.parent / "deploy" / "citus.sql"

# A connection handed out again within this long of its last checkout is trusted without a round
# trip (see check_on_checkout); one idle longer is asked, in case it was dropped without a word.
QUIET_CHECK_SECONDS = 10.0


def check_on_checkout(conn: psycopg.Connection) -> None:
    """The pool's check: replace a connection the server has closed, at almost no cost.

    psycopg_pool's own check (an empty statement) is a round trip on every checkout, as much as
    the SELECT 1 of /healthz. A connection whose server went away (a restart, pg_terminate_backend,
    idle_session_timeout, a crash) has something to read on its socket while it sits idle in the
    pool: the server's goodbye, or the end of the stream. So an idle socket with nothing to read,
    used moments ago, is a live connection; anything else (data waiting, or a connection unused for
    QUIET_CHECK_SECONDS, which a network could have dropped silently) gets the real round trip, and
    a connection that fails it is discarded by the pool, which hands out another.
    """
    now = time.monotonic()
    last = getattr(conn, "_patients_checked_at", None)
    conn._patients_checked_at = None  # stamped again only once it has passed
    if last is None or now - last > QUIET_CHECK_SECONDS or _has_input(conn):
        ConnectionPool.check_connection(conn)
    conn._patients_checked_at = now


def _has_input(conn: psycopg.Connection) -> bool:
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class DatabaseUnavailable(Exception):
    """No connection could be had, or the one in use was lost: the web layer answers 503."""


def make_pool(
    url: str, *, max_size: int = POOL_MAX_SIZE, timeout: float = POOL_TIMEOUT
) -> ConnectionPool:
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        timeout=timeout,  # waiting for a connection longer than this is a 503, not a hang
        check=check_on_checkout,  # a connection killed by a restart is replaced
        reconnect_timeout=3600,  # keep trying while the database is away; never give up the pool
        kwargs={
            "row_factory": dict_row,
            "connect_timeout": 3,
            "application_name": "patients-api",
            # One slow statement cannot pin a worker for long. Custom plans always: the search
            # patterns decide whether the trigram index pays, so a generic plan would be a guess.
            "options": "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000"
            " -c plan_cache_mode=force_custom_plan",
        },
        name="patients",
    )
    pool.open(wait=False)
    return pool


def init_app(app: Flask) -> None:
    app.extensions["pool"] = make_pool(
        app.config["DATABASE_URL"],
        max_size=app.config["POOL_MAX_SIZE"],
        timeout=app.config["POOL_TIMEOUT"],
    )
    app.cli.add_command(init_db_command)


def pool() -> ConnectionPool:
    return current_app.extensions["pool"]


@contextlib.contextmanager
def connection():
    """The request's transaction: commits when the block ends, rolls back on an exception.

    Nested calls in the same request (a decorator around a view, both using the database) share
    one connection and one transaction, so an audit row and the work it records commit together.
    A database that cannot be reached, or that drops the connection mid-request, is a 503; any
    other database error (a statement cancelled by its timeout, a bug) is the caller's to handle.
    """
    state = g._get_current_object()  # once, not through the proxy at every use
    shared = state.get("_db_conn")
    if shared is not None:
        yield shared
        return
    connections = current_app.extensions["pool"]
    try:
        conn = connections.getconn()
    except (PoolTimeout, psycopg.OperationalError) as exc:
        log.warning("database unavailable: %s", type(exc).__name__)
        raise DatabaseUnavailable from exc
    state._db_conn = conn
    try:
        with conn:
            yield conn
    except psycopg.OperationalError as exc:
        if not conn.broken:
            raise
        log.warning("database connection lost: %s", type(exc).__name__)
        raise DatabaseUnavailable from exc
    finally:
        state._db_conn = None
        connections.putconn(conn)


def apply_schema(conn: psycopg.Connection) -> None:
    # One lock so two processes applying the schema at once (workers, CI) take turns.
    queries.lock_schema(conn)
    citus = conn.cursor(row_factory=tuple_row).execute(queries.citus_installed.sql).fetchone()
    if not citus[0]:
        conn.execute(SCHEMA.read_text())
        return
    # On Citus, deploy/citus.sql always follows, in the same transaction: it distributes what is
    # not distributed yet and puts back its versions of the functions schema.sql replaced. Each
    # file runs inside one DO block: Citus sends some DDL on a distributed table (CREATE INDEX,
    # CREATE TRIGGER, some ALTER TABLE) on to the shards as the text of the client's whole
    # statement, here a whole file, which the workers refuse; from a DO block each statement
    # reaches it alone. Only the files' own text goes in: nothing else is spliced into the SQL.
    for path in (SCHEMA, CITUS_SCHEMA):
        conn.execute(as_one_block(path))


def as_one_block(path: Path) -> str:
    """A file of statements as one DO block, each statement run on its own (for Citus)."""
    return f"DO $apply_schema$ BEGIN\n{path.read_text()}\nEND $apply_schema$"


def cannot_connect(url: str, exc: BaseException) -> str:
    """One line for an operator: where we tried (never the password) and what libpq said."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        parts = {}
    where = (
        f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname', '')}"
    )
    said = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # libpq: 'connection failed: connection to server at "h" (1.2.3.4), port 1 failed: <why>'
    reason = said[0].rsplit(" failed: ", 1)[-1] if said else type(exc).__name__
    return f"cannot connect to the database at {where}: {reason}"  # an operator's, English


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Apply schema.sql (safe to run again and again)."""
    url = current_app.config["DATABASE_URL"]
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            apply_schema(conn)
    except psycopg.OperationalError as exc:
        raise click.ClickException(cannot_connect(url, exc)) from None
    click.echo("Schema applied.")
