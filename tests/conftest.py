"""Fixtures: one throwaway PostgreSQL per test session, the app, a client, clinics to call it as.

Every test makes its own clinics, so tests never see each other's rows and need no cleanup.
Set TEST_DATABASE_URL to run against an existing (disposable!) database instead. The helpers
that keep tests short live in tests/helpers.py; the live gunicorn in tests/live.py, nginx in front
of it (deploy/nginx.conf) in tests/nginx_proxy.py, a JWKS endpoint like Supabase's in
tests/jwks_server.py.
"""

import os

import psycopg
import pytest
from psycopg.rows import dict_row

from app import create_app
from patients.db import apply_schema
from patients.dui import DuiKeys
from tests.helpers import DUI_KEY, JWT_SECRET, OLD_DUI_KEY, Clinic, database_cluster

pytest_plugins = ["tests.live", "tests.nginx_proxy", "tests.whatsapp_payloads", "tests.jwks_server"]


@pytest.fixture(scope="session")
def database_url():
    if os.environ.get("TEST_DATABASE_URL"):
        url = os.environ["TEST_DATABASE_URL"]
        with psycopg.connect(url) as conn:
            apply_schema(conn)
        yield url
        return
    cluster = database_cluster()
    yield cluster.url
    cluster.destroy()


@pytest.fixture(scope="session")
def config(database_url):
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "DUI_KEYS": f"{DUI_KEY},{OLD_DUI_KEY}",
        "POOL_MAX_SIZE": 4,
    }


@pytest.fixture(scope="session")
def app(config):
    app = create_app(config)
    yield app
    app.extensions["pool"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def sql(database_url):
    """A direct connection for arranging data and checking what was written (autocommit)."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def make_clinic(sql, app):
    keys = app.extensions["dui_keys"]
    return lambda **kwargs: Clinic(sql, keys, **kwargs)


@pytest.fixture
def clinic(make_clinic):
    """A Pro clinic in El Salvador."""
    return make_clinic()


@pytest.fixture
def dui_keys():
    return DuiKeys(f"{DUI_KEY},{OLD_DUI_KEY}")
