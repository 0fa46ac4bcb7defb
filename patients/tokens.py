"""Bearer tokens: who a token says is calling (user, clinic, role), or why it is refused.

No Flask here: the web layer (patients/api/auth.py) hands the token and the settings in, and turns
a refusal into a 401.
"""

import uuid
from dataclasses import dataclass

import jwt

from patients.messages import N_

ROLES = ("admin", "staff")


@dataclass(frozen=True)
class Caller:
    user_id: str
    clinic_id: str
    role: str


class Refused(Exception):
    """The token is not usable; `message` (an N_ template) says why, for the person calling."""

    def __init__(self, message: str = N_("A valid bearer token is required.")):
        super().__init__(message)
        self.message = message


def read(token: str, secret: str) -> Caller:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Refused(N_("The token has expired.")) from exc
    except jwt.InvalidTokenError as exc:
        raise Refused() from exc
    return caller_of(claims)


def caller_of(claims: dict) -> Caller:
    """The caller a verified token's claims describe."""
    # Supabase puts custom claims in app_metadata; its top-level `role` is the database role.
    metadata = claims.get("app_metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    clinic_id = metadata.get("clinic_id", claims.get("clinic_id"))
    role = metadata.get("role", claims.get("role"))
    sub = claims["sub"]

    # PyJWT also takes a numeric string as `exp`; a token minted that way is someone's mistake.
    if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], int | float):
        raise Refused(N_("The token's expiry is not a time."))
    if not isinstance(sub, str) or not sub or len(sub) > 200:
        raise Refused(N_("The token's subject is not usable."))
    if role not in ROLES:
        raise Refused(N_("The token carries no usable role."))
    try:
        clinic_id = str(uuid.UUID(clinic_id)) if isinstance(clinic_id, str) else None
    except ValueError:
        clinic_id = None
    if clinic_id is None:
        raise Refused(N_("The token carries no usable clinic."))
    return Caller(user_id=sub, clinic_id=clinic_id, role=role)
