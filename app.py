"""The Patients API: `create_app()` builds the Flask app; gunicorn calls it in each worker."""

import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from patients import cli, db, errors, hygiene, logs
from patients.dui import DuiKeys

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# The multipart envelope around a 5 MB file (boundaries, part headers) may exceed 5 MB a little;
# the file itself is held to MAX_UPLOAD_BYTES by the import.
MULTIPART_SLACK = 64 * 1024


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        DATABASE_URL=os.environ.get("DATABASE_URL"),
        JWT_SECRET=os.environ.get("JWT_SECRET"),
        DUI_KEYS=os.environ.get("DUI_KEYS"),
        MAX_UPLOAD_BYTES=MAX_UPLOAD_BYTES,
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES + MULTIPART_SLACK,
        POOL_MAX_SIZE=int(os.environ.get("POOL_MAX_SIZE", "4")),
        POOL_TIMEOUT=float(os.environ.get("POOL_TIMEOUT", "3")),
        TRUSTED_PROXIES=int(os.environ.get("TRUSTED_PROXIES", "1")),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "INFO"),
        WHATSAPP_VERIFY_TOKEN=os.environ.get("WHATSAPP_VERIFY_TOKEN"),
        WHATSAPP_APP_SECRET=os.environ.get("WHATSAPP_APP_SECRET"),
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.from_mapping(test_config)

    if not app.config["JWT_SECRET"] or len(app.config["JWT_SECRET"]) < 32:
        raise RuntimeError("JWT_SECRET must be set (at least 32 characters)")
    app.extensions["dui_keys"] = DuiKeys(app.config["DUI_KEYS"])
    app.json.sort_keys = False
    app.json.ensure_ascii = False  # names travel as UTF-8, readable in curl
    # X-Forwarded-For/-Proto/-Host are trusted from this many proxies in front of us, no more.
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    logs.configure(app.config["LOG_LEVEL"])
    logs.init_app(app)
    errors.init_app(app)
    hygiene.init_app(app)
    db.init_app(app)
    cli.init_app(app)
    register_blueprints(app)
    check_every_api_route_is_guarded(app)
    return app


def register_blueprints(app: Flask) -> None:
    from patients import audit_log, blocking, docs, export, health, imports, records, webhooks

    for module in (health, records, export, imports, blocking, audit_log, webhooks, docs):
        app.register_blueprint(module.bp)


def check_every_api_route_is_guarded(app: Flask) -> None:
    """Refuse to start if an /api route forgot its @require_role: tenant data never leaks by omission."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            view = app.view_functions[rule.endpoint]
            if not getattr(view, "required_roles", None) and not getattr(view, "is_public", False):
                raise RuntimeError(f"route {rule.rule} has no @require_role")
