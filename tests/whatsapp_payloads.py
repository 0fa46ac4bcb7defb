"""Meta's documented webhook payloads (tests/fixtures/whatsapp/), made a test's own, signed and posted.

A fixture keeps Meta's shape; `payload()` points it at the test's clinic (phone_number_id) and
swaps in the test's numbers, user ids and fresh message ids, so tests never see each other's rows.
"""

import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "whatsapp"
URL = "/webhooks/whatsapp"
VERIFY_TOKEN = "verify-me-" + "v" * 20
APP_SECRET = "app-secret-" + "s" * 20
# The example values Meta's pages use, as written in the fixtures.
META_USER = "16505551234"
META_NEW_NUMBER = "12195555358"
META_USER_ID = "US.13491208655302741918"
META_NEW_USER_ID = {"system_user_changed_number": "US.7301749821562093847"}
META_NEW_USER_ID["system_user_changed_user_id"] = "US.5829301746653920184"


@pytest.fixture
def whatsapp(app, monkeypatch):
    monkeypatch.setitem(app.config, "WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN)
    monkeypatch.setitem(app.config, "WHATSAPP_APP_SECRET", APP_SECRET)
    return app


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def new_number_id(sql, clinic) -> str:
    """Give the clinic a WhatsApp phone_number_id of its own; returns it."""
    number_id = str(uuid.uuid4().int)[:15]
    sql.execute(
        "UPDATE clinics SET whatsapp_phone_number_id = %s WHERE id = %s", (number_id, clinic.id)
    )
    return number_id


def new_user_id() -> str:
    return "SV." + str(uuid.uuid4().int)[:20]


def payload(
    name, number_id, *, phone=None, user_id=None, new_phone=None, new_user_id=None, text=None
) -> dict:
    """The fixture `name` for this test: its receiving number, sender and fresh wamids.

    `phone`/`user_id` replace Meta's example sender (None keeps the fixture's own, "" removes it);
    `new_phone`/`new_user_id` the target of a number or user id change.
    """
    doc = copy.deepcopy(fixture(name))
    for entry in doc["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            value["metadata"]["phone_number_id"] = number_id
            for contact in value.get("contacts", []):
                swap(contact, "wa_id", META_USER, phone)
                swap(contact, "user_id", META_USER_ID, user_id)
            for message in value.get("messages", []):
                message["id"] = f"wamid.{uuid.uuid4().hex}"
                swap(message, "from", META_USER, phone)
                swap(message, "from_user_id", META_USER_ID, user_id)
                if text is not None and "text" in message:
                    message["text"]["body"] = text
                system = message.get("system")
                if system:
                    swap(system, "wa_id", META_NEW_NUMBER, new_phone)
                    swap(system, "previous_user_id", META_USER_ID, user_id)
                    swap(system, "user_id", META_NEW_USER_ID.get(name), new_user_id)
            for status in value.get("statuses", []):
                status["id"] = f"wamid.{uuid.uuid4().hex}"
                swap(status, "recipient_id", META_USER, phone)
                swap(status, "recipient_user_id", META_USER_ID, user_id)
    return doc


def swap(obj: dict, key: str, meta_value, ours) -> None:
    if ours is None or obj.get(key) != meta_value:
        return
    if ours == "":
        del obj[key]
    else:
        obj[key] = ours


def signature(raw: bytes, secret=APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def post(client, doc: dict):
    raw = json.dumps(doc).encode()
    return client.post(
        URL,
        data=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature(raw)},
    )


def accepted(response) -> dict:
    assert response.status_code == 200, response.get_json()
    return response.json


def queued(sql, clinic) -> list[dict]:
    return sql.execute(
        "SELECT * FROM inbound_messages WHERE clinic_id = %s ORDER BY id", (clinic.id,)
    ).fetchall()


def counts(**nonzero) -> dict:
    """The webhook's answer with these counts and every other one 0."""
    base = dict.fromkeys(
        (
            "queued",
            "duplicate",
            "blocked",
            "unknown_number",
            "unreadable",
            "identity_changes",
            "statuses",
        ),
        0,
    )
    return {**base, **nonzero}
