"""Reading query parameters, path ids and JSON bodies: each bad value is a 400 VALIDATION_ERROR
naming its field, and each reader accepts exactly what the OpenAPI description says.

- A parameter that is absent takes its default. A parameter given with an empty value
  (`?page=`, `?patient_id=`) is a 400 like any other bad value: an empty filter silently read as
  "no filter" would widen the answer (an audit trail of everyone where one patient's was asked
  for). The one exception is `search`, where a cleared search box means no search.
- A parameter given twice (`?page=1&page=2`) is a 400 (middleware.py checks every request): no
  parameter here is a list, and picking one of the two would be a guess.
"""

import re

from werkzeug.routing import BaseConverter

from patients.api.errors import not_found, validation_error
from patients.messages import N_

MAX_TERM_LENGTH = 100
# Any page may be asked for (past the end answers an empty list); this bound only keeps
# page * limit well inside PostgreSQL's bigint OFFSET. The description says the same maximum.
MAX_PAGE = 1_000_000_000
MAX_LIMIT = 200
# ASCII only: int() would also take `٣`, `1_000` or ` 7 `, which no client means to send.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BOOLEANS = {"true": True, "false": False}


def integer(args, field: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = args.get(field)
    if raw is None:
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


def page(args) -> int:
    return integer(args, "page", default=1, minimum=1, maximum=MAX_PAGE)


def limit(args, default: int = 50) -> int:
    return integer(args, "limit", default=default, minimum=1, maximum=MAX_LIMIT)


def boolean(args, field: str) -> bool | None:
    """`true` or `false` (in any letter case: Python's `requests` sends `True`); None when absent."""
    raw = args.get(field)
    if raw is None:
        return None
    value = BOOLEANS.get(raw.lower())
    if value is None:
        raise validation_error(field, N_("must be true or false"))
    return value


def choice(args, field: str, choices, default: str | None = None) -> str | None:
    """One of `choices` exactly; `default` when absent."""
    raw = args.get(field)
    if raw is None:
        return default
    if raw not in choices:
        raise validation_error(
            field, N_("must be one of %(choices)s"), choices=", ".join(sorted(choices))
        )
    return raw


def id_filter(args, field: str) -> str | None:
    """An id as a query parameter (a filter), in the canonical spelling; None when absent. Unlike
    an id in the path, a malformed one is the caller's mistake: a 400, not a 404."""
    raw = args.get(field)
    if raw is None:
        return None
    lowered = raw.lower()
    if not CANONICAL_UUID.fullmatch(lowered):
        raise validation_error(field, N_("must be a patient id (a UUID)"))
    return lowered


def text(args, field: str, max_length: int = MAX_TERM_LENGTH) -> str | None:
    """The trimmed value, or None when absent or blank. NUL never reaches PostgreSQL (whose text
    cannot hold it): the description's pattern says so, and it is a 400."""
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


def repeated(args) -> str | None:
    """The first parameter given more than once, if any."""
    for field, values in args.lists():
        if len(values) > 1:
            return field
    return None


def patient_id(raw: str) -> str:
    """A patient id from the path, in the canonical UUID spelling; anything else is simply not found."""
    lowered = raw.lower()
    if not CANONICAL_UUID.fullmatch(lowered):
        raise not_found()
    return lowered


class PatientIdSegment(BaseConverter):
    """The path segment where a patient id goes (`/api/patients/<patient_id:...>`), which is never
    the name of a sibling route: with a plain `<id>`, `/api/patients/import` also matched the
    record's GET, so its OPTIONS advertised GET and a GET of it was a 404 instead of a 405."""

    regex = r"(?!(?:import|export)$)[^/]+"
