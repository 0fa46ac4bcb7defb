"""The one place the environment is read: the app's settings and the server's.

`app_settings()` is what `create_app()` loads into `app.config` (tests pass their own mapping on
top); `server_settings()` is what gunicorn.conf.py binds and forks with; `embedded_settings()`
says where the embedded PostgreSQL lives. Every default is written here and nowhere else.
"""

import os
from collections.abc import Mapping

import click

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# The multipart envelope around a 5 MB file (boundaries, part headers) may exceed 5 MB a little;
# the file itself is held to MAX_UPLOAD_BYTES by the import.
MULTIPART_SLACK = 64 * 1024

POOL_MAX_SIZE = 4
POOL_TIMEOUT = 3.0  # waiting longer than this for a connection is a 503, not a hang
# An import waits this long for another import of the same clinic to finish (imports take
# seconds). This wait plus the import's own work must stay well inside the reverse proxy's timeout
# for the import location (180 s in deploy/nginx.conf; tests/test_nginx.py checks the two agree).
IMPORT_LOCK_WAIT_SECONDS = 20.0
# Forwarded headers (X-Forwarded-For/-Proto/-Host) are trusted from this many proxies in front:
# none unless the operator says so, so a client talking to gunicorn directly cannot choose the
# address, scheme or host the app records.
TRUSTED_PROXIES = 0

# Supabase Auth's access tokens say `aud: "authenticated"` for a signed-in user.
JWT_AUDIENCE = "authenticated"
# The JWKS (Supabase's published signing keys), see patients/tokens.py JwksCache: a fetch gives
# up after JWKS_TIMEOUT; the keys are refreshed after JWKS_REFRESH_AFTER and, should the refresh
# fail, trusted until JWKS_STALE_LIMIT; an unknown kid refetches at most once per
# JWKS_REFETCH_INTERVAL; a failed fetch is not retried for JWKS_RETRY_AFTER_FAILURE (seconds).
JWKS_TIMEOUT = 2.0
JWKS_REFRESH_AFTER = 300.0
JWKS_STALE_LIMIT = 600.0
JWKS_REFETCH_INTERVAL = 10.0
JWKS_RETRY_AFTER_FAILURE = 5.0


class ConfigError(click.ClickException):
    """A setting that cannot work, said in one line: the process that meets it exits with that
    line and status 1, never a traceback (per worker, in gunicorn's case).

    A ClickException so that `flask --app app <command>` prints it as `Error: <line>` too."""

    def __str__(self) -> str:
        return self.message


def _number(environ: Mapping[str, str], name: str, default, kind=int):
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, not {raw!r}") from None


def app_settings(environ: Mapping[str, str] = os.environ) -> dict:
    """Flask's app.config keys, from the environment."""
    return {
        "DATABASE_URL": environ.get("DATABASE_URL") or None,
        "JWT_SECRET": environ.get("JWT_SECRET") or None,
        "JWT_JWKS_URL": environ.get("JWT_JWKS_URL") or None,
        "JWT_AUDIENCE": environ.get("JWT_AUDIENCE") or JWT_AUDIENCE,
        "JWT_ISSUER": environ.get("JWT_ISSUER") or None,
        "JWKS_TIMEOUT": JWKS_TIMEOUT,
        "JWKS_REFRESH_AFTER": JWKS_REFRESH_AFTER,
        "JWKS_STALE_LIMIT": JWKS_STALE_LIMIT,
        "JWKS_REFETCH_INTERVAL": JWKS_REFETCH_INTERVAL,
        "JWKS_RETRY_AFTER_FAILURE": JWKS_RETRY_AFTER_FAILURE,
        "DUI_KEYS": environ.get("DUI_KEYS") or None,
        "MAX_UPLOAD_BYTES": MAX_UPLOAD_BYTES,
        "MAX_CONTENT_LENGTH": MAX_UPLOAD_BYTES + MULTIPART_SLACK,
        "POOL_MAX_SIZE": _number(environ, "POOL_MAX_SIZE", POOL_MAX_SIZE),
        "POOL_TIMEOUT": _number(environ, "POOL_TIMEOUT", POOL_TIMEOUT, float),
        "IMPORT_LOCK_WAIT_SECONDS": _number(
            environ, "IMPORT_LOCK_WAIT_SECONDS", IMPORT_LOCK_WAIT_SECONDS, float
        ),
        "TRUSTED_PROXIES": _number(environ, "TRUSTED_PROXIES", TRUSTED_PROXIES),
        "LOG_LEVEL": environ.get("LOG_LEVEL") or "INFO",
        "WHATSAPP_VERIFY_TOKEN": environ.get("WHATSAPP_VERIFY_TOKEN") or None,
        "WHATSAPP_APP_SECRET": environ.get("WHATSAPP_APP_SECRET") or None,
    }


