"""Bearer tokens exactly as Supabase Auth issues them: which key verifies a token, what it must say.

Plain Python, no Flask: `verify(token, settings)` returns the `Caller` or raises `Refused`
(the web layer, `patients/api/auth.py`, turns that into a 401). `TokenSettings` is built once
from `patients/config.py`'s Config; `JwksCache` is the project's published signing keys.

Which key: the token's header only says where to look, the key decides the algorithm.
- `alg: HS256` -> the legacy shared secret (`JWT_SECRET`), HS256 only. A `kid` on such a token is
  ignored: hosted projects put one on their HS256 tokens, and Supabase Auth itself falls back to
  the secret for an HS256 token whose kid it does not know (supabase/auth#2072).
- `alg: ES256` / `RS256` with a `kid` -> that key from the JWKS (`JWT_JWKS_URL`), verified with
  the one algorithm the key names. A public key is never an HMAC secret, an HMAC secret never comes
  from the JWKS, and `none` or any other algorithm has no key at all.
"""

import contextlib
import http.client
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

import jwt
from jwt import PyJWK

from patients.messages import N_

log = logging.getLogger(__name__)

ROLES = ("admin", "staff")
ASYMMETRIC = ("ES256", "RS256")  # what Supabase's asymmetric signing keys use
LEEWAY_SECONDS = 30  # clock difference allowed on exp, nbf and iat (the contract's figure)
MAX_SUBJECT = 200
MAX_KID = 200
MIN_RSA_BITS = 2048

# Messages of the 401s (the web layer translates them).
TOKEN_REQUIRED = N_("A valid bearer token is required.")
TOKEN_EXPIRED = N_("The token has expired.")
TOKEN_NOT_YET_VALID = N_("The token is not valid yet: check the clock of the machine that made it.")
TOKEN_WRONG_AUDIENCE = N_("The token is not meant for this service (its audience).")
TOKEN_WRONG_ISSUER = N_("The token was not issued by the configured Supabase project.")
TOKEN_UNKNOWN_KEY = N_("The token is signed with a key this service does not know.")
KEYS_UNAVAILABLE = N_("The keys that verify this token cannot be fetched right now; try again.")
TOKEN_BAD_EXPIRY = N_("The token's expiry is not a time.")
TOKEN_BAD_SUBJECT = N_("The token's subject is not usable.")
TOKEN_ANONYMOUS = N_("An anonymous sign-in cannot use this service.")
TOKEN_NO_ROLE = N_("The token carries no usable role.")
TOKEN_NO_CLINIC = N_("The token carries no usable clinic.")


@dataclass(frozen=True)
class Caller:
    user_id: str
    clinic_id: str
    role: str


class Refused(Exception):
    """The token is not usable; `message` is an N_() text for the person who sent it."""

    def __init__(self, message: str = TOKEN_REQUIRED):
        super().__init__(message)
        self.message = message


class JwksUnavailable(Exception):
    """The key set cannot be had right now (the endpoint failed, or failed a moment ago)."""


