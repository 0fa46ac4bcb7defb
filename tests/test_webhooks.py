"""The WhatsApp Cloud API webhook: the subscription handshake, the signature, and the chatbot's queue
that honours blocking (a blocked sender is dropped, anyone else is queued once despite retries)."""

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid

import psycopg
import pytest

URL = "/webhooks/whatsapp"
VERIFY_TOKEN = "verify-me-" + "v" * 20
APP_SECRET = "app-secret-" + "s" * 20


@pytest.fixture
def whatsapp(app, monkeypatch):
    monkeypatch.setitem(app.config, "WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN)
    monkeypatch.setitem(app.config, "WHATSAPP_APP_SECRET", APP_SECRET)
    return app


def with_number(sql, clinic):
    """Give the clinic a WhatsApp phone_number_id of its own; returns it."""
    number_id = str(uuid.uuid4().int)[:15]
    sql.execute(
        "UPDATE clinics SET whatsapp_phone_number_id = %s WHERE id = %s", (number_id, clinic.id)
    )
    return number_id


def message(sender, text="Hola, quiero una cita", message_id=None):
    return {
        "from": sender,
        "id": message_id or f"wamid.{uuid.uuid4().hex}",
        "timestamp": "1767225600",
        "type": "text",
        "text": {"body": text},
    }


def delivery(number_id, *messages, statuses=None):
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "50322223333", "phone_number_id": number_id},
    }
    if messages:
        value["contacts"] = [
            {"profile": {"name": "Juan"}, "wa_id": m.get("from")} for m in messages
        ]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}],
    }


def signature(raw: bytes, secret=APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def post(client, payload, sign=True, raw=None):
    raw = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        headers["X-Hub-Signature-256"] = signature(raw)
    return client.post(URL, data=raw, headers=headers)


def queued(sql, clinic):
    return sql.execute(
        "SELECT * FROM inbound_messages WHERE clinic_id = %s ORDER BY id", (clinic.id,)
    ).fetchall()


# The handshake


def test_handshake_echoes_the_challenge(client, whatsapp):
    response = client.get(
        URL,
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN[:-1], "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "ñandú", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "9" * 300},
    ],
)
def test_handshake_refused(client, whatsapp, params):
    response = client.get(URL, query_string=params)
    assert response.status_code == 403
    assert response.is_json and response.json["code"] == "FORBIDDEN"
    assert "1" not in response.get_data(as_text=True).split('"message"')[0]


def test_handshake_refused_when_no_token_is_configured(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "WHATSAPP_VERIFY_TOKEN", None)
    for token in ("", "None"):
        response = client.get(
            URL,
            query_string={"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1"},
        )
        assert response.status_code == 403 and response.json["code"] == "FORBIDDEN"


# The signature


def test_bad_missing_or_malformed_signature_is_unauthorized(client, whatsapp, clinic, sql):
    number_id = with_number(sql, clinic)
    raw = json.dumps(delivery(number_id, message("50377654321"))).encode()
    for header in (
        None,
        "",
        signature(raw, secret="another-secret"),
        signature(raw + b" "),
        signature(raw).removeprefix("sha256="),
        signature(raw).replace("sha256=", "sha1="),
        "sha256=",
        "sha256=ñ",
    ):
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["X-Hub-Signature-256"] = header
        response = client.post(URL, data=raw, headers=headers)
        assert response.status_code == 401, header
        assert response.json["code"] == "UNAUTHORIZED"
    assert queued(sql, clinic) == []


def test_no_secret_configured_refuses_everything(client, app, monkeypatch, clinic, sql):
    monkeypatch.setitem(app.config, "WHATSAPP_APP_SECRET", None)
    number_id = with_number(sql, clinic)
    raw = json.dumps(delivery(number_id, message("50377654321"))).encode()
    for secret in ("", "None"):
        response = client.post(
            URL, data=raw, headers={"X-Hub-Signature-256": signature(raw, secret=secret)}
        )
        assert response.status_code == 401
    assert queued(sql, clinic) == []


def test_signature_is_checked_on_the_raw_bytes(client, whatsapp, clinic, sql):
    """Re-serialising the JSON would change the bytes; the raw body, spacing included, is what counts."""
    number_id = with_number(sql, clinic)
    raw = json.dumps(delivery(number_id, message("50377654321")), indent=3).encode()
    response = client.post(
        URL,
        data=raw,
        headers={"X-Hub-Signature-256": signature(raw).upper().replace("SHA256", "sha256")},
    )
    assert response.status_code == 200
    assert len(queued(sql, clinic)) == 1


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"\xff\xfe{", b"[1, 2]", b'"text"', b"[" * 5000]
)
def test_malformed_json_with_a_valid_signature(client, whatsapp, raw):
    response = post(client, None, raw=raw)
    assert response.status_code == 400
    assert response.json["code"] == "VALIDATION_ERROR"
    assert response.json["details"]["field"] == "body"


