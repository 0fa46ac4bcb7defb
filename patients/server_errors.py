"""gunicorn's own error answers, in the contract's JSON.

A request gunicorn cannot parse (a request line or headers over its limits, a malformed header, a
bad chunk size) never reaches Flask: gunicorn answers it itself through `gunicorn.util.write_error`,
as an HTML page that also echoes the raw request line (which may carry a search term). We replace
that one function so these answers are JSON like every other error, and say nothing of the request.
"""

import json

from gunicorn import util

CODES = {
    403: "FORBIDDEN",
    500: "INTERNAL_ERROR",
}
MESSAGES = {
    414: "The request line is too long.",
    431: "The request headers are too large.",
    403: "Request forbidden.",
    500: "An unexpected error occurred.",
}


def write_json_error(sock, status_int, reason, mesg):
    body = json.dumps(
        {
            "code": CODES.get(status_int, "VALIDATION_ERROR"),
            "message": MESSAGES.get(status_int, "The request could not be read."),
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


def install() -> None:
    util.write_error = write_json_error
