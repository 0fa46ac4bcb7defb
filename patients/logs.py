"""JSON-lines logs with a request id, scrubbed of anything that looks like a phone, a DUI or a token."""

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, g, has_app_context, request

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A safety net behind "never log patient data": digits runs long enough to be a phone or a DUI,
# and anything shaped like a JWT, are masked in every message.
SCRUB = [
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"), "[token]"),
    (re.compile(r"(?<![\w-])\d{8}-?\d(?![\w-])"), "[dui]"),
    (re.compile(r"(?<![\w-])\+?\d[\d\s().-]{5,}\d(?![\w-])"), "[number]"),
]


def scrub(text: str) -> str:
    for pattern, mask in SCRUB:
        text = pattern.sub(mask, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key in ("request_id", "method", "path", "status", "ms", "clinic_id", "user_id"):
            if hasattr(record, key):
                value = getattr(record, key)
                # A path (or a caller's request id) can carry a DUI, a phone or a token too.
                entry[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_app_context():
            record.request_id = g.get("request_id")
        return True


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def init_app(app: Flask) -> None:
    access = logging.getLogger("patients.access")

    @app.before_request
    def start_request():
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish_request(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        caller = g.get("caller")
        # The path only: query strings can carry search terms (names, phone fragments).
        access.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "ms": round(
                    (time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1
                ),
                "clinic_id": caller.clinic_id if caller else None,
                "user_id": caller.user_id if caller else None,
            },
        )
        return response
