"""The block holds however WhatsApp names the sender: a changed number, a business-scoped user id,
the forms Argentina, Brazil and Mexico's mobiles take. Every payload is one of Meta's documented
shapes (tests/fixtures/whatsapp/, each naming its page), signed with the app secret, over HTTP."""

import copy
import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from patients import chatbot
from tests.whatsapp_payloads import (
    META_NEW_USER_ID,
    accepted,
    counts,
    new_number_id,
    new_user_id,
    payload,
    post,
    queued,
)

OLD, NEW, NEWER = "50377654321", "50370001111", "50370002222"


def identities(sql, clinic):
    return sql.execute(
        "SELECT kind, value, patient_id::text, phone, source FROM whatsapp_identities "
        "WHERE clinic_id = %s ORDER BY kind, value",
        (clinic.id,),
    ).fetchall()


# Every documented shape is understood


@pytest.mark.parametrize(
    ("name", "first", "retried"),
    [
        ("text", {"queued": 1}, {"duplicate": 1}),
        ("image", {"queued": 1}, {"duplicate": 1}),
        ("reaction", {"queued": 1}, {"duplicate": 1}),
        ("interactive_button_reply", {"queued": 1}, {"duplicate": 1}),
        ("interactive_list_reply", {"queued": 1}, {"duplicate": 1}),
        ("text_with_user_id", {"queued": 1}, {"duplicate": 1}),
        ("text_username_only", {"queued": 1}, {"duplicate": 1}),
        # Recording a change again changes nothing, but it is still a change Meta told us about.
        ("system_user_changed_number", {"identity_changes": 1}, {"identity_changes": 1}),
        ("system_user_changed_user_id", {"identity_changes": 1}, {"identity_changes": 1}),
        ("status_failed_131047", {"statuses": 1}, {}),
        ("status_delivered", {"statuses": 1}, {}),
    ],
)
def test_every_documented_shape_is_accepted_once(
    client,
    whatsapp,
    clinic,
    sql,
    name,
    first,
    retried,
):
    number_id = new_number_id(sql, clinic)
    doc = payload(name, number_id)
    assert accepted(post(client, doc)) == counts(**first)
    assert accepted(post(client, doc)) == counts(**retried)


