"""The Patients API: `create_app()` builds the Flask app; gunicorn calls it in each worker."""

import atexit

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from patients import config, db, logs
from patients.api import (
    auth,
    check_every_api_route_is_guarded,
    errors,
    i18n,
    middleware,
    params,
    register_blueprints,
)
from patients.dui import DuiKeys
from patients.ops import cli


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(config.app_settings())
    if test_config:
        app.config.from_mapping(test_config)

    config.check_app_settings(app.config)  # a ConfigError says what is wrong in one line
    app.extensions["dui_keys"] = DuiKeys(app.config["DUI_KEYS"])
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = embedded_database()
    app.json.sort_keys = False
    app.json.ensure_ascii = False  # names travel as UTF-8, readable in curl
    # X-Forwarded-For/-Proto/-Host are trusted from this many proxies in front of us, no more.
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    logs.configure(app.config["LOG_LEVEL"], filters=[middleware.RequestIdFilter()])
    middleware.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    auth.init_app(app)  # before the pool: a bad JWT_JWKS_URL stops the start with nothing opened
    db.init_app(app)
    cli.init_app(app)
    configure_routing(app)
    register_blueprints(app)
    check_every_api_route_is_guarded(app)
    return app


def configure_routing(app: Flask) -> None:
    """No redirects, ever: werkzeug answers `/api//patients` (merge_slashes), a rule's missing
    trailing slash (strict_slashes) and a default's other spelling (redirect_defaults) with a 308
    HTML page whose Location it builds from Host/X-Forwarded-Host, which a client chooses. A path
    that is not a route is the JSON 404 (middleware.py turns any redirect that is left into one)."""
    app.url_map.merge_slashes = False
    app.url_map.redirect_defaults = False
    app.url_map.converters["patient_id"] = params.PatientIdSegment


def embedded_database() -> str:
    """No DATABASE_URL: the project's own PostgreSQL. gunicorn's master (and `make run`) start it
    before the workers; a CLI command that finds it stopped starts it and stops it at its end."""
    from patients.ops.embedded_pg import start_embedded

    url, started = start_embedded()
    if started is not None:
        atexit.register(started.stop)
    return url