def test_body_size_is_bounded(client, whatsapp, clinic, sql):
    number_id = with_number(sql, clinic)
    payload = delivery(number_id, message("50377654321", text="x" * 300_000))
    response = post(client, payload)
    assert response.status_code == 413
    assert response.json["code"] == "FILE_TOO_LARGE"
    assert queued(sql, clinic) == []


# Queueing and blocking


def test_unblocked_sender_is_queued_once_despite_retries(client, whatsapp, clinic, sql):
    number_id = with_number(sql, clinic)
    patient_id = clinic.add_patient(phone="+50377654321")
    payload = delivery(number_id, message("50377654321", message_id="wamid.retry-1"))

    first = post(client, payload)
    assert first.status_code == 200
    assert first.json == {
        "queued": 1,
        "duplicate": 0,
        "blocked": 0,
        "unknown_number": 0,
        "unreadable": 0,
        "identity_changes": 0,
        "statuses": 0,
    }
    again = post(client, payload)
    assert again.status_code == 200
    assert again.json["queued"] == 0 and again.json["duplicate"] == 1

    (row,) = queued(sql, clinic)
    assert row["message_id"] == "wamid.retry-1"
    assert row["sender_phone"] == "+50377654321"
    assert str(row["patient_id"]) == patient_id
    assert row["message_type"] == "text" and row["body"] == "Hola, quiero una cita"
    assert row["payload"]["text"] == {"body": "Hola, quiero una cita"}
    assert row["sent_at"].timestamp() == 1767225600
    assert row["processed_at"] is None


def test_the_same_message_twice_in_one_delivery_is_queued_once(client, whatsapp, clinic, sql):
    number_id = with_number(sql, clinic)
    same = message("50377654321", message_id="wamid.twice")
    response = post(client, delivery(number_id, same, same))
    assert response.status_code == 200
    assert len(queued(sql, clinic)) == 1


def test_blocked_sender_is_dropped_silently(client, whatsapp, clinic, sql):
    number_id = with_number(sql, clinic)
    clinic.add_patient(phone="+50377654321", is_blocked=True)
    clinic.add_patient(full_name="Ana", phone="+50370000000")
    response = post(client, delivery(number_id, message("50377654321"), message("50370000000")))
    assert response.status_code == 200
    assert response.json["blocked"] == 1 and response.json["queued"] == 1
    assert [row["sender_phone"] for row in queued(sql, clinic)] == ["+50370000000"]


@pytest.mark.parametrize(
    "sender",
    [
        "50377654321",
        "+50377654321",
        "+503 7765-4321",
        "503-7765-4321",
        "(503) 7765 4321",
        50377654321,
    ],
)
def test_formatting_variants_of_a_blocked_number_are_dropped(client, whatsapp, clinic, sql, sender):
    number_id = with_number(sql, clinic)
    clinic.add_patient(phone="+50377654321", is_blocked=True)
    response = post(client, delivery(number_id, message(sender)))
    assert response.status_code == 200 and response.json["blocked"] == 1
    assert queued(sql, clinic) == []


@pytest.mark.parametrize(
    ("sender", "stored"),
    [
        ("447700900123", "+447700900123"),
        ("+44 7700 900123", "+447700900123"),
        ("5215512345678", "+525512345678"),  # Mexico: WhatsApp still sends the old "1"
        ("+52 1 55 1234 5678", "+525512345678"),
        ("99912345678", "+99912345678"),  # unknown to phonenumbers: kept as its digits
    ],
)
def test_formatting_variants_are_stored_as_e164(client, whatsapp, clinic, sql, sender, stored):
    number_id = with_number(sql, clinic)
    response = post(client, delivery(number_id, message(sender)))
    assert response.status_code == 200 and response.json["queued"] == 1
    assert queued(sql, clinic)[0]["sender_phone"] == stored


def test_a_blocked_mexican_patient_is_dropped(client, whatsapp, clinic, sql):
    number_id = with_number(sql, clinic)
    clinic.add_patient(phone="+525512345678", is_blocked=True)
    response = post(client, delivery(number_id, message("5215512345678")))
    assert response.json["blocked"] == 1 and queued(sql, clinic) == []


def test_blocking_is_per_clinic(client, whatsapp, make_clinic, sql):
    """The same number blocked by one clinic still reaches another clinic's chatbot."""
    blocking, other = make_clinic(), make_clinic()
    blocking.add_patient(phone="+50377654321", is_blocked=True)
    other.add_patient(phone="+50377654321")
    other_number = with_number(sql, other)
    with_number(sql, blocking)
    response = post(client, delivery(other_number, message("50377654321")))
    assert response.json["queued"] == 1
    assert len(queued(sql, other)) == 1 and queued(sql, blocking) == []


