"""Who is calling, and what they may do and see, as route decorators.

- `@require_role(...)`: a usable bearer token (patients/tokens.py) whose role is one of these.
  Every /api route carries it (or `@public`); create_app() refuses to start otherwise.
- `@require_plan("pro")`: the caller's clinic has that plan.
- `@reveals_dui`: the one place that decides who sees a clear DUI.
"""

import functools
import json

from flask import Flask, Response, current_app, g, request

from patients import audit, db, tokens
from patients.api.errors import APIError, forbidden, unauthorized
from patients.dui import DuiKeys
from patients.messages import N_
from patients.repository import queries
from patients.tokens import ROLES, Caller

__all__ = ["Caller", "caller", "public", "require_plan", "require_role", "reveals_dui"]


def init_app(app: Flask) -> None:
    """The token settings, built once per worker: its threads share the JWKS cache."""
    settings = app.config
    jwks = None
    if settings["JWT_JWKS_URL"]:
        try:
            jwks = tokens.JwksCache(
                settings["JWT_JWKS_URL"],
                timeout=settings["JWKS_TIMEOUT"],
                refresh_after=settings["JWKS_REFRESH_AFTER"],
                stale_limit=settings["JWKS_STALE_LIMIT"],
                refetch_interval=settings["JWKS_REFETCH_INTERVAL"],
                retry_after_failure=settings["JWKS_RETRY_AFTER_FAILURE"],
            )
        except ValueError as exc:
            raise RuntimeError(f"JWT_JWKS_URL: {exc}") from None
    app.extensions["token_settings"] = tokens.TokenSettings(
        secret=settings["JWT_SECRET"],
        jwks=jwks,
        audience=settings["JWT_AUDIENCE"],
        issuer=settings["JWT_ISSUER"],
    )


def read_token() -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    try:
        return tokens.verify(token.strip(), current_app.extensions["token_settings"])
    except tokens.Refused as refused:
        raise unauthorized(refused.message) from None


def public(view):
    """Mark an /api route as open to anyone (the API description); every other /api route needs a role."""
    view.is_public = True
    return view


def caller() -> Caller:
    return g.caller


def require_role(*roles: str):
    """Authenticate the bearer token and allow only these roles. Every /api route carries it."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            g.caller = read_token()
            if g.caller.role not in roles:
                raise forbidden()
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorator


def require_plan(plan: str, message: str = N_("This feature requires the Pro plan.")):
    """Allow the route only to clinics whose plan includes it. Loads the clinic into g.clinic."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            clinic = current_clinic()
            if plan == "pro" and clinic["plan"] != "pro":
                raise APIError(403, "PLAN_UPGRADE_REQUIRED", message)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def current_clinic() -> dict:
    """The caller's clinic row (plan, country_code, timezone), loaded once per request."""
    if "clinic" not in g:
        with db.connection() as conn:
            clinic = queries.get_clinic(conn, clinic_id=caller().clinic_id)
        if clinic is None:
            raise unauthorized(N_("The token's clinic does not exist."))
        g.clinic = clinic
    return g.clinic


def record(conn, action: str, **fields) -> None:
    """This request's audit row: the caller, the request id and the client's address (behind the
    reverse proxy: the one it saw, as ProxyFix with TRUSTED_PROXIES has it) come from the request."""
    audit.record(
        conn,
        caller(),
        action,
        request_id=g.get("request_id"),
        client_ip=request.remote_addr,
        **fields,
    )


def dui_keys() -> DuiKeys:
    return current_app.extensions["dui_keys"]


def reveal_parameters() -> dict:
    """What a record read needs to audit its own DUI reveal (queries get_patient_record): whether
    this request reveals (decided by @reveals_dui, around the view) and who the audit row names."""
    who = caller()
    return {
        "reveal": g.get("reveals_dui", False),
        "actor_id": who.user_id,
        "actor_role": who.role,
        "request_id": g.get("request_id"),
        "client_ip": audit.address(request.remote_addr),
    }


# The record's JSON text ends with this (queries get_patient_record); the clear DUI replaces its null.
DUI_NULL_TAIL = '"dui" : null}'


def reveals_dui(view):
    """The one place that decides who sees a clear DUI.

    Only an admin does. The view reads the record with `reveal_parameters()`, so for an admin the
    same statement writes the dui.reveal audit row, in the same transaction, and returns the
    row: `body` (the answer's JSON text, `"dui": null` at its end), `id`, `dui_ciphertext`,
    `dui_key_id` and `audit_id`. Here the DUI is opened and spliced into the body; one that fails
    to open stays null and its audit row is withdrawn before the transaction commits. Anyone else
    gets `dui: null`. The ciphertext never leaves this function.
    """

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        who = caller()
        g.reveals_dui = who.role == "admin"
        with db.connection() as conn:
            row = view(*args, **kwargs)
            body = row["body"]
            if row["audit_id"] is not None:
                # The clinic comes from the token, never from the row: a value copied across
                # clinics cannot open here.
                clear = dui_keys().decrypt(
                    who.clinic_id, row["id"], row["dui_ciphertext"], row["dui_key_id"]
                )
                if clear is None:
                    queries.withdraw_reveal_audit(
                        conn, clinic_id=who.clinic_id, audit_id=row["audit_id"]
                    )
                else:
                    body = with_dui(body, clear)
        return Response(body, mimetype="application/json")

    return wrapper


def with_dui(body: str, clear: str) -> str:
    """The record's JSON text with its trailing `"dui" : null` made the clear DUI."""
    if not body.endswith(DUI_NULL_TAIL):
        raise RuntimeError("get_patient_record's body no longer ends in a null dui")
    return body[: -len("null}")] + json.dumps(clear) + "}"
