"""The web layer: one blueprint per endpoint group, and the request plumbing they share."""

from flask import Flask

from patients.api import audit, blocking, docs, export, health, imports, patients, webhooks

BLUEPRINTS = (health, patients, export, imports, blocking, audit, webhooks, docs)


def register_blueprints(app: Flask) -> None:
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)


def check_every_api_route_is_guarded(app: Flask) -> None:
    """Refuse to start if an /api route forgot its @require_role: tenant data never leaks by omission."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            view = app.view_functions[rule.endpoint]
            if not getattr(view, "required_roles", None) and not getattr(view, "is_public", False):
                raise RuntimeError(f"route {rule.rule} has no @require_role")
