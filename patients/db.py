"""The database life cycle in one place: the pool, the request's connection, the schema, the embedded default.

The pool is created by `create_app()`, which gunicorn calls in each worker after the fork (no
`preload_app`), so no connection is ever shared between processes.
"""

import atexit
import contextlib
import logging
import os
from pathlib import Path

import click
import psycopg
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from patients.embedded_pg import project_cluster
from patients.errors import APIError
from patients.repository import queries

log = logging.getLogger(__name__)

SCHEMA = Path(__file__).resolve().parent.parent / "schema.sql"

# Errors that mean "the database is not there right now": answered 503 with Retry-After.
UNAVAILABLE = (PoolTimeout, psycopg.OperationalError)


def database_url_or_embedded() -> str:
    """DATABASE_URL, or the project's own PostgreSQL, started if it is not running."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    cluster = project_cluster()
    if not cluster.running():
        cluster.start()
        # A CLI command that had to start it stops it again; gunicorn's master owns it while serving.
        if not os.environ.get("PATIENTS_EMBEDDED_OWNED"):
            atexit.register(cluster.stop)
    return cluster.url


def make_pool(url: str, *, max_size: int = 4, timeout: float = 3.0) -> ConnectionPool:
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        timeout=timeout,  # waiting for a connection longer than this is a 503, not a hang
        check=ConnectionPool.check_connection,  # a connection killed by a restart is replaced
        reconnect_timeout=3600,  # keep trying while the database is away; never give up the pool
        kwargs={
            "row_factory": dict_row,
            "connect_timeout": 3,
            "application_name": "patients-api",
            # one slow statement cannot pin a worker for long
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
    url = app.config.get("DATABASE_URL") or database_url_or_embedded()
    app.config["DATABASE_URL"] = url
    app.extensions["pool"] = make_pool(
        url,
        max_size=app.config.get("POOL_MAX_SIZE", 4),
        timeout=app.config.get("POOL_TIMEOUT", 3.0),
    )
    app.cli.add_command(init_db_command)


def pool() -> ConnectionPool:
    return current_app.extensions["pool"]


@contextlib.contextmanager
def connection():
    """The request's transaction: commits when the block ends, rolls back on an exception.

    Nested calls in the same request (a decorator around a view, both using the database) share
    one connection and one transaction, so an audit row and the work it records commit together.
    """
    shared = g.get("_db_conn")
    if shared is not None:
        yield shared
        return
    try:
        with pool().connection() as conn:
            g._db_conn = conn
            try:
                yield conn
            finally:
                g._db_conn = None
    except UNAVAILABLE as exc:
        log.warning("database unavailable: %s", type(exc).__name__)
        raise APIError(
            503,
            "SERVICE_UNAVAILABLE",
            "The database is unreachable; try again shortly.",
            headers={"Retry-After": "5"},
        ) from exc


def apply_schema(conn: psycopg.Connection) -> None:
    # One lock so two processes applying the schema at once (workers, CI) take turns.
    queries.lock_schema(conn)
    conn.execute(SCHEMA.read_text())


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Apply schema.sql (safe to run again and again)."""
    with psycopg.connect(current_app.config["DATABASE_URL"]) as conn:
        apply_schema(conn)
    click.echo("Schema applied.")
