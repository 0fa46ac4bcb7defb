"""Who is calling: bearer tokens (HS256, Supabase-style claims), roles and plans, as route decorators."""

import functools
import uuid
from dataclasses import dataclass

import jwt
from flask import current_app, g, request

from patients import db
from patients.errors import APIError
from patients.repository import queries

ROLES = ("admin", "staff")


@dataclass(frozen=True)
class Caller:
    user_id: str
    clinic_id: str
    role: str


def unauthorized(message: str = "A valid bearer token is required.") -> APIError:
    return APIError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": "Bearer"})


def read_token() -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    try:
        claims = jwt.decode(
            token.strip(),
            current_app.config["JWT_SECRET"],
            algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("The token has expired.") from exc
    except jwt.InvalidTokenError as exc:
        raise unauthorized() from exc

    # Supabase puts custom claims in app_metadata; its top-level `role` is the database role.
    metadata = claims.get("app_metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    clinic_id = metadata.get("clinic_id", claims.get("clinic_id"))
    role = metadata.get("role", claims.get("role"))
    sub = claims["sub"]

    # PyJWT also takes a numeric string as `exp`; a token minted that way is someone's mistake.
    if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], int | float):
        raise unauthorized("The token's expiry is not a time.")
    if not isinstance(sub, str) or not sub or len(sub) > 200:
        raise unauthorized("The token's subject is not usable.")
    if role not in ROLES:
        raise unauthorized("The token carries no usable role.")
    try:
        clinic_id = str(uuid.UUID(clinic_id)) if isinstance(clinic_id, str) else None
    except ValueError:
        clinic_id = None
    if clinic_id is None:
        raise unauthorized("The token carries no usable clinic.")
    return Caller(user_id=sub, clinic_id=clinic_id, role=role)


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
                raise APIError(403, "FORBIDDEN", "Your role may not do this.")
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorator


def require_plan(plan: str, message: str = "This feature requires the Pro plan."):
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
            raise unauthorized("The token's clinic does not exist.")
        g.clinic = clinic
    return g.clinic
