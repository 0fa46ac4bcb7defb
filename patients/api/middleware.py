"""What every request and response gets, whatever the route.

- A request id (the caller's `X-Request-ID` when it is sane, a fresh one otherwise), echoed in the
  answer and stamped on every log line of the request; one JSON access-log line per request, with
  the client's address (`client_ip`).
- A query string that is not UTF-8 is a 400 (werkzeug would quietly turn the bytes into U+FFFD,
  and a search for mojibake would answer 200).
- Every answer except the docs page's static assets gets `Cache-Control: no-store`: /api answers
  carry patient data, and an error or a health check cached by a proxy helps no one either.
- `X-Content-Type-Options: nosniff` everywhere, so a CSV or JSON body is never run as a script.
"""

import logging
import re
import time
import uuid
from urllib.parse import unquote_to_bytes

from flask import Flask, g, has_app_context, request

from patients.api.errors import validation_error
from patients.messages import N_

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CACHEABLE_ENDPOINTS = {"docs.asset"}

access = logging.getLogger("patients.access")


class RequestIdFilter(logging.Filter):
    """Stamps the request's id on every log record made while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_app_context():
            record.request_id = g.get("request_id")
        return True


def start_request() -> None:
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
    g.started = time.perf_counter()
    check_query_string()


def check_query_string() -> None:
    raw = request.environ.get("QUERY_STRING", "")
    if not raw:
        return
    try:
        unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
        # The WSGI server hands the raw bytes over as latin-1; re-encoding recovers them.
        raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise validation_error("query", N_("is not valid UTF-8")) from None


def finish_request(response):
    if request.endpoint not in CACHEABLE_ENDPOINTS or response.status_code != 200:
        response.headers["Cache-Control"] = "no-store"
        response.headers.pop("Expires", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Request-ID"] = g.get("request_id", "")
    caller = g.get("caller")
    # The path only: query strings can carry search terms (names, phone fragments).
    access.info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1),
            "clinic_id": caller.clinic_id if caller else None,
            "user_id": caller.user_id if caller else None,
            # The socket's peer, or behind TRUSTED_PROXIES the address the proxy saw.
            "client_ip": request.remote_addr,
        },
    )
    return response


def init_app(app: Flask) -> None:
    app.before_request(start_request)
    app.after_request(finish_request)
