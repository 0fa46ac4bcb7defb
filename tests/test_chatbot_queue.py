"""The chatbot's side of inbound_messages: several workers drain it with no double claims, a crashed
worker's lease runs out and its messages come back, the block is checked again at claim time,
inserts notify listeners, and the reference consumer (`flask --app app chatbot-demo`) works.
Workers are threads with connections of their own, against the real PostgreSQL."""

import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from patients import chatbot
from patients.repository import queries
from tests.whatsapp_payloads import (
    accepted,
    counts,
    new_number_id,
    new_user_id,
    payload,
    post,
    queued,
)

PHONE = "50377654321"


def fill(sql, clinic, count, sender="+50370000000"):
    """Messages another writer (or the webhook) queued; ids in arrival order."""
    rows = sql.execute(
        "INSERT INTO inbound_messages (clinic_id, message_id, sender_phone, body) "
        "SELECT %s, 'wamid.fill-' || g || '-' || gen_random_uuid(), %s, 'Hola ' || g "
        "FROM generate_series(1, %s) g RETURNING id",
        (clinic.id, sender, count),
    ).fetchall()
    return [row["id"] for row in rows]


@pytest.fixture
def worker_conn(database_url):
    """A factory of chatbot connections (autocommit, dict rows), closed at the end."""
    opened = []

    def connect():
        conn = psycopg.connect(database_url, autocommit=True, row_factory=dict_row)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def test_concurrent_workers_drain_the_queue_without_double_claims(sql, clinic, worker_conn):
    ids = fill(sql, clinic, 120)
    claims, answered, errors = [], [], []
    start = threading.Barrier(4)

    def work(name):
        conn = worker_conn()
        lease = chatbot.Lease(worker=name, limit=5, seconds=60)
        try:
            start.wait()
            while batch := chatbot.claim(conn, clinic.id, lease):
                for message in batch:
                    claims.append((name, message["id"]))
                    assert chatbot.still_mine(conn, message, lease)
                    answered.append(chatbot.complete(conn, message))
        except Exception as exc:  # reported below; a thread's exception would vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    claimed_ids = [message_id for _, message_id in claims]
    assert sorted(claimed_ids) == ids  # every message once, none twice
    assert answered == [True] * len(ids)
    assert len({name for name, _ in claims}) > 1  # the work was really shared
    rows = queued(sql, clinic)
    assert all(r["processed_at"] is not None and r["claim_count"] == 1 for r in rows)


def test_a_claim_takes_the_oldest_first_and_skips_what_others_hold(sql, clinic, worker_conn):
    ids = fill(sql, clinic, 5)
    first, second = worker_conn(), worker_conn()
    mine = chatbot.claim(first, clinic.id, chatbot.Lease("a", limit=2))
    assert [m["id"] for m in mine] == ids[:2]
    assert [m["body"] for m in mine] == ["Hola 1", "Hola 2"]
    theirs = chatbot.claim(second, clinic.id, chatbot.Lease("b", limit=10))
    assert [m["id"] for m in theirs] == ids[2:]
    assert chatbot.claim(second, clinic.id, chatbot.Lease("b")) == []


def test_a_crashed_workers_messages_come_back_when_the_lease_runs_out(sql, clinic, worker_conn):
    ids = fill(sql, clinic, 3)
    crashed = worker_conn()
    held = chatbot.claim(crashed, clinic.id, chatbot.Lease("crashed", limit=10, seconds=1))
    assert [m["id"] for m in held] == ids
    crashed.close()  # dies without completing anything

    survivor = worker_conn()
    lease = chatbot.Lease("survivor", limit=10, seconds=60)
    assert chatbot.claim(survivor, clinic.id, lease) == []  # still leased
    time.sleep(1.2)
    back = chatbot.claim(survivor, clinic.id, lease)
    assert [m["id"] for m in back] == ids
    assert [m["claim_count"] for m in back] == [2, 2, 2]
    # The crashed worker's claim is worthless now: a new token was issued.
    late = worker_conn()
    assert chatbot.complete(late, held[0]) is False
    assert all(chatbot.complete(survivor, m) for m in back)


def test_a_released_message_is_claimable_at_once(sql, clinic, worker_conn):
    fill(sql, clinic, 1)
    conn = worker_conn()
    (message,) = chatbot.claim(conn, clinic.id, chatbot.Lease("a"))
    assert chatbot.release(conn, message) is True
    (again,) = chatbot.claim(conn, clinic.id, chatbot.Lease("b"))
    assert again["id"] == message["id"] and again["claim_token"] != message["claim_token"]


def test_the_block_is_checked_again_at_claim_time(client, whatsapp, clinic, sql, worker_conn):
    number_id = new_number_id(sql, clinic)
    patient_id = clinic.add_patient(phone="+" + PHONE)
    other = clinic.add_patient(full_name="Ana", phone="+50370000000")
    accepted(post(client, payload("text", number_id, phone=PHONE)))
    accepted(post(client, payload("text", number_id, phone="50370000000")))
    # Blocked by another writer that does not clean the queue (a direct UPDATE).
    sql.execute(
        "UPDATE patients SET is_blocked = true WHERE clinic_id = %s AND id = %s",
        (clinic.id, patient_id),
    )
    claimed = chatbot.claim(worker_conn(), clinic.id, chatbot.Lease("a"))
    assert [m["patient_id"] for m in claimed] == [other]
    assert [r["sender_phone"] for r in queued(sql, clinic)] == ["+50370000000"]


