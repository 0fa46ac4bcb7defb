"""What an operator needs around the WhatsApp queue: notifications for a phone_number_id no clinic
has are kept (bounded) and replayed once the number is set; `purge-messages` deletes only answered
messages older than N days, in batches, safe to run from cron."""

import uuid

import pytest

from patients import whatsapp as rules
from tests.whatsapp_payloads import (
    accepted,
    counts,
    payload,
    post,
    queued,
)


def unknown_number_id() -> str:
    return "9" + str(uuid.uuid4().int)[:14]


def unrouted(sql, number_id):
    return sql.execute(
        "SELECT * FROM whatsapp_unrouted WHERE phone_number_id = %s ORDER BY id", (number_id,)
    ).fetchall()


def test_a_notification_for_an_unknown_number_is_kept(client, whatsapp, sql):
    number_id = unknown_number_id()
    doc = payload("text", number_id)
    assert accepted(post(client, doc)) == counts(unknown_number=1)
    (kept,) = unrouted(sql, number_id)
    assert (
        kept["value"]["messages"][0]["id"]
        == doc["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    )
    assert kept["value"]["contacts"][0]["profile"]["name"] == "Sheena Nelson"
    # A status for that number is kept too: it is part of what the operator would lose.
    accepted(post(client, payload("status_failed_131047", number_id)))
    assert [bool(row["value"].get("statuses")) for row in unrouted(sql, number_id)] == [False, True]


def test_unrouted_notifications_are_bounded(client, whatsapp, sql, monkeypatch):
    monkeypatch.setattr(rules, "UNROUTED_KEPT", 3)
    number_id = unknown_number_id()
    sent = []
    for _ in range(5):
        doc = payload("text", number_id)
        sent.append(doc["entry"][0]["changes"][0]["value"]["messages"][0]["id"])
        accepted(post(client, doc))
    assert sql.execute("SELECT count(*) AS n FROM whatsapp_unrouted").fetchone() == {"n": 3}
    assert [row["value"]["messages"][0]["id"] for row in unrouted(sql, number_id)] == sent[2:]


def test_replaying_unrouted_notifications_once_the_number_is_set(
    client,
    whatsapp,
    runner,
    clinic,
    sql,
):
    number_id = unknown_number_id()
    clinic.add_patient(full_name="Bloqueado", phone="+50370009999", is_blocked=True)
    accepted(post(client, payload("text", number_id, phone="50377654321")))
    accepted(post(client, payload("text", number_id, phone="50370009999")))
    listed = runner.invoke(args=["whatsapp-unrouted"])
    assert listed.exit_code == 0 and f"{number_id}: 2 kept" in listed.output
    assert "no clinic has it" in listed.output

    sql.execute(
        "UPDATE clinics SET whatsapp_phone_number_id = %s WHERE id = %s", (number_id, clinic.id)
    )
    result = runner.invoke(args=["whatsapp-unrouted", "--replay"])
    assert result.exit_code == 0, result.output
    assert "replayed 2 notifications: 1 queued, 1 blocked" in result.output
    assert [row["sender_phone"] for row in queued(sql, clinic)] == ["+50377654321"]
    assert unrouted(sql, number_id) == []
    again = runner.invoke(args=["whatsapp-unrouted", "--replay"])
    assert "replayed 0 notifications" in again.output and queued(sql, clinic) != []


# Retention


def add_message(sql, clinic, age_days, processed, message_id):
    sql.execute(
        "INSERT INTO inbound_messages (clinic_id, message_id, sender_phone, body, received_at, processed_at) "
        "VALUES (%s, %s, '+50377654321', 'dolor de cabeza', now() - make_interval(days => %s), "
        "CASE WHEN %s THEN now() - make_interval(days => %s) END)",
        (clinic.id, message_id, age_days, processed, max(age_days - 1, 0)),
    )


def test_purge_deletes_only_answered_messages_older_than_the_cutoff(runner, make_clinic, sql):
    first, second = make_clinic(), make_clinic()
    for clinic in (first, second):
        add_message(sql, clinic, 120, True, "old-answered-1")
        add_message(sql, clinic, 91, True, "old-answered-2")
        add_message(sql, clinic, 89, True, "recent-answered")
        add_message(sql, clinic, 200, False, "old-unanswered")
        add_message(sql, clinic, 0, False, "new")
    sql.execute(
        "INSERT INTO whatsapp_statuses (clinic_id, message_id, status, received_at) "
        "VALUES (%s, 'wamid.old', 'failed', now() - interval '100 days'), "
        "(%s, 'wamid.new', 'failed', now())",
        (first.id, first.id),
    )
    # The whole database is purged: count what other tests left (none, on a fresh one) too.
    before = sql.execute(
        "SELECT count(*) FILTER (WHERE processed_at IS NOT NULL) AS answered, "
        "count(*) FILTER (WHERE processed_at IS NULL) AS unanswered FROM inbound_messages "
        "WHERE received_at < now() - interval '90 days'"
    ).fetchone()
    assert before["answered"] >= 4 and before["unanswered"] >= 2
    result = runner.invoke(args=["purge-messages", "--batch", "1"])
    assert result.exit_code == 0, result.output
    assert f"purged {before['answered']} answered messages, 1 delivery statuses" in result.output
    assert f"kept {before['unanswered']} older messages never answered" in result.output
    assert "purging messages" not in result.output  # no progress bar where there is no terminal
    for clinic in (first, second):
        left = {row["message_id"] for row in queued(sql, clinic)}
        assert left == {"recent-answered", "old-unanswered", "new"}
    statuses = sql.execute(
        "SELECT message_id FROM whatsapp_statuses WHERE clinic_id = %s", (first.id,)
    ).fetchall()
    assert statuses == [{"message_id": "wamid.new"}]

    again = runner.invoke(args=["purge-messages"])
    assert again.exit_code == 0 and "purged 0 answered messages" in again.output


def test_purge_days_is_an_option(runner, clinic, sql):
    add_message(sql, clinic, 10, True, "ten-days")
    add_message(sql, clinic, 3, True, "three-days")
    result = runner.invoke(args=["purge-messages", "--days", "7", "--progress"])
    assert result.exit_code == 0, result.output
    assert {row["message_id"] for row in queued(sql, clinic)} == {"three-days"}


@pytest.mark.parametrize("days", ["0", "-1", "x"])
def test_purge_refuses_a_bad_number_of_days(runner, days):
    result = runner.invoke(args=["purge-messages", "--days", days])
    assert result.exit_code == 2 and "--days" in result.output
