"""Access tokens in the exact shape Supabase Auth (GoTrue) issues to a signed-in user.

The shape is supabase/auth `internal/tokens/service.go` (`GenerateAccessToken`, `SignJWT`), as of
the 2025/2026 releases:

- header: `{"alg": "HS256" | "ES256" | "RS256", "kid": "<key id>", "typ": "JWT"}` (golang-jwt's
  header, keys sorted the way Go marshals a map). The `kid` is the signing key's id; a project on
  the legacy JWT secret may carry one too (Supabase falls back to the secret for an HS256 token
  whose kid it does not know: supabase/auth#2072).
- claims, in the order Go marshals `AccessTokenClaims`: `iss` (`https://<ref>.supabase.co/auth/v1`),
  `sub` (the user's UUID), `aud` (`"authenticated"`, a single string: `MarshalSingleStringAsArray =
  false`), `exp`, `iat` (integer seconds), `email`, `phone` (empty strings when unset),
  `app_metadata` (`provider`, `providers`, and whatever the server side set: our `clinic_id` and
  `role`), `user_metadata` (editable by the user), `role` (the Postgres role, `"authenticated"`),
  `aal` (`"aal1"`), `amr` (`[{"method": "password", "timestamp": <iat>}]`), `session_id` (a UUID),
  `is_anonymous` (false).

`supabase_claims()` builds the claim set, `sign()` signs it with the legacy secret (a str) or a
`tests.jwks_server.SigningKey`. Every argument can be overridden or removed (`drop=`), so a test
says exactly how its token differs from a real one.
"""

import time
import uuid

import jwt

from tests.helpers import JWT_SECRET
from tests.jwks_server import SigningKey

PROJECT_REF = "abcdefghijklmnopqrst"  # Supabase project refs are 20 lower-case letters
ISSUER = f"https://{PROJECT_REF}.supabase.co/auth/v1"
LEGACY_KID = "Xy3Kp9QwErTyUiOp"  # the shape of the kid hosted projects put on HS256 tokens


def supabase_claims(
    clinic_id,
    role="staff",
    *,
    sub=None,
    iss=ISSUER,
    aud="authenticated",
    now=None,
    expires_in=3600,
    email="ana.lopez@example.com",
    phone="",
    user_metadata=None,
    app_metadata=None,
    drop=(),
    **extra,
) -> dict:
    """The claims of a Supabase access token for a user of `clinic_id` with our `role`.

    `now` is the issuing clock (seconds since the epoch; a test skews it to play a fast or slow
    clock); `iat` is `now`, `exp` is `now + expires_in`. `extra` adds or replaces top-level claims;
    `drop` removes some.
    """
    issued = int(time.time() if now is None else now)
    sub = sub or str(uuid.uuid4())
    if app_metadata is None:
        app_metadata = {
            "provider": "email",
            "providers": ["email"],
            "clinic_id": str(clinic_id),
            "role": role,
        }
    if user_metadata is None:
        user_metadata = {
            "email": email,
            "email_verified": True,
            "phone_verified": False,
            "sub": sub,
        }
    claims = {
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "exp": issued + expires_in,
        "iat": issued,
        "email": email,
        "phone": phone,
        "app_metadata": app_metadata,
        "user_metadata": user_metadata,
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": issued}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    claims.update(extra)
    for name in drop:
        claims.pop(name, None)
    return claims


def sign(claims: dict, key, *, kid=None, alg=None, headers=None) -> str:
    """Sign `claims` as Supabase Auth does.

    `key` is the legacy JWT secret (a str: HS256, with `kid` when given) or a `SigningKey` (its
    algorithm, its kid). `alg`, `kid` and `headers` override the header, for attacks.
    """
    if isinstance(key, SigningKey):
        header = {"kid": key.kid if kid is None else kid}
        signing_key, algorithm = key.private_key, alg or key.alg
    else:
        header = {} if kid is None else {"kid": kid}
        signing_key, algorithm = key, alg or "HS256"
    header.update(headers or {})
    return jwt.encode(claims, signing_key, algorithm=algorithm, headers=header)


def supabase_token(clinic_id, role="staff", key=None, **claims) -> str:
    """A complete Supabase access token; `key` as in `sign()` (default: the test JWT secret)."""
    if key is None:
        return sign(supabase_claims(clinic_id, role, **claims), JWT_SECRET, kid=LEGACY_KID)
    return sign(supabase_claims(clinic_id, role, **claims), key)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