class JwksCache:
    """A project's published signing keys, fetched over HTTP and kept for a few minutes.

    PyJWKClient does the HTTP (http(s) only, no redirects, a timeout); this class keeps the keys
    and decides when the network is asked, because PyJWT's own cache starts its cooldown at every
    successful fetch (a key rotated just after the first fetch would wait for it), keeps no memory
    of failures (an unreachable endpoint would cost every request a timeout) and holds its lock
    while it fetches.

    - The key set is refreshed when it is `refresh_after` seconds old. If the refresh fails, the
      keys already known keep working until they are `stale_limit` old, then tokens that need them
      are refused (fail closed). Supabase documents up to 20 minutes between publishing a key
      change and every client seeing it (10 min at its edge + 10 min in its client libraries);
      the defaults keep us inside that.
    - A kid the set does not have makes one refetch (a rotated key works at once), and only one
      such refetch per `refetch_interval`: a flood of made-up kids costs one fetch per interval.
    - A failed fetch is not retried for `retry_after_failure` seconds: meanwhile tokens that need
      the JWKS are refused at once instead of each waiting for the timeout.
    - No request waits longer than about one `timeout` for another's fetch.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        refresh_after: float = 300.0,
        stale_limit: float = 600.0,
        refetch_interval: float = 10.0,
        retry_after_failure: float = 5.0,
        clock=time.monotonic,
    ):
        check_jwks_url(url)
        self.url = url
        self.timeout = timeout
        self.refresh_after, self.stale_limit = refresh_after, stale_limit
        self.refetch_interval, self.retry_after_failure = refetch_interval, retry_after_failure
        self._clock = clock
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = -math.inf
        self._failed_at = -math.inf
        self._forced_at = -math.inf
        self._lock = threading.Lock()

    def key(self, kid: str) -> PyJWK | None:
        """The key named `kid`, or None when the project does not publish it.

        Raises JwksUnavailable when no usable key set can be had.
        """
        keys = self._current_keys()
        if kid in keys:
            return keys[kid]
        with self._locked():
            if kid in self._keys:  # another request's refetch brought it meanwhile
                return self._keys[kid]
            now = self._clock()
            if now - self._forced_at < self.refetch_interval:
                return None
            self._forced_at = now
            self._fetch()
            return self._keys.get(kid)

    def _current_keys(self) -> dict[str, PyJWK]:
        age = self._clock() - self._fetched_at
        if age < self.refresh_after:
            return self._keys
        if age < self.stale_limit and self._lock.locked():
            return self._keys  # someone is refreshing them; these are still good enough
        with self._locked():
            age = self._clock() - self._fetched_at
            if age < self.refresh_after:
                return self._keys
            try:
                self._fetch()
            except JwksUnavailable:
                if age < self.stale_limit:
                    return self._keys
                raise
            return self._keys

    @contextlib.contextmanager
    def _locked(self):
        if not self._lock.acquire(timeout=self.timeout + 1):
            raise JwksUnavailable("another request's fetch is taking too long")
        try:
            yield
        finally:
            self._lock.release()

    def _fetch(self) -> None:
        """Replace the key set with the endpoint's. Called with the lock held."""
        if self._clock() - self._failed_at < self.retry_after_failure:
            raise JwksUnavailable("the last fetch failed a moment ago")
        try:
            keys = usable_keys(self._download())
        except (jwt.PyJWTError, ValueError, OSError, http.client.HTTPException) as exc:
            self._failed_at = self._clock()
            log.warning("JWKS fetch from %s failed: %s", self.url, type(exc).__name__)
            raise JwksUnavailable(str(exc)) from exc
        self._keys, self._fetched_at = keys, self._clock()

    def _download(self):
        """The JWKS document, within `timeout` seconds in all. PyJWKClient's timeout bounds each
        socket read, not the whole answer: a server that sends a byte a second (or a slow DNS
        answer) would hold the request for as long as it likes, so the download runs in a thread
        of its own and is abandoned at the deadline."""
        outcome: dict = {}

        def download():
            try:
                outcome["data"] = self._client.fetch_data()
            except BaseException as exc:  # handed to the waiting request below
                outcome["error"] = exc

        worker = threading.Thread(target=download, name="jwks-fetch", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise TimeoutError(f"the JWKS did not arrive within {self.timeout} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["data"]


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_jwks_url(url: str) -> None:
    """Keys that decide who may read patients travel over https; plain http only on loopback
    (the Supabase CLI's local stack serves http://127.0.0.1:54321/auth/v1/.well-known/jwks.json)."""
    parsed = urlparse(url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and parsed.hostname in LOOPBACK:
        return
    raise ValueError(
        f"{url!r} is not an https URL (http is accepted only on 127.0.0.1/localhost); "
        "it looks like https://<project-ref>.supabase.co/auth/v1/.well-known/jwks.json"
    )


def usable_keys(document) -> dict[str, PyJWK]:
    """The verification keys of a JWKS document by kid: EC P-256 (ES256) and RSA (RS256) only.

    Keys meant for something else (`use` not `sig`, `key_ops` without `verify`), symmetric keys,
    other curves or algorithms and short RSA keys are left out, so no token can name them.
    A project that signs only with the legacy secret publishes `{"keys": []}`: an empty set.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    keys: dict[str, PyJWK] = {}
    for jwk_data in document["keys"]:
        if not isinstance(jwk_data, dict):
            continue
        kid, ops = jwk_data.get("kid"), jwk_data.get("key_ops")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue
        if jwk_data.get("use", "sig") != "sig":
            continue
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        kty = jwk_data.get("kty")
        if not (kty == "EC" and jwk_data.get("crv") == "P-256") and kty != "RSA":
            continue
        try:
            key = PyJWK(jwk_data)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name not in ASYMMETRIC:
            continue
        if kty == "RSA" and key.key.key_size < MIN_RSA_BITS:
            continue
        keys[kid] = key
    return keys


@dataclass(frozen=True)
class TokenSettings:
    """What verification needs, built from Config: the secret, the JWKS, the expected audience."""

    secret: str | None
    jwks: JwksCache | None = None
    audience: str = "authenticated"
    issuer: str | None = None
    leeway: float = LEEWAY_SECONDS
    # HS256 tokens that passed, by their text: (caller, exp). See verify().
    passed: dict = field(default_factory=dict, compare=False, hash=False, repr=False)


# A worker serves a few thousand sessions at most; past this the memory simply starts afresh.
PASSED_MAX = 4096


def verify(token: str, settings: TokenSettings) -> Caller:
    """The caller a bearer token speaks for, or Refused.

    A client sends the same token with every request until it expires. One verified with the
    shared secret (HS256) is remembered, and its next uses cost a lookup instead of a decode and
    an HMAC: its signature and claims cannot change, a `nbf`/`iat` that had passed stays passed,
    and `exp` is checked again on every use exactly as PyJWT checks it (whole seconds, the same
    leeway); the secret changes only with a restart, which starts the memory afresh. Tokens
    verified with a JWKS key are verified every time: a key withdrawn from the set must stop its
    tokens at once.
    """
    remembered = settings.passed.get(token)
    if remembered is not None:
        caller, expires = remembered
        if expires > now() - settings.leeway:
            return caller
        settings.passed.pop(token, None)  # expired: verified again, refused as PyJWT says
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Refused() from exc
    key, algorithm = verification_key(header, settings)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=settings.issuer,
            leeway=settings.leeway,
            # aud is checked below: absent is fine (tokens minted before it was added), present
            # must name us, and PyJWT would refuse every token without one once given an audience.
            options={"require": ["exp", "sub"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Refused(TOKEN_EXPIRED) from exc
    except jwt.ImmatureSignatureError as exc:
        raise Refused(TOKEN_NOT_YET_VALID) from exc
    except jwt.InvalidIssuerError as exc:
        raise Refused(TOKEN_WRONG_ISSUER) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Refused(TOKEN_WRONG_ISSUER if exc.claim == "iss" else TOKEN_REQUIRED) from exc
    except jwt.PyJWTError as exc:
        raise Refused() from exc
    caller = caller_of(claims, settings.audience)
    if algorithm == "HS256":
        if len(settings.passed) >= PASSED_MAX:
            settings.passed.clear()
        settings.passed[token] = (caller, int(claims["exp"]))  # PyJWT compares whole seconds
    return caller


def now() -> float:
    return time.time()


def verification_key(header: dict, settings: TokenSettings) -> tuple[object, str]:
    """The key for this token and the one algorithm that key verifies."""
    alg, kid = header.get("alg"), header.get("kid")
    if alg == "HS256":
        if not settings.secret:
            raise Refused(TOKEN_UNKNOWN_KEY)
        return settings.secret, "HS256"
    if alg not in ASYMMETRIC or settings.jwks is None:
        raise Refused()
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID:
        raise Refused(TOKEN_UNKNOWN_KEY)
    try:
        key = settings.jwks.key(kid)
    except JwksUnavailable as exc:
        raise Refused(KEYS_UNAVAILABLE) from exc
    if key is None:
        raise Refused(TOKEN_UNKNOWN_KEY)
    return key, key.algorithm_name


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def names_audience(aud, audience: str) -> bool:
    """`aud` is the audience, or a list of audiences that contains it (RFC 7519 allows both)."""
    if isinstance(aud, str):
        return aud == audience
    return isinstance(aud, list) and all(isinstance(a, str) for a in aud) and audience in aud


def caller_of(claims: dict, audience: str) -> Caller:
    """Check what the signature cannot: the claims' types, the audience, our clinic and role."""
    # PyJWT also reads numeric strings as times; a token made that way is someone's mistake.
    if not is_number(claims["exp"]):
        raise Refused(TOKEN_BAD_EXPIRY)
    if any(name in claims and not is_number(claims[name]) for name in ("iat", "nbf")):
        raise Refused()
    if "aud" in claims and not names_audience(claims["aud"], audience):
        raise Refused(TOKEN_WRONG_AUDIENCE)
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT:
        raise Refused(TOKEN_BAD_SUBJECT)
    if claims.get("is_anonymous") is True:
        raise Refused(TOKEN_ANONYMOUS)

    # Supabase keeps what the server side set in app_metadata (its users cannot write it); its
    # top-level `role` is the Postgres role. Tokens we mint ourselves may carry them at the top.
    # user_metadata is the user's own to edit and is never read.
    metadata = claims.get("app_metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    clinic_id = metadata.get("clinic_id", claims.get("clinic_id"))
    role = metadata.get("role", claims.get("role"))
    if not isinstance(role, str) or role not in ROLES:
        raise Refused(TOKEN_NO_ROLE)
    try:
        clinic_id = str(uuid.UUID(clinic_id)) if isinstance(clinic_id, str) else None
    except ValueError:
        clinic_id = None
    if clinic_id is None:
        raise Refused(TOKEN_NO_CLINIC)
    return Caller(user_id=sub, clinic_id=clinic_id, role=role)