def test_a_username_message_linked_to_a_blocked_patient_is_never_claimed(
    client,
    whatsapp,
    clinic,
    sql,
    worker_conn,
):
    """It arrived before anyone knew whose user id it was; the link came later, the claim knows."""
    number_id = new_number_id(sql, clinic)
    user_id = new_user_id()
    accepted(post(client, payload("text_username_only", number_id, user_id=user_id)))
    clinic.add_patient(phone="+" + PHONE, is_blocked=True)
    both = payload("text_with_user_id", number_id, phone=PHONE, user_id=user_id)
    assert accepted(post(client, both)) == counts(blocked=1)
    assert chatbot.claim(worker_conn(), clinic.id, chatbot.Lease("a")) == []
    assert queued(sql, clinic) == []


def test_a_block_while_a_worker_holds_the_message(client, clinic, sql, worker_conn):
    patient_id = clinic.add_patient(phone="+" + PHONE)
    fill(sql, clinic, 1, sender="+" + PHONE)
    conn = worker_conn()
    lease = chatbot.Lease("a")
    (message,) = chatbot.claim(conn, clinic.id, lease)
    assert message["patient_id"] == patient_id  # resolved at claim time
    response = client.patch(
        f"/api/patients/{patient_id}/block", json={"blocked": True}, headers=clinic.headers()
    )
    assert response.status_code == 200
    assert chatbot.still_mine(conn, message, lease) is False  # do not send
    assert chatbot.complete(conn, message) is False


def test_inserts_notify_listening_workers_with_the_clinic(
    client,
    whatsapp,
    clinic,
    sql,
    worker_conn,
):
    number_id = new_number_id(sql, clinic)
    conn = worker_conn()
    chatbot.listen(conn)
    assert chatbot.wait(conn, 0.05) == set()
    accepted(post(client, payload("text", number_id, phone=PHONE)))
    assert clinic.id in chatbot.wait(conn, 5)
    accepted(post(client, payload("text", number_id, phone=PHONE)))
    notified = chatbot.wait(conn, 5)
    assert clinic.id in notified
    # The notification carries the clinic id only, never who wrote or what.
    assert all(len(payload_) == 36 for payload_ in notified)


def test_a_waiting_worker_wakes_up_for_a_new_message(sql, clinic, worker_conn):
    conn = worker_conn()
    lease = chatbot.Lease("sleeper")
    answered = []
    done = threading.Event()

    def sleeper():
        chatbot.listen(conn)
        for clinic_id in chatbot.wait(conn, 10):
            if clinic_id == clinic.id:
                chatbot.drain(conn, clinic.id, lease, answered.append)
        done.set()

    thread = threading.Thread(target=sleeper)
    thread.start()
    time.sleep(0.3)
    fill(sql, clinic, 2)
    assert done.wait(10)
    thread.join(5)
    assert [m["body"] for m in answered] == ["Hola 1", "Hola 2"]


def test_chatbot_demo_claims_and_prints(runner, clinic, make_clinic, sql):
    fill(sql, clinic, 2)
    other = make_clinic()
    fill(sql, other, 1)
    result = runner.invoke(args=["chatbot-demo", "--once", "--clinic", clinic.id, "--batch", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3 and lines[-1] == "answered 2"
    assert lines[0].startswith(f"clinic {clinic.id} #") and lines[0].endswith(
        "from +50370000000: Hola 1"
    )
    assert all(r["processed_at"] is not None for r in queued(sql, clinic))
    assert queued(sql, other)[0]["processed_at"] is None  # another clinic's, not asked for


# Delivery statuses


def test_a_failed_send_is_kept_with_metas_error(client, whatsapp, clinic, sql, worker_conn):
    number_id = new_number_id(sql, clinic)
    doc = payload("status_failed_131047", number_id, phone=PHONE)
    assert accepted(post(client, doc)) == counts(statuses=1)
    assert accepted(post(client, doc)) == counts()  # Meta's retry adds nothing
    accepted(post(client, payload("status_delivered", number_id, phone=PHONE)))
    conn_rows = sql.execute(
        "SELECT * FROM whatsapp_statuses WHERE clinic_id = %s ORDER BY id", (clinic.id,)
    ).fetchall()
    assert [(r["status"], r["error_code"]) for r in conn_rows] == [
        ("failed", 131047),
        ("delivered", None),
    ]
    failed = conn_rows[0]
    assert failed["recipient_phone"] == "+" + PHONE
    assert failed["error_title"] == "Re-engagement message"
    assert failed["error_details"].startswith("Message failed to send because more than 24 hours")
    assert failed["status_at"].timestamp() == 1739321024
    assert conn_rows[1]["recipient_user_id"] == "US.13491208655302741918"
    recent = queries.recent_failed_statuses(worker_conn(), clinic_id=clinic.id, limit=10)
    assert [(r["message_id"], r["error_code"]) for r in recent] == [(failed["message_id"], 131047)]


def test_statuses_are_per_clinic(client, whatsapp, make_clinic, sql):
    first, second = make_clinic(), make_clinic()
    number_id = new_number_id(sql, first)
    new_number_id(sql, second)
    accepted(post(client, payload("status_failed_131047", number_id)))
    assert sql.execute(
        "SELECT count(*) AS n FROM whatsapp_statuses WHERE clinic_id = %s", (second.id,)
    ).fetchone() == {"n": 0}
