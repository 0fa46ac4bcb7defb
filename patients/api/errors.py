"""Every error the service answers, in the contract's JSON, from one exception type and one handler.

`APIError(status, code, message, details, headers, **params)` is raised anywhere in the web layer;
the rules raise `messages.Rejected` (a code, no status), mapped here. Flask's and werkzeug's own
errors (unknown route, wrong method, body too large) and gunicorn's early answers (a request it
cannot parse never reaches Flask) are rendered in the same shape.
"""

import json
import logging

from flask import Flask, jsonify
from gunicorn import util
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException

from patients.api import i18n
from patients.db import DatabaseUnavailable
from patients.messages import N_, Rejected

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None, headers=None, **params):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.params = params


# The HTTP status of each code a rule may refuse with.
STATUS_OF = {
    "VALIDATION_ERROR": 400,
    "INVALID_CSV": 400,
    "INVALID_ROWS": 400,
    "NOT_FOUND": 404,
    "FILE_TOO_LARGE": 413,
    "SERVICE_UNAVAILABLE": 503,
}


def validation_error(field: str, reason: str, **params) -> APIError:
    """400 VALIDATION_ERROR naming the field; `reason` is an N_ template filled with `params`."""
    return APIError(
        400,
        "VALIDATION_ERROR",
        N_("Invalid %(field)s: %(reason)s"),
        {"field": field, "reason": reason, "_params": params},
        field=field,
        reason=reason,
        reason_params=params,
    )


def not_found() -> APIError:
    return APIError(404, "NOT_FOUND", N_("No such patient in this clinic."))


def unauthorized(message: str = N_("A valid bearer token is required.")) -> APIError:
    return APIError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str = N_("Your role may not do this.")) -> APIError:
    return APIError(403, "FORBIDDEN", message)


def too_large(limit: str) -> APIError:
    """413 FILE_TOO_LARGE; `limit` is how big the body may be, as a person reads it (`5 MB`)."""
    return APIError(413, "FILE_TOO_LARGE", N_("The upload is larger than %(limit)s."), limit=limit)


def unreadable_body() -> APIError:
    """A body gunicorn could not parse while the app read it (a chunk size that is not hex, a
    missing chunk terminator, a body shorter than its Content-Length): the client's mistake."""
    return validation_error(
        "body", N_("is not readable HTTP (a malformed chunked transfer or a body cut short)")
    )


def unavailable(
    message: str = N_("The database is unreachable; try again shortly."), retry_after: int = 5
) -> APIError:
    return APIError(503, "SERVICE_UNAVAILABLE", message, headers={"Retry-After": str(retry_after)})


def translate(message: str, params: dict | None = None) -> str:
    """The message for the person reading it (Spanish when Accept-Language prefers it; see
    patients/api/i18n.py), its placeholders filled in."""
    return i18n.gettext(message, params)


def message_of(error: APIError) -> str:
    params = dict(error.params)
    if "reason" in params:  # a validation error's reason is a template of its own
        params["reason"] = translate(params["reason"], params.pop("reason_params", None))
    params.pop("reason_params", None)
    return translate(error.message, params)


def localise(details):
    """Details as the client reads them: each `reason` template translated and filled with its
    `_params` (which stay behind)."""
    if isinstance(details, list):
        return [localise(item) for item in details]
    if isinstance(details, dict) and "reason" in details:
        shown = {k: v for k, v in details.items() if k != "_params"}
        shown["reason"] = translate(details["reason"], details.get("_params"))
        return shown
    return details


def render(error: APIError):
    body = {"code": error.code, "message": message_of(error), "details": localise(error.details)}
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def from_rejected(rejected: Rejected) -> APIError:
    return APIError(
        STATUS_OF.get(rejected.code, 400),
        rejected.code,
        rejected.message,
        rejected.details,
        **rejected.params,
    )


# Flask/werkzeug's own errors (unknown route, wrong method, body too large, …) in our vocabulary.
HTTP_CODES = {
    400: ("VALIDATION_ERROR", N_("The request could not be read.")),
    401: ("UNAUTHORIZED", N_("A valid bearer token is required.")),
    403: ("FORBIDDEN", N_("You may not do this.")),
    404: ("NOT_FOUND", N_("Not found.")),
    405: ("METHOD_NOT_ALLOWED", N_("This method is not allowed here.")),
    413: ("FILE_TOO_LARGE", N_("The upload is larger than 5 MB.")),
    415: ("VALIDATION_ERROR", N_("Unsupported content type.")),
}


def init_app(app: Flask) -> None:
    app.register_error_handler(APIError, render)
    app.register_error_handler(Rejected, lambda rejected: render(from_rejected(rejected)))
    app.register_error_handler(DatabaseUnavailable, lambda _: render(unavailable()))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code, message = HTTP_CODES.get(exc.code or 500, ("INTERNAL_ERROR", N_("Unexpected error.")))
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        return render(APIError(exc.code or 500, code, message, headers=headers))

    @app.errorhandler(ParseException)
    @app.errorhandler(NoMoreData)
    def body_not_readable(exc):
        log.info("unreadable request body: %s", type(exc).__name__)
        return render(unreadable_body())

    @app.errorhandler(RecursionError)
    def too_deep(exc):
        # JSON nested so deep that the parser gives up is the client's mistake, not ours.
        return render(validation_error("body", N_("is nested too deeply")))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Logged with its traceback for us; the client only learns that it was our fault.
        log.exception("unhandled error: %s", type(exc).__name__)
        return render(APIError(500, "INTERNAL_ERROR", N_("An unexpected error occurred.")))


# -- gunicorn's own answers ---------------------------------------------------------------
# A request gunicorn cannot parse (a request line or headers over its limits, a malformed header,
# a bad chunk size) is answered by gunicorn itself through `gunicorn.util.write_error`, as an HTML
# page that echoes the raw request line (which may carry a search term). gunicorn.conf.py replaces
# that one function with this, so those answers are JSON too and say nothing of the request.
EARLY_CODES = {403: "FORBIDDEN", 500: "INTERNAL_ERROR"}
EARLY_MESSAGES = {
    414: "The request line is too long.",
    431: "The request headers are too large.",
    403: "Request forbidden.",
    500: "An unexpected error occurred.",
}


def write_early_error(sock, status_int, reason, mesg):
    body = json.dumps(
        {
            "code": EARLY_CODES.get(status_int, "VALIDATION_ERROR"),
            "message": EARLY_MESSAGES.get(status_int, "The request could not be read."),
            "details": None,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


def install_early_errors() -> None:
    util.write_error = write_early_error
