"""A WhatsApp Cloud API notification: its signature, read and stored. Plain Python, no Flask.

A delivery (`{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": …}]}]}`)
holds, per change, the receiving number (`metadata.phone_number_id`, which routes it to a clinic) and:
- `messages[]`: what users wrote, for the chatbot's queue. The sender is `from` (phone digits) and/or
  `from_user_id` (the business-scoped user id, BSUID, that usernames bring: a username user with no
  recent contact comes with no phone at all). `contacts[]` adds `profile.name` / `profile.username`.
- `system` messages: a user changed number (`from` = old number, `system.wa_id` = new one) or their
  BSUID changed (`previous_user_id` -> `user_id`). Not queued: they tell us who a sender is.
- `statuses[]`: what became of the messages the chatbot sent (sent, delivered, read, failed + errors).
Payload shapes: tests/fixtures/whatsapp/ (each names the Meta page it follows).

The web layer (patients/api/webhooks.py) checks `signed_by_meta`, then `read_delivery` and
`store_delivery`. Who a sender is, and whether they are blocked, is decided in SQL (whatsapp_sender_patients() in
schema.sql), from the phone, the equivalent forms of it, and the identities recorded here.
"""

import hashlib
import hmac
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field

import phonenumbers
from psycopg.types.json import Jsonb

from patients.phones import STORABLE
from patients.repository import queries

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 256
NON_DIGITS = re.compile(r"\D")
MEXICAN_MOBILE_WITH_1 = re.compile(r"521[0-9]{10}")
# A business-scoped user id: the user's country, a dot, up to 128 letters and digits
# (`US.13491208655302741918`); a parent BSUID has `ENT` in between (`US.ENT.11815799212886844830`).
BSUID = re.compile(r"[A-Za-z]{2}(?:\.ENT)?\.[A-Za-z0-9]{1,128}")
STATUS = re.compile(r"[a-z_]{1,32}")
# The counts every accepted delivery answers with (Meta only needs the 200).
OUTCOMES = (
    "queued",
    "duplicate",
    "blocked",
    "unknown_number",
    "unreadable",
    "identity_changes",
    "statuses",
)
# How many notifications for unknown numbers are kept (the newest); a few days of a busy clinic.
UNROUTED_KEPT = 1000


@dataclass
class Delivery:
    """What a delivery holds, ready for the named queries."""

    messages: list[dict] = field(default_factory=list)
    identities: list[dict] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)  # {phone_number_id, value}, for unrouted ones
    unreadable: int = 0


def signed_by_meta(raw: bytes, header: str, secret: str | None) -> bool:
    """sha256=<hex HMAC-SHA256 of the raw body with the app secret>. No secret configured: nothing is."""
    scheme, _, given = header.strip().partition("=")
    if not secret or scheme.lower() != "sha256" or not given:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.lower().encode())


