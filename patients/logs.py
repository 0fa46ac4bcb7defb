"""JSON-lines logs, scrubbed of anything that looks like a phone, a DUI or a token.

Used by the service and the operator commands alike; the web layer adds the request id
(patients/api/middleware.py).
"""

import ipaddress
import json
import logging
import re
import sys
import time

# A safety net behind "never log patient data": digits runs long enough to be a phone or a DUI,
# and anything shaped like a JWT, are masked in every message.
SCRUB = [
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"), "[token]"),
    (re.compile(r"(?<![\w-])\d{8}-?\d(?![\w-])"), "[dui]"),
    (re.compile(r"(?<![\w-])\+?\d[\d\s().-]{5,}\d(?![\w-])"), "[number]"),
]
FIELDS = ("request_id", "method", "path", "status", "ms", "clinic_id", "user_id")
# Written as they are when they are IP addresses (the phone pattern would mask an IPv4); scrubbed
# like the rest when not (a misconfigured proxy chain can hand over any text a client sent).
ADDRESS_FIELDS = ("client_ip",)
# What any of SCRUB's patterns needs to match somewhere: a JWT's start, or a run of at least seven
# digits and separators that begins and ends with a digit (a DUI is one too). Most of what is
# logged (the access line's method, ids, the fixed message) has none, and skips the three passes.
MAYBE_SENSITIVE = re.compile(r"eyJ|\d[\d\s().-]{5,}\d")


def scrub(text: str) -> str:
    if not MAYBE_SENSITIVE.search(text):
        return text
    for pattern, mask in SCRUB:
        text = pattern.sub(mask, text)
    return text


def address_or_scrubbed(value):
    if not isinstance(value, str):
        return value
    try:
        ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return scrub(value)
    return value


class JsonFormatter(logging.Formatter):
    _second = (None, "")  # (whole second, its text): most lines share it with the one before

    def format(self, record: logging.LogRecord) -> str:
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        entry = {
            "ts": f"{text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key in FIELDS:
            if hasattr(record, key):
                value = getattr(record, key)
                # A path (or a caller's request id) can carry a DUI, a phone or a token too.
                entry[key] = scrub(value) if isinstance(value, str) else value
        for key in ADDRESS_FIELDS:
            if hasattr(record, key):
                entry[key] = address_or_scrubbed(getattr(record, key))
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "INFO", filters=()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for log_filter in filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
