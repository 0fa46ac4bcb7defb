"""Reading query parameters and JSON bodies: each bad value is a 400 VALIDATION_ERROR naming its field."""

import uuid

from patients.errors import not_found, validation_error

MAX_TERM_LENGTH = 100


def integer(args, field: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = args.get(field)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(field, "must be a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise validation_error(field, f"must be {bounds}")
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
    raise validation_error(field, "must be true or false")


def text(args, field: str, max_length: int = MAX_TERM_LENGTH) -> str | None:
    raw = args.get(field)
    if raw is None:
        return None
    if "\x00" in raw:
        raise validation_error(field, "must not contain NUL characters")
    if len(raw) > max_length:
        raise validation_error(field, f"must be at most {max_length} characters")
    return raw.strip() or None


def patient_id(raw: str) -> str:
    """A patient id from the path; anything that is not a UUID is simply not found."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise not_found() from None