def read_delivery(payload: dict) -> Delivery:
    """Everything usable in a delivery; whatever is not (a message with no id or no sender) is counted."""
    delivery = Delivery()
    for entry in objects(payload.get("entry")):
        for change in objects(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            number_id = short_text(str(number_id) if isinstance(number_id, int) else number_id)
            messages, statuses = objects(value.get("messages")), objects(value.get("statuses"))
            if number_id is None:
                delivery.unreadable += len(messages)
                continue
            if messages or statuses:
                delivery.changes.append({"phone_number_id": number_id, "value": storable(value)})
            contacts = objects(value.get("contacts"))
            for message in messages:
                read_message(delivery, number_id, message, contacts)
            for status in statuses:
                item = read_status(number_id, status)
                if item is not None:
                    delivery.statuses.append(item)
    return delivery


def read_message(delivery: Delivery, number_id: str, message: dict, contacts: list[dict]) -> None:
    """A message for the queue, or a system message for the identities; otherwise it is unreadable."""
    if message.get("type") == "system":
        fact = identity_change(number_id, message)
        if fact is None:
            delivery.unreadable += 1
        else:
            delivery.identities.append(fact)
        return
    phone, user_id = e164(message.get("from")), user_id_of(message.get("from_user_id"))
    contact = contact_of(contacts, message.get("from"), user_id)
    user_id = user_id or user_id_of(contact.get("user_id"))
    if phone is None and message.get("from") is None:
        phone = e164(contact.get("wa_id"))
    message_id = short_text(message.get("id"))
    if message_id is None or (phone is None and user_id is None):
        delivery.unreadable += 1
        return
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    kind = short_text(message.get("type")) or "unknown"
    text = message.get("text")
    body = text.get("body") if kind == "text" and isinstance(text, dict) else None
    delivery.messages.append(
        {
            "phone_number_id": number_id,
            "message_id": message_id,
            "sender": phone,
            "user_id": user_id,
            "name": short_text(profile.get("name")),
            "username": short_text(profile.get("username")),
            "sent_at": unix_seconds(message.get("timestamp")),
            "message_type": kind,
            "body": storable(body) if isinstance(body, str) else None,
            "payload": storable(message),
        }
    )
    if phone is not None and user_id is not None:
        # The phone and the user id are one person: a later message with only the user id is them.
        delivery.identities.append(
            identity_fact(number_id, "message", phone, user_id, None, user_id)
        )


def identity_change(number_id: str, message: dict) -> dict | None:
    """A `system` message as "the person known by (phone, user id) is now (phone, user id)"."""
    system = message.get("system")
    if not isinstance(system, dict):
        return None
    kind = system.get("type")
    old_phone, new_phone = e164(message.get("from")), e164(system.get("wa_id"))
    old_user = user_id_of(system.get("previous_user_id")) or user_id_of(message.get("from_user_id"))
    new_user = user_id_of(system.get("user_id"))
    if kind == "user_changed_number" and (old_phone or old_user) and new_phone:
        return identity_fact(number_id, kind, old_phone, old_user, new_phone, new_user)
    if kind == "user_changed_user_id" and (old_phone or old_user) and new_user:
        return identity_fact(number_id, kind, old_phone, old_user, None, new_user)
    return None


def identity_fact(number_id, source, from_phone, from_user_id, to_phone, to_user_id) -> dict:
    return {
        "phone_number_id": number_id,
        "source": source,
        "from_phone": from_phone,
        "from_user_id": from_user_id,
        "to_phone": to_phone,
        "to_user_id": to_user_id,
    }


def read_status(number_id: str, status: dict) -> dict | None:
    message_id, state = short_text(status.get("id")), status.get("status")
    if message_id is None or not isinstance(state, str) or not STATUS.fullmatch(state):
        return None
    error = next(iter(objects(status.get("errors"))), {})
    error_data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
    code = error.get("code")
    return {
        "phone_number_id": number_id,
        "message_id": message_id,
        "status": state,
        "recipient_phone": e164(status.get("recipient_id")),
        "recipient_user_id": user_id_of(status.get("recipient_user_id")),
        "status_at": unix_seconds(status.get("timestamp")),
        "error_code": code if isinstance(code, int) and 0 <= code < 2**31 else None,
        "error_title": short_text(error.get("title") or error.get("message")),
        "error_details": long_text(error_data.get("details")),
        "payload": storable(status),
    }


def contact_of(contacts: list[dict], sender, user_id: str | None) -> dict:
    """The contacts[] entry of a message's sender: by wa_id or user id, else the only one there is."""
    digits = NON_DIGITS.sub("", sender) if isinstance(sender, str) else None
    for contact in contacts:
        wa_id = contact.get("wa_id")
        if digits and isinstance(wa_id, str) and NON_DIGITS.sub("", wa_id) == digits:
            return contact
        if user_id and contact.get("user_id") == user_id:
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def store_delivery(conn, delivery: Delivery, keep_unrouted: bool = True) -> dict[str, int]:
    """Write a read delivery in the caller's transaction; the counts the webhook answers with.

    Identities first, one statement each: a number change and a message from the new number in the
    same delivery (or the next one) must see what came before them. So they are written in the
    delivery's order, after their locks are taken in one sorted order (`lock_identities`).
    """
    counts = Counter({outcome: 0 for outcome in OUTCOMES})
    counts["unreadable"] = delivery.unreadable
    lock_identities(conn, [delivery])
    for fact in delivery.identities:
        saved = queries.record_whatsapp_identity(conn, **fact)
        if saved is not None and fact["source"] != "message":
            counts["identity_changes"] += 1
    if delivery.messages:
        rows = queries.queue_inbound_messages(conn, messages=Jsonb(delivery.messages))
        counts.update(row["outcome"] for row in rows)
    if delivery.statuses:
        counts["statuses"] = queries.record_whatsapp_statuses(
            conn, statuses=Jsonb(delivery.statuses)
        )
    if keep_unrouted and delivery.changes:
        kept = queries.keep_unrouted_notifications(conn, changes=Jsonb(delivery.changes))
        if kept:
            queries.trim_unrouted_notifications(conn, keep=UNROUTED_KEPT)
        for number_id in sorted({row["phone_number_id"] for row in kept}):
            # The id is Meta's, not a patient's; its end is enough for an operator to recognise it.
            log.warning(
                "whatsapp delivery for an unknown phone_number_id ending in %s (kept in whatsapp_unrouted)",
                number_id[-4:],
            )
    return {outcome: counts[outcome] for outcome in OUTCOMES}


def identity_keys(delivery: Delivery) -> set[tuple[str, str, str]]:
    """The (phone_number_id, kind, value) of every identity the delivery's facts write."""
    return {
        (fact["phone_number_id"], kind, value)
        for fact in delivery.identities
        for kind, value in (("wa_id", fact["to_phone"]), ("user_id", fact["to_user_id"]))
        if value is not None
    }


def lock_identities(conn, deliveries: list[Delivery]) -> None:
    """Lock the identities these deliveries write, in one sorted order (the lock ids', see
    lock_whatsapp_identities), until the transaction ends.

    Written in payload order without this, two deliveries naming the same identities in opposite
    orders could each hold one row and wait for the other's: a deadlock, a 500, Meta's retry.
    """
    keys = sorted(set().union(*(identity_keys(d) for d in deliveries)))
    if keys:
        identities = [{"phone_number_id": n, "kind": k, "value": v} for n, k, v in keys]
        queries.lock_whatsapp_identities(conn, identities=Jsonb(identities))


def replay_unrouted(conn) -> dict[str, int]:
    """Store the kept notifications whose number a clinic has by now, then forget them.

    For the operator who set a clinic's whatsapp_phone_number_id after Meta had started sending.
    """
    rows = queries.lock_routable_unrouted(conn)
    deliveries = [
        read_delivery({"entry": [{"changes": [{"value": row["value"]}]}]}) for row in rows
    ]
    # All of them in one transaction: their identities are locked together, in one order, first.
    lock_identities(conn, deliveries)
    totals = Counter()
    for delivery in deliveries:
        totals.update(store_delivery(conn, delivery, keep_unrouted=False))
    if rows:
        queries.forget_unrouted(conn, ids=[row["id"] for row in rows])
    totals["notifications"] = len(rows)
    return dict(totals)


def e164(raw) -> str | None:
    """WhatsApp's number (digits with the country code, no '+') as E.164, like patients.phone.

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


def user_id_of(raw) -> str | None:
    return raw if isinstance(raw, str) and BSUID.fullmatch(raw) else None


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


def long_text(raw, limit: int = 2000) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    return storable(raw.strip()[:limit])


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
