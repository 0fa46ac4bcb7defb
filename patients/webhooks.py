"""The WhatsApp Cloud API inbound webhook that the chatbot sits behind (/webhooks/whatsapp).

Outside /api: Meta calls it, so it is authenticated by the X-Hub-Signature-256 HMAC of the raw body
with WHATSAPP_APP_SECRET, not by a bearer token, and the clinic comes from the number that received
the message. Messages from a blocked patient are dropped here, so the chatbot never sees them.
"""

import hashlib
import hmac
import json
import logging
import math
import re
from collections import Counter

import phonenumbers
from flask import Blueprint, Response, current_app, request
from psycopg.types.json import Jsonb
from werkzeug.exceptions import RequestEntityTooLarge

from patients import db
from patients.errors import APIError, validation_error
from patients.repository import queries

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)

# Meta's deliveries are a few KB; anything near this is not from Meta.
MAX_BODY_BYTES = 256 * 1024
MAX_CHALLENGE_LENGTH = 256
MAX_ID_LENGTH = 256
NON_DIGITS = re.compile(r"\D")
E164_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
MEXICAN_MOBILE_WITH_1 = re.compile(r"521[0-9]{10}")
OUTCOMES = ("queued", "duplicate", "blocked", "unknown_number", "unreadable")


@bp.get("/whatsapp")
def verify_subscription():
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token is ours."""
    expected = current_app.config.get("WHATSAPP_VERIFY_TOKEN") or ""
    token = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge")
    token_ok = hmac.compare_digest(token.encode(), expected.encode())
    if (
        not expected
        or not token_ok
        or request.args.get("hub.mode") != "subscribe"
        or not challenge
        or len(challenge) > MAX_CHALLENGE_LENGTH
    ):
        raise APIError(403, "FORBIDDEN", "The subscription request is not valid.")
    response = Response(challenge, mimetype="text/plain")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/whatsapp")
def receive():
    raw = read_body()
    if not signed_by_meta(raw, request.headers.get("X-Hub-Signature-256", "")):
        raise APIError(
            401, "UNAUTHORIZED", "The X-Hub-Signature-256 signature is missing or wrong."
        )
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise validation_error("body", "is not valid JSON") from None
    if not isinstance(payload, dict):
        raise validation_error("body", "must be a JSON object")

    messages, unreadable = inbound_messages(payload)
    counts = Counter({outcome: 0 for outcome in OUTCOMES})
    counts["unreadable"] = unreadable
    if messages:
        with db.connection() as conn:
            rows = queries.queue_inbound_messages(conn, messages=Jsonb(messages))
        counts.update(row["outcome"] for row in rows)
        for number_id in sorted(
            {r["phone_number_id"] for r in rows if r["outcome"] == "unknown_number"}
        ):
            # Acknowledged anyway: Meta would retry a refusal for days, and no clinic can answer it.
            # The id is Meta's, not a patient's; its end is enough for an operator to recognise it.
            log.warning(
                "whatsapp delivery for an unknown phone_number_id ending in %s", number_id[-4:]
            )
    log.info("whatsapp delivery: %s", ", ".join(f"{k} {counts[k]}" for k in OUTCOMES))
    return {outcome: counts[outcome] for outcome in OUTCOMES}


def read_body() -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large()
    request.max_content_length = MAX_BODY_BYTES  # also bounds a body sent without Content-Length
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large() from None


def too_large() -> APIError:
    return APIError(
        413, "FILE_TOO_LARGE", f"The webhook body is larger than {MAX_BODY_BYTES} bytes."
    )


def signed_by_meta(raw: bytes, header: str) -> bool:
    """sha256=<hex HMAC-SHA256 of the raw body with the app secret>. No secret configured: nothing is."""
    secret = current_app.config.get("WHATSAPP_APP_SECRET")
    scheme, _, given = header.strip().partition("=")
    if not secret or scheme.lower() != "sha256" or not given:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.lower().encode())


def inbound_messages(payload: dict) -> tuple[list[dict], int]:
    """The messages of a Cloud API delivery, ready for queue_inbound_messages, and how many were unusable.

    Status updates (sent, delivered, read) and other change kinds carry no messages and are ignored.
    """
    found, unreadable = [], 0
    for entry in objects(payload.get("entry")):
        for change in objects(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            number_id = short_text(str(number_id) if isinstance(number_id, int) else number_id)
            for message in objects(value.get("messages")):
                item = read_message(number_id, message) if number_id else None
                if item is None:
                    unreadable += 1
                else:
                    found.append(item)
    return found, unreadable


def read_message(number_id: str, message: dict) -> dict | None:
    message_id = short_text(message.get("id"))
    sender = e164(message.get("from"))
    if message_id is None or sender is None:
        return None
    kind = short_text(message.get("type")) or "unknown"
    text = message.get("text")
    body = text.get("body") if kind == "text" and isinstance(text, dict) else None
    return {
        "phone_number_id": number_id,
        "message_id": message_id,
        "sender": sender,
        "sent_at": unix_seconds(message.get("timestamp")),
        "message_type": kind,
        "body": storable(body) if isinstance(body, str) else None,
        "payload": storable(message),
    }


def e164(raw) -> str | None:
    """WhatsApp's sender (digits with the country code, no '+') as E.164, like patients.phone.

    Any punctuation is ignored, so `50377654321`, `+503 7765-4321` and `503-7765-4321` are one number.
    A number phonenumbers does not know yet is kept as '+' and its digits rather than lost.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or len(raw) > 40:
        return None
    digits = NON_DIGITS.sub("", raw)
    if MEXICAN_MOBILE_WITH_1.fullmatch(digits):
        # WhatsApp still sends Mexican mobiles with the '1' that Mexico dropped in 2019.
        digits = "52" + digits[3:]
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if E164_DIGITS.fullmatch(digits):
        return "+" + digits
    return None


def unix_seconds(raw) -> int | None:
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 12:
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 10**12:
        return raw
    return None


def short_text(raw) -> str | None:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_ID_LENGTH:
        return None
    return storable(raw.strip())


def storable(value):
    """The value without what PostgreSQL text and jsonb refuse: NUL, lone surrogates, NaN, Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def objects(raw) -> list[dict]:
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
