"""Reading the WhatsApp Cloud API's webhook deliveries: Meta's signature, and the messages in them.

Plain functions over the payload Meta sends (no Flask): the web layer (patients/api/webhooks.py)
checks the signature with `signed_by_meta` and queues what `inbound_messages` finds.
"""

import hashlib
import hmac
import math
import re

import phonenumbers

from patients.phones import STORABLE

MAX_ID_LENGTH = 256
NON_DIGITS = re.compile(r"\D")
MEXICAN_MOBILE_WITH_1 = re.compile(r"521[0-9]{10}")


def signed_by_meta(raw: bytes, header: str, secret: str | None) -> bool:
    """sha256=<hex HMAC-SHA256 of the raw body with the app secret>. No secret configured: nothing is."""
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
    if STORABLE.fullmatch("+" + digits):
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
