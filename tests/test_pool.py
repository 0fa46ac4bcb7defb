"""The pool's check on checkout (patients/db.py check_on_checkout), against the real PostgreSQL.

A connection the server ended while it sat in the pool never reaches a request; a live one used
moments ago is handed out without the round trip psycopg_pool's own check makes (an empty
statement); one unused for a while gets that round trip.
"""

import time

import psycopg
import pytest

from patients import db

POOL_MAX_SIZE = 4  # tests/conftest.py's config


def pool_backends(sql) -> set[int]:
    rows = sql.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE application_name = 'patients-api' AND datname = current_database()"
    ).fetchall()
    return {row["pid"] for row in rows}


@pytest.fixture
def sent(monkeypatch):
    """Every statement the app's connections send while the test runs."""
    statements = []
    real_execute = psycopg.Connection.execute

    def execute(self, query, *args, **kwargs):
        statements.append(str(query))
        return real_execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    return statements


def use_every_connection(client) -> None:
    # The pool hands its connections out in turn; this many requests touch each one.
    for _ in range(POOL_MAX_SIZE + 1):
        assert client.get("/healthz").status_code == 200


def test_connections_the_server_ended_while_idle_are_replaced_before_a_request(client, sql):
    use_every_connection(client)
    ended = pool_backends(sql)
    assert ended
    for pid in ended:
        sql.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while pool_backends(sql) & ended and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pool_backends(sql) & ended, "the backends did not end"

    for _ in range(POOL_MAX_SIZE + 1):
        response = client.get("/healthz")
        assert (response.status_code, response.json) == (200, {"status": "ok"})
    assert pool_backends(sql) and not pool_backends(sql) & ended


def test_a_connection_used_moments_ago_is_handed_out_without_a_round_trip(client, sent):
    use_every_connection(client)
    sent.clear()
    assert client.get("/healthz").status_code == 200
    assert sent == ["SELECT 1"]  # /healthz's own statement, no empty one before it


def test_a_connection_unused_for_a_while_is_asked_first(client, sent, monkeypatch):
    use_every_connection(client)
    monkeypatch.setattr(db, "QUIET_CHECK_SECONDS", -1.0)  # every connection counts as idle long
    sent.clear()
    assert client.get("/healthz").status_code == 200
    assert sent == ["", "SELECT 1"]
