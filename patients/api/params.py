"""Reading query parameters and JSON bodies: each bad value is a 400 VALIDATION_ERROR naming its field."""

import re

from patients.api.errors import not_found, validation_error
from patients.messages import N_

MAX_TERM_LENGTH = 100
# ASCII only: int() would also take `٣`, `1_000` or ` 7 `, which no client means to send.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def integer(args, field: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = args.get(field)
    if raw is None or raw == "":
        return default
    if not WHOLE_NUMBER.fullmatch(raw):
        raise validation_error(field, N_("must be a whole number"))
    value = int(raw)
    if maximum is not None and not minimum <= value <= maximum:
        raise validation_error(
            field, N_("must be from %(minimum)d to %(maximum)d"), minimum=minimum, maximum=maximum
        )
    if value < minimum:
        raise validation_error(field, N_("must be at least %(minimum)d"), minimum=minimum)
    return value


def boolean(args, field: str) -> bool | None:
    raw = args.get(field)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise validation_error(field, N_("must be true or false"))


def text(args, field: str, max_length: int = MAX_TERM_LENGTH) -> str | None:
    """The trimmed value, or None when absent or blank. NUL never reaches PostgreSQL."""
    raw = args.get(field)
    if raw is None:
        return None
    if "\x00" in raw:
        raise validation_error(field, N_("must not contain NUL characters"))
    if len(raw) > max_length:
        raise validation_error(
            field, N_("must be at most %(maximum)d characters"), maximum=max_length
        )
    return raw.strip() or None


def patient_id(raw: str) -> str:
    """A patient id from the path, in the canonical UUID spelling; anything else is simply not found."""
    lowered = raw.lower()
    if not CANONICAL_UUID.fullmatch(lowered):
        raise not_found()
    return lowered
