"""What every request and response gets, whatever the route.

- A request id (the caller's `X-Request-ID` when it is sane, a fresh one otherwise), echoed in the
  answer and stamped on every log line of the request; one JSON access-log line per request, with
  the client's address (`client_ip`).
- A query string that is not UTF-8 is a 400 (werkzeug would quietly turn the bytes into U+FFFD,
  and a search for mojibake would answer 200); so is a parameter given twice.
- No redirects: a path that is not a route (`//` anywhere, a trailing slash) is the JSON 404,
  never werkzeug's 308 with a Location built from the Host header a client sent.
- The request body is read to its end (bounded) before the answer goes out, and a body that is
  not readable HTTP (a malformed chunked transfer) is a 400 whatever else the answer was.
- Every answer except the docs page's static assets gets `Cache-Control: no-store`: /api answers
  carry patient data, and an error or a health check cached by a proxy helps no one either.
- `X-Content-Type-Options: nosniff` everywhere, so a CSV or JSON body is never run as a script.
"""

import logging
import os
import re
import time
from typing import ClassVar
from urllib.parse import unquote_to_bytes

from flask import Flask, g, has_app_context, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import NotFound
from werkzeug.routing import RequestRedirect

from patients.api import i18n, params
from patients.api.errors import render, unreadable_body, validation_error
from patients.logs import scrub
from patients.messages import N_

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CACHEABLE_ENDPOINTS = {"docs.asset"}
# A body we do not need is still read off the socket (and thrown away) before we answer, so the
# client receives our answer (a 401, a 413) instead of a connection reset; past these bounds we
# stop and let the connection close.
DRAIN_CHUNK = 64 * 1024
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_MAX_SECONDS = 15.0

access = logging.getLogger("patients.access")


class AccessRecord(logging.LogRecord):
    """The access line's log record, made without what LogRecord() works out for every record
    (the caller's frame, file and module names, thread and process) and no line here prints.

    Every standard attribute is still there (fixed values), so any handler or formatter a
    deployment or a test attaches can format it; the JSON line is the same as access.info()'s.
    """

    STANDARD: ClassVar[dict] = {
        "name": access.name,
        "msg": "request",
        "args": (),
        "levelno": logging.INFO,
        "levelname": "INFO",
        "pathname": __file__,
        "filename": "middleware.py",
        "module": "middleware",
        "lineno": 0,
        "funcName": "finish_request",
        "exc_info": None,
        "exc_text": None,
        "stack_info": None,
        "thread": None,
        "threadName": None,
        "process": None,
        "processName": None,
        "taskName": None,
        "relativeCreated": 0.0,
    }

    def __init__(self, fields: dict):  # no super().__init__(): that is exactly what this skips
        created = time.time()
        self.__dict__.update(self.STANDARD, created=created, **fields)
        self.msecs = int((created - int(created)) * 1000) + 0.0


class RequestIdFilter(logging.Filter):
    """Stamps the request's id on every log record made while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_app_context():
            record.request_id = g.get("request_id")
        return True


# The hooks run on every request: each takes the request and `g` out of their proxies once.


def start_request() -> None:
    current, state = request._get_current_object(), g._get_current_object()
    given = current.headers.get("X-Request-ID", "")
    # A caller's id is kept only when it is sane and cannot be patient data: it is stored in audit
    # rows and echoed back, and the log scrubbing would not reach those. A fresh one is 128 random
    # bits as 32 hex digits, like nginx's $request_id (uuid4().hex, less the work).
    sane = REQUEST_ID.match(given) and scrub(given) == given
    state.request_id = given if sane else os.urandom(16).hex()
    state.started = time.perf_counter()
    refuse_redirects()
    check_query_string()
    check_repeated_parameters()


def refuse_redirects() -> None:
    """Routing ran before this hook; a redirect it decided on is answered as the 404 it is. A
    leading `//` never reaches routing (werkzeug strips it), so the raw path is checked too."""
    redirect = isinstance(request.routing_exception, RequestRedirect)
    if redirect or "//" in request.environ.get("PATH_INFO", ""):
        raise NotFound()


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


def check_repeated_parameters() -> None:
    if not request.environ.get("QUERY_STRING"):
        return  # no parameters to parse, none repeated
    field = params.repeated(request.args)
    if field is not None:
        raise validation_error(field[: params.MAX_TERM_LENGTH], N_("must be given once"))


def discard_unread_body(response):
    """Read what is left of the request body (in bounded chunks) and throw it away.

    A server that answers and closes while the client is still sending makes the client's TCP
    stack see a reset, and curl reports "connection reset" instead of our JSON. Reading the rest
    first lets the answer arrive; the body is never held in memory. A body that turns out not to
    be readable HTTP makes the answer a 400, also when the route never needed the body (a 401).
    """
    environ = request.environ
    if not environ.get("CONTENT_LENGTH") and not environ.get("HTTP_TRANSFER_ENCODING"):
        return response  # no body declared at all (most requests): gunicorn gives them none
    if not (request.content_length or environ.get("wsgi.input_terminated")):
        return response  # no declared body: reading could wait for bytes that never come
    stream = environ.get("wsgi.input")
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    drained = 0
    try:
        while chunk := stream.read(DRAIN_CHUNK):
            drained += len(chunk)
            if drained > DRAIN_MAX_BYTES or time.monotonic() > deadline:
                response.headers["Connection"] = "close"
                break
    except ParseException:
        refused = render(unreadable_body())
        refused.vary.update(response.vary)  # set by hooks that ran before this one (the language)
        return refused
    except (OSError, ValueError):
        response.headers["Connection"] = "close"  # the client went away
    return response


def finish_request(response):
    current, state = request._get_current_object(), g._get_current_object()
    i18n.vary_by_language(response)  # first: discard_unread_body's 400 keeps it
    response = discard_unread_body(response)
    headers = response.headers
    if current.endpoint not in CACHEABLE_ENDPOINTS or response.status_code != 200:
        headers["Cache-Control"] = "no-store"
        headers.pop("Expires", None)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Request-ID"] = state.get("request_id", "")
    if access.isEnabledFor(logging.INFO):
        caller = state.get("caller")
        started = state.get("started")
        # The path only: query strings can carry search terms (names, phone fragments).
        access.handle(
            AccessRecord(
                {
                    "request_id": state.get("request_id"),
                    "method": current.method,
                    "path": current.path,
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - started) * 1000, 1) if started else 0.0,
                    "clinic_id": caller.clinic_id if caller else None,
                    "user_id": caller.user_id if caller else None,
                    # The socket's peer, or behind TRUSTED_PROXIES the address the proxy saw.
                    "client_ip": current.remote_addr,
                }
            )
        )
    return response


def init_app(app: Flask) -> None:
    app.before_request(start_request)
    app.after_request(finish_request)