def server_settings(environ: Mapping[str, str] = os.environ) -> dict:
    """What gunicorn.conf.py needs: where to bind, how many workers and threads, timeouts."""
    return {
        "host": environ.get("HOST") or "0.0.0.0",  # noqa: S104 (the deployment decides; see README)
        "port": _number(environ, "PORT", 8000),
        "workers": _number(environ, "WEB_CONCURRENCY", os.cpu_count() or 2),
        "threads": _number(environ, "GUNICORN_THREADS", 4),
        "timeout": _number(environ, "GUNICORN_TIMEOUT", 60),
        # gunicorn itself trusts nobody's forwarded headers: the app's ProxyFix, with
        # TRUSTED_PROXIES, is the one place that decides.
        "forwarded_allow_ips": environ.get("FORWARDED_ALLOW_IPS") or "",
        "control_socket": environ.get("GUNICORN_CONTROL_SOCKET") or None,
        "database_url": environ.get("DATABASE_URL") or None,
    }


def embedded_settings(environ: Mapping[str, str] = os.environ) -> dict:
    """Where the embedded PostgreSQL's binaries and data folder are (both optional)."""
    return {
        "bindir": environ.get("PG_BINDIR") or None,
        "datadir": environ.get("PGDATA_DIR") or None,
    }


def bench_settings(environ: Mapping[str, str] = os.environ) -> dict:
    """The benchmark's knobs (`make bench`): where its data set lives, which psql it runs."""
    return {
        "data_dir": environ.get("BENCH_DATA_DIR") or None,
        "psql": environ.get("PSQL") or "/usr/bin/psql",
    }


# How to make each secret, said by the error that finds it missing (and by the README).
JWT_SECRET_RECIPE = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"  # noqa: S105
DUI_KEY_RECIPE = (
    "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
)


# PostgreSQL's lock_timeout is whole milliseconds, 0 meaning "no limit": the wait must be above
# 0 (taken as at least 1 ms), and an hour is far past any proxy's timeout.
MAX_IMPORT_LOCK_WAIT_SECONDS = 3600


def check_app_settings(settings: Mapping) -> None:
    """What the app cannot start without, checked before anything is started or forked."""
    secret, jwks_url = settings.get("JWT_SECRET"), settings.get("JWT_JWKS_URL")
    # With a JWKS the legacy secret may be dropped (a project that revoked it); without one, it
    # is the only way a token can be verified.
    if secret or not jwks_url:
        if not secret or len(secret) < 32:
            raise ConfigError(
                f"JWT_SECRET must be set (at least 32 characters): {JWT_SECRET_RECIPE}"
            )
        if "change-me" in secret:
            raise ConfigError(
                f"JWT_SECRET is still the example's placeholder: make one with {JWT_SECRET_RECIPE}"
            )
    if jwks_url:
        from patients.tokens import check_jwks_url

        try:
            check_jwks_url(jwks_url)
        except ValueError as exc:
            raise ConfigError(f"JWT_JWKS_URL: {exc}") from None
    wait = settings.get("IMPORT_LOCK_WAIT_SECONDS", IMPORT_LOCK_WAIT_SECONDS)
    if (
        isinstance(wait, bool)
        or not isinstance(wait, int | float)
        or not 0 < wait <= MAX_IMPORT_LOCK_WAIT_SECONDS  # NaN fails this too
    ):
        raise ConfigError(
            "IMPORT_LOCK_WAIT_SECONDS must be a number of seconds above 0 and at most "
            f"{MAX_IMPORT_LOCK_WAIT_SECONDS}, not {wait!r}"
        )
    from patients.dui import DuiKeys

    try:
        DuiKeys(settings.get("DUI_KEYS"))
    except ValueError as exc:
        raise ConfigError(f"{exc}: {DUI_KEY_RECIPE}") from None
    url = settings.get("DATABASE_URL")
    if url:
        import psycopg

        try:
            psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"DATABASE_URL is not a PostgreSQL URL: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