def test_one_delivery_for_two_clinics(client, whatsapp, make_clinic, sql):
    first, second = make_clinic(), make_clinic()
    first_number, second_number = with_number(sql, first), with_number(sql, second)
    second.add_patient(phone="+50377654321", is_blocked=True)
    payload = delivery(first_number, message("50377654321"))
    payload["entry"] += delivery(second_number, message("50377654321"))["entry"]
    response = post(client, payload)
    assert response.json["queued"] == 1 and response.json["blocked"] == 1
    assert len(queued(sql, first)) == 1 and queued(sql, second) == []


def test_unknown_phone_number_id_is_acknowledged_and_queues_nothing(
    client, whatsapp, clinic, sql, caplog
):
    with_number(sql, clinic)
    before = sql.execute("SELECT count(*) AS n FROM inbound_messages").fetchone()["n"]
    with caplog.at_level(logging.WARNING, logger="patients.whatsapp"):
        response = post(client, delivery("999000111222333", message("50377654321")))
    assert response.status_code == 200
    assert response.json["unknown_number"] == 1 and response.json["queued"] == 0
    assert sql.execute("SELECT count(*) AS n FROM inbound_messages").fetchone()["n"] == before
    logged = [r.getMessage() for r in caplog.records if r.name == "patients.whatsapp"]
    assert any("unknown phone_number_id ending in 2333" in m for m in logged)
    assert not any("999000111222333" in m or "77654321" in m for m in logged)


def test_status_updates_and_unusable_messages_are_acknowledged(client, whatsapp, clinic, sql):
    number_id = with_number(sql, clinic)
    statuses = [
        {
            "id": "wamid.x",
            "status": "delivered",
            "timestamp": "1767225600",
            "recipient_id": "50377654321",
        }
    ]
    assert post(client, delivery(number_id, statuses=statuses)).json["queued"] == 0
    unusable = [
        {"id": "wamid.no-sender", "type": "text"},
        {"from": "50377654321", "type": "text"},
        {"from": "not a number", "id": "wamid.bad-sender"},
        {"from": "123", "id": "wamid.short"},
        "not an object",
    ]
    payload = delivery(number_id, *unusable[:-1])
    payload["entry"][0]["changes"][0]["value"]["messages"].append(unusable[-1])
    response = post(client, payload)
    assert response.status_code == 200
    assert response.json["unreadable"] == 4
    for odd in ({}, {"entry": "x"}, {"entry": [{"changes": [{"value": "x"}]}]}, {"object": "page"}):
        assert post(client, odd).status_code == 200
    assert queued(sql, clinic) == []


def test_other_message_types_and_awkward_text_are_stored(client, whatsapp, clinic, sql):
    number_id = with_number(sql, clinic)
    image = {
        "from": "50377654321",
        "id": "wamid.image",
        "timestamp": "bad",
        "type": "image",
        "image": {"id": "MEDIA-1", "mime_type": "image/jpeg", "caption": "receta"},
    }
    odd_text = message("50377654321", text="nul\x00 and \ud800 surrogate", message_id="wamid.odd")
    raw = json.dumps(delivery(number_id, image, odd_text)).encode()
    raw = raw.replace(b"1767225600", b"NaN", 0)
    response = post(client, None, raw=raw)
    assert response.status_code == 200 and response.json["queued"] == 2
    rows = {row["message_id"]: row for row in queued(sql, clinic)}
    assert rows["wamid.image"]["message_type"] == "image" and rows["wamid.image"]["body"] is None
    assert rows["wamid.image"]["payload"]["image"]["id"] == "MEDIA-1"
    assert rows["wamid.image"]["sent_at"] is None
    assert rows["wamid.odd"]["body"].startswith("nul and ")


def test_a_block_in_progress_is_honoured(client, whatsapp, clinic, sql, database_url):
    """A delivery that arrives while a block is being committed waits for it and drops the message."""
    number_id = with_number(sql, clinic)
    patient_id = clinic.add_patient(phone="+50377654321")
    results = {}
    with psycopg.connect(database_url) as blocker:
        blocker.execute(
            "UPDATE patients SET is_blocked = true WHERE clinic_id = %s AND id = %s",
            (clinic.id, patient_id),
        )
        thread = threading.Thread(
            target=lambda: results.update(
                response=post(client, delivery(number_id, message("50377654321")))
            )
        )
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive()  # waiting for the block's row lock
        blocker.commit()
        thread.join(10)
    assert results["response"].json["blocked"] == 1
    assert queued(sql, clinic) == []