def test_the_sender_is_stored_with_the_contact_name(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    patient_id = clinic.add_patient(phone="+" + OLD)
    accepted(post(client, payload("text_with_user_id", number_id, phone=OLD, user_id="SV.1234")))
    (row,) = queued(sql, clinic)
    assert row["sender_phone"] == "+" + OLD
    assert row["sender_user_id"] == "SV.1234"
    assert row["sender_name"] == "Sheena Nelson"
    assert row["sender_username"] is None
    assert str(row["patient_id"]) == patient_id
    assert row["body"] == "Quiero cambiar mi cita" and row["message_type"] == "text"


def test_a_username_only_sender_is_queued_with_the_user_id(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    user_id = new_user_id()
    assert accepted(post(client, payload("text_username_only", number_id, user_id=user_id))) == (
        counts(queued=1)
    )
    (row,) = queued(sql, clinic)
    assert row["sender_phone"] is None and row["sender_user_id"] == user_id
    assert row["sender_name"] == "Sheena Nelson" and row["sender_username"] == "sheena.nelson"
    assert row["patient_id"] is None
    assert row["payload"]["from_user_id"] == user_id


# A number change


def test_a_blocked_patient_stays_blocked_after_changing_number(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    patient_id = clinic.add_patient(phone="+" + OLD, is_blocked=True)
    change = payload("system_user_changed_number", number_id, phone=OLD, new_phone=NEW)
    assert accepted(post(client, change)) == counts(identity_changes=1)

    response = post(client, payload("text", number_id, phone=NEW))
    assert accepted(response) == counts(blocked=1)
    assert queued(sql, clinic) == []
    # The stored phone stays as staff typed it; the WhatsApp identity moved.
    assert clinic.patients()[0]["phone"] == "+" + OLD
    moved = [row for row in identities(sql, clinic) if row["kind"] == "wa_id"]
    assert moved == [
        {
            "kind": "wa_id",
            "value": "+" + NEW,
            "patient_id": patient_id,
            "phone": "+" + OLD,
            "source": "user_changed_number",
        }
    ]


def test_a_changed_number_keeps_the_patient_link(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    patient_id = clinic.add_patient(phone="+" + OLD)
    accepted(
        post(client, payload("system_user_changed_number", number_id, phone=OLD, new_phone=NEW))
    )
    assert accepted(post(client, payload("text", number_id, phone=NEW))) == counts(queued=1)
    (row,) = queued(sql, clinic)
    assert row["sender_phone"] == "+" + NEW and str(row["patient_id"]) == patient_id


def test_two_number_changes_in_a_row_are_followed(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    clinic.add_patient(phone="+" + OLD, is_blocked=True)
    accepted(
        post(client, payload("system_user_changed_number", number_id, phone=OLD, new_phone=NEW))
    )
    accepted(
        post(client, payload("system_user_changed_number", number_id, phone=NEW, new_phone=NEWER))
    )
    assert accepted(post(client, payload("text", number_id, phone=NEWER))) == counts(blocked=1)
    assert {row["phone"] for row in identities(sql, clinic)} == {"+" + OLD}


def test_a_number_change_and_a_message_from_the_new_number_in_one_delivery(
    client, whatsapp, clinic, sql
):
    """The delivery's identities are written in its own order: the message's user id is linked
    after the change it follows, so a later username-only message is the blocked patient too."""
    number_id = new_number_id(sql, clinic)
    user_id = new_user_id()
    clinic.add_patient(phone="+" + OLD, is_blocked=True)
    doc = payload("system_user_changed_number", number_id, phone=OLD, new_phone=NEW, new_user_id="")
    text = payload("text_with_user_id", number_id, phone=NEW, user_id=user_id)
    value = doc["entry"][0]["changes"][0]["value"]
    value["contacts"] = text["entry"][0]["changes"][0]["value"]["contacts"]
    value["messages"] += text["entry"][0]["changes"][0]["value"]["messages"]
    assert accepted(post(client, doc)) == counts(blocked=1, identity_changes=1)
    alone = payload("text_username_only", number_id, user_id=user_id)
    assert accepted(post(client, alone)) == counts(blocked=1)


def merged(*docs) -> dict:
    """One delivery holding the messages of all of `docs`, in that order."""
    first = copy.deepcopy(docs[0])
    value = first["entry"][0]["changes"][0]["value"]
    for doc in docs[1:]:
        value["messages"] += doc["entry"][0]["changes"][0]["value"]["messages"]
    return first


def lock_waiters(sql) -> int:
    return sql.execute(
        "SELECT count(*) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()["n"]


def until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


def test_deliveries_with_the_same_identities_in_opposite_order_do_not_deadlock(
    app, whatsapp, clinic, sql, database_url
):
    """Delivery A names identities X then Y, delivery B Y then X, and they meet in the worst order:
    a third transaction holds X, so A waits on it and B, started then, goes as far as it can.
    Written in payload order, A then holds X and wants Y while B holds Y and wants X: PostgreSQL
    kills one (a 500, Meta retries). The identities' locks are taken in one order first."""
    number_id = new_number_id(sql, clinic)
    x = payload("system_user_changed_number", number_id, phone=OLD, new_phone=NEW)
    y = payload(
        "system_user_changed_number",
        number_id,
        phone="50370003333",
        new_phone="50370004444",
        new_user_id=new_user_id(),
    )
    accepted(post(app.test_client(), merged(x, y)))  # X and Y exist: updates lock their rows
    holder = psycopg.connect(database_url)
    responses = {}

    def deliver(name, doc):
        responses[name] = post(app.test_client(), doc)

    threads = {"a": threading.Thread(target=deliver, args=("a", merged(x, y)))}
    threads["b"] = threading.Thread(target=deliver, args=("b", merged(y, x)))
    try:
        holder.execute(
            "SELECT 1 FROM whatsapp_identities WHERE clinic_id = %s AND kind = 'wa_id' "
            "AND value = %s FOR UPDATE",
            (clinic.id, "+" + NEW),
        )
        threads["a"].start()
        until(lambda: lock_waiters(sql) == 1)
        threads["b"].start()
        until(lambda: lock_waiters(sql) == 2)
    finally:
        holder.rollback()
        holder.close()
    for thread in threads.values():
        thread.join(30)
    assert {name: r.status_code for name, r in responses.items()} == {"a": 200, "b": 200}
    assert responses["a"].json == responses["b"].json == counts(identity_changes=2)
    assert {(r["kind"], r["value"]) for r in identities(sql, clinic)} == {
        ("user_id", META_NEW_USER_ID["system_user_changed_number"]),
        ("user_id", y["entry"][0]["changes"][0]["value"]["messages"][0]["system"]["user_id"]),
        ("wa_id", "+" + NEW),
        ("wa_id", "+50370004444"),
    }


def test_a_number_change_for_a_patient_registered_later_still_follows(
    client, whatsapp, clinic, sql
):
    """The change came before staff registered the old number; the block still follows the person."""
    number_id = new_number_id(sql, clinic)
    accepted(
        post(client, payload("system_user_changed_number", number_id, phone=OLD, new_phone=NEW))
    )
    clinic.add_patient(phone="+" + OLD, is_blocked=True)
    assert accepted(post(client, payload("text", number_id, phone=NEW))) == counts(blocked=1)


def test_the_new_user_id_of_a_number_change_is_the_same_person(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    clinic.add_patient(phone="+" + OLD, is_blocked=True)
    new_user = new_user_id()
    accepted(
        post(
            client,
            payload(
                "system_user_changed_number",
                number_id,
                phone=OLD,
                new_phone=NEW,
                user_id=new_user_id(),
                new_user_id=new_user,
            ),
        )
    )
    username_only = payload("text_username_only", number_id, user_id=new_user)
    assert accepted(post(client, username_only)) == counts(blocked=1)
    assert queued(sql, clinic) == []


def test_a_number_change_in_one_clinic_does_not_touch_another(client, whatsapp, make_clinic, sql):
    first, second = make_clinic(), make_clinic()
    first_number, second_number = new_number_id(sql, first), new_number_id(sql, second)
    first.add_patient(phone="+" + OLD, is_blocked=True)
    accepted(
        post(client, payload("system_user_changed_number", first_number, phone=OLD, new_phone=NEW))
    )
    assert identities(sql, second) == []
    assert accepted(post(client, payload("text", second_number, phone=NEW))) == counts(queued=1)


# Senders known by a business-scoped user id


def test_a_user_id_is_linked_to_the_patient_once_both_appear(
    client, whatsapp, clinic, sql, database_url
):
    number_id = new_number_id(sql, clinic)
    patient_id = clinic.add_patient(phone="+" + OLD)
    user_id = new_user_id()
    accepted(post(client, payload("text_username_only", number_id, user_id=user_id)))
    assert queued(sql, clinic)[0]["patient_id"] is None

    accepted(post(client, payload("text_with_user_id", number_id, phone=OLD, user_id=user_id)))
    assert str(queued(sql, clinic)[1]["patient_id"]) == patient_id
    # The message that came first, with only the user id, is the patient's when the chatbot takes it.
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        claimed = chatbot.claim(conn, clinic.id, chatbot.Lease("test"))
    assert [m["patient_id"] for m in claimed] == [patient_id, patient_id]

    accepted(post(client, payload("text_username_only", number_id, user_id=user_id)))
    assert str(queued(sql, clinic)[2]["patient_id"]) == patient_id
    assert [(r["kind"], r["value"], r["patient_id"]) for r in identities(sql, clinic)] == [
        ("user_id", user_id, patient_id)
    ]


def test_a_block_applies_to_a_username_only_sender(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    clinic.add_patient(phone="+" + OLD, is_blocked=True)
    user_id = new_user_id()
    both = payload("text_with_user_id", number_id, phone=OLD, user_id=user_id)
    assert accepted(post(client, both)) == counts(blocked=1)
    username_only = payload("text_username_only", number_id, user_id=user_id)
    assert accepted(post(client, username_only)) == counts(blocked=1)
    assert queued(sql, clinic) == []


def test_a_user_id_linked_before_the_patient_existed_matches_later(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    user_id = new_user_id()
    accepted(post(client, payload("text_with_user_id", number_id, phone=OLD, user_id=user_id)))
    clinic.add_patient(phone="+" + OLD, is_blocked=True)
    username_only = payload("text_username_only", number_id, user_id=user_id)
    assert accepted(post(client, username_only)) == counts(blocked=1)


def test_blocking_drops_the_waiting_messages_of_the_user_id(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    patient_id = clinic.add_patient(phone="+" + OLD)
    user_id = new_user_id()
    accepted(post(client, payload("text_with_user_id", number_id, phone=OLD, user_id=user_id)))
    sql.execute("UPDATE inbound_messages SET patient_id = NULL WHERE clinic_id = %s", (clinic.id,))
    accepted(post(client, payload("text_username_only", number_id, user_id=user_id)))
    assert len(queued(sql, clinic)) == 2

    response = client.patch(
        f"/api/patients/{patient_id}/block", json={"blocked": True}, headers=clinic.headers()
    )
    assert response.status_code == 200
    assert queued(sql, clinic) == []
    assert clinic.audit("patient.block")[0]["details"]["dropped_messages"] == 2


def test_a_user_id_change_carries_the_block(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    clinic.add_patient(phone="+" + OLD, is_blocked=True)
    old_user, new_user = new_user_id(), new_user_id()
    accepted(post(client, payload("text_with_user_id", number_id, phone=OLD, user_id=old_user)))
    change = payload(
        "system_user_changed_user_id", number_id, user_id=old_user, new_user_id=new_user
    )
    assert accepted(post(client, change)) == counts(identity_changes=1)
    username_only = payload("text_username_only", number_id, user_id=new_user)
    assert accepted(post(client, username_only)) == counts(blocked=1)


@pytest.mark.parametrize(
    "odd",
    [
        {"type": "user_changed_number"},  # no new number
        {"type": "customer_identity_changed", "wa_id": NEW},  # not a change we act on
        {"type": "user_changed_user_id"},  # no new user id
    ],
)
def test_system_messages_we_cannot_use_are_unreadable(client, whatsapp, clinic, sql, odd):
    number_id = new_number_id(sql, clinic)
    doc = payload("system_user_changed_number", number_id, phone=OLD)
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["system"] = {"body": "x", **odd}
    assert accepted(post(client, doc)) == counts(unreadable=1)
    assert identities(sql, clinic) == [] and queued(sql, clinic) == []


def test_a_malformed_user_id_is_not_an_identity(client, whatsapp, clinic, sql):
    number_id = new_number_id(sql, clinic)
    doc = payload("text_username_only", number_id, user_id="not a user id; DROP TABLE")
    assert accepted(post(client, doc)) == counts(unreadable=1)


# Mobile numbers WhatsApp writes differently from how clinics store them


@pytest.mark.parametrize(
    ("stored", "whatsapp_sends"),
    [
        ("+541123456789", "5491123456789"),  # Argentina, typed +54 11 2345-6789
        ("+5491123456789", "5491123456789"),  # Argentina, typed 011 15 2345-6789
        ("+543512345678", "5493512345678"),  # Argentina, Córdoba
        ("+5551999998888", "555199998888"),  # Brazil, account older than the ninth digit
        ("+5511987654321", "5511987654321"),  # Brazil, same form
        ("+525512345678", "5215512345678"),  # Mexico, the old 1
    ],
)
def test_national_forms_of_a_mobile_are_one_person(
    client,
    whatsapp,
    make_clinic,
    sql,
    stored,
    whatsapp_sends,
):
    blocking, other = make_clinic(), make_clinic()
    blocking_number, other_number = new_number_id(sql, blocking), new_number_id(sql, other)
    blocking.add_patient(phone=stored, is_blocked=True)
    patient_id = other.add_patient(phone=stored)
    assert accepted(post(client, payload("text", blocking_number, phone=whatsapp_sends))) == (
        counts(blocked=1)
    )
    assert accepted(post(client, payload("text", other_number, phone=whatsapp_sends))) == (
        counts(queued=1)
    )
    assert str(queued(sql, other)[0]["patient_id"]) == patient_id


@pytest.mark.parametrize(
    ("stored", "whatsapp_sends"),
    [
        ("+541123456789", "5491123456780"),  # another Argentine number
        ("+551133334444", "5511933334444"),  # a Brazilian landline is not a mobile's old form
        ("+50377654321", "50377654320"),
    ],
)
def test_other_numbers_do_not_match(client, whatsapp, clinic, sql, stored, whatsapp_sends):
    number_id = new_number_id(sql, clinic)
    clinic.add_patient(phone=stored, is_blocked=True)
    assert accepted(post(client, payload("text", number_id, phone=whatsapp_sends))) == (
        counts(queued=1)
    )
