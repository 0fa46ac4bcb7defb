"""One exception type for every answered error, and the one place that renders errors as JSON."""

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def validation_error(field: str, reason: str) -> APIError:
    return APIError(
        400, "VALIDATION_ERROR", f"Invalid {field}: {reason}", {"field": field, "reason": reason}
    )


def not_found() -> APIError:
    return APIError(404, "NOT_FOUND", "No such patient in this clinic.")


# Flask/werkzeug's own errors (unknown route, wrong method, body too large, …) in our vocabulary.
HTTP_CODES = {
    400: ("VALIDATION_ERROR", "The request could not be read."),
    401: ("UNAUTHORIZED", "A valid bearer token is required."),
    403: ("FORBIDDEN", "You may not do this."),
    404: ("NOT_FOUND", "Not found."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed here."),
    413: ("FILE_TOO_LARGE", "The upload is larger than 5 MB."),
    415: ("VALIDATION_ERROR", "Unsupported content type."),
}


def render(error: APIError):
    body = {"code": error.code, "message": error.message, "details": error.details}
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(APIError, render)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code, message = HTTP_CODES.get(exc.code or 500, ("INTERNAL_ERROR", "Unexpected error."))
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        return render(APIError(exc.code or 500, code, message, headers=headers))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Logged with its traceback for us; the client only learns that it was our fault.
        log.exception("unhandled error: %s", type(exc).__name__)
        return render(APIError(500, "INTERNAL_ERROR", "An unexpected error occurred."))
