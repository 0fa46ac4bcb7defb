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
    start, first_claims = threading.Barrier(4), threading.Barrier(4)

    def work(name):
        conn = worker_conn()
        lease = chatbot.Lease(worker=name, limit=5, seconds=60)
        try:
            start.wait(10)
            batch = chatbot.claim(conn, clinic.id, lease)
            # Every worker holds its first batch (4 x 5 of 120: none can come back empty) before
            # any completes, so all four really claim whatever the scheduler does.
            first_claims.wait(10)
            while batch:
                for message in batch:
                    claims.append((name, message["id"]))
                    assert chatbot.still_mine(conn, message, lease)
                    answered.append(chatbot.complete(conn, message))
                batch = chatbot.claim(conn, clinic.id, lease)
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
    assert {name for name, _ in claims} == {f"worker-{n}" for n in range(4)}  # really shared
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


def parked(sql, clinic) -> list[dict]:
    return sql.execute(
        "SELECT id, claim_count, attempts, processed_at, claimed_until FROM inbound_messages "
        "WHERE clinic_id = %s AND failed_at IS NOT NULL ORDER BY id",
        (clinic.id,),
    ).fetchall()


def test_a_message_the_chatbot_cannot_answer_is_parked_and_the_queue_goes_on(
    sql, clinic, worker_conn, caplog
):
    ids = fill(sql, clinic, 3)
    answered = []

    def answer(message):
        if message["body"] == "Hola 1":
            raise RuntimeError(f"cannot answer {message['body']!r} from {message['sender_phone']}")
        answered.append(message["body"])

    lease = chatbot.Lease("a", max_attempts=3, retry_seconds=0)
    with caplog.at_level("WARNING", logger="patients.chatbot"):
        assert chatbot.run(worker_conn(), lease, answer, once=True, clinic_id=clinic.id) == 2
    assert answered == ["Hola 2", "Hola 3"]
    (row,) = parked(sql, clinic)
    assert row["id"] == ids[0] and row["attempts"] == 3 and row["claim_count"] == 3
    assert row["processed_at"] is None and row["claimed_until"] is None
    # Out of every claim, and no clinic to sweep: it waits for an operator.
    assert chatbot.claim(worker_conn(), clinic.id, chatbot.Lease("b")) == []
    assert clinic.id not in chatbot.waiting_clinics(worker_conn())
    failures = [r for r in caplog.records if r.name == "patients.chatbot"]
    assert [r.levelname for r in failures] == ["WARNING", "WARNING", "ERROR"]
    assert all(f"message {ids[0]} of clinic {clinic.id}" in r.getMessage() for r in failures)
    assert "RuntimeError" in caplog.text
    assert "Hola" not in caplog.text and "+50370000000" not in caplog.text  # no text, no phone
    assert all(r.exc_info is None for r in failures)  # a traceback would carry the exception's text


def test_a_failed_message_waits_before_it_is_tried_again(sql, clinic, worker_conn):
    ids = fill(sql, clinic, 2)
    conn = worker_conn()
    tried = []

    def answer(message):
        tried.append(message["id"])
        if message["id"] == ids[0]:
            raise RuntimeError("WhatsApp is down")

    lease = chatbot.Lease("a", retry_seconds=60)
    assert chatbot.drain(conn, clinic.id, lease, answer) == 1
    assert tried == ids  # once each: the failed one is not retried in a tight loop
    (row,) = [r for r in queued(sql, clinic) if r["processed_at"] is None]
    assert row["id"] == ids[0] and row["failed_at"] is None and row["claim_token"] is None
    assert 55 < (row["claimed_until"] - row["received_at"]).total_seconds() < 65 + 5
    assert chatbot.claim(conn, clinic.id, lease) == []


def test_a_message_tried_too_often_is_parked_at_claim_time(sql, clinic, worker_conn):
    """Workers that die while answering it (it crashes them) never fail it: its attempts add up."""
    ids = fill(sql, clinic, 2)
    sql.execute(
        "UPDATE inbound_messages SET attempts = 5 WHERE clinic_id = %s AND id = %s",
        (clinic.id, ids[0]),
    )
    claimed = chatbot.claim(worker_conn(), clinic.id, chatbot.Lease("a", limit=1, max_attempts=5))
    assert [m["id"] for m in claimed] == [ids[1]]  # the claim went on past the parked one
    assert [r["id"] for r in parked(sql, clinic)] == [ids[0]]


def test_a_message_that_crashes_its_worker_parks_alone_not_its_batch(sql, clinic, worker_conn):
    """The oldest message kills the worker as soon as it starts answering it, five times over.
    Each claim leased the whole batch of 10, but only the poison message was ever tried: only it
    is parked, and the 9 behind it are claimed again (claims count, attempts decide)."""
    ids = fill(sql, clinic, 10)
    lease = chatbot.Lease("doomed", limit=10, max_attempts=5)
    for _ in range(5):
        conn = worker_conn()
        batch = chatbot.claim(conn, clinic.id, lease)
        assert [m["id"] for m in batch] == ids
        assert chatbot.still_mine(conn, batch[0], lease) is True  # then it dies answering it
        conn.close()
        # Its leases run out (as 60 s would): moved into the past rather than slept through.
        sql.execute(
            "UPDATE inbound_messages SET claimed_until = now() - interval '1 second' "
            "WHERE clinic_id = %s AND claimed_until IS NOT NULL",
            (clinic.id,),
        )
    survivor = worker_conn()
    back = chatbot.claim(survivor, clinic.id, chatbot.Lease("survivor", limit=10, max_attempts=5))
    assert [m["id"] for m in back] == ids[1:]
    assert [(m["attempts"], m["claim_count"]) for m in back] == [(0, 6)] * 9
    assert [(r["id"], r["attempts"], r["claim_count"]) for r in parked(sql, clinic)] == [
        (ids[0], 5, 5)
    ]


def test_only_the_message_being_answered_counts_an_attempt(sql, clinic, worker_conn):
    """A slow answer lets the rest of the batch's leases run out: another worker takes them over,
    and the first worker's late check neither sends nor counts an attempt."""
    ids = fill(sql, clinic, 2)
    slow, other = worker_conn(), worker_conn()
    lease = chatbot.Lease("slow", limit=2)
    first, second = chatbot.claim(slow, clinic.id, lease)
    assert chatbot.still_mine(slow, first, lease) is True and first["attempts"] == 1
    sql.execute(
        "UPDATE inbound_messages SET claimed_until = now() - interval '1 second' "
        "WHERE clinic_id = %s AND id = %s",
        (clinic.id, ids[1]),
    )
    (taken,) = chatbot.claim(other, clinic.id, chatbot.Lease("other"))
    assert taken["id"] == ids[1] and taken["claim_count"] == 2
    assert chatbot.still_mine(slow, second, lease) is False  # taken over: do not send
    assert chatbot.still_mine(other, taken, lease) is True
    rows = {r["id"]: r for r in queued(sql, clinic)}
    assert [(rows[i]["attempts"], rows[i]["claim_count"]) for i in ids] == [(1, 1), (1, 2)]


def test_a_parked_message_comes_back_when_an_operator_clears_it(sql, clinic, worker_conn):
    """The README's retry, as written there."""
    (message_id,) = fill(sql, clinic, 1)
    sql.execute(
        "UPDATE inbound_messages SET failed_at = now(), claim_count = 5, attempts = 5 "
        "WHERE clinic_id = %s AND id = %s",
        (clinic.id, message_id),
    )
    assert chatbot.claim(worker_conn(), clinic.id, chatbot.Lease("a")) == []
    sql.execute(
        "UPDATE inbound_messages SET failed_at = NULL, attempts = 0, claim_count = 0 "
        "WHERE clinic_id = %s AND id = %s AND failed_at IS NOT NULL",
        (clinic.id, message_id),
    )
    (again,) = chatbot.claim(worker_conn(), clinic.id, chatbot.Lease("a"))
    assert again["id"] == message_id and again["attempts"] == 0 and again["claim_count"] == 1


def test_a_claim_checks_the_block_of_the_messages_it_takes_only(sql, clinic, worker_conn):
    """The block is re-checked per claimed row, so a claim's cost does not grow with the backlog."""
    patient_id = clinic.add_patient(phone="+" + PHONE)
    ids = fill(sql, clinic, 2) + fill(sql, clinic, 1, sender="+" + PHONE)
    sql.execute(
        "UPDATE patients SET is_blocked = true WHERE clinic_id = %s AND id = %s",
        (clinic.id, patient_id),
    )
    conn = worker_conn()
    first = chatbot.claim(conn, clinic.id, chatbot.Lease("a", limit=2))
    assert [m["id"] for m in first] == ids[:2]
    # The blocked sender's message was not among them: untouched, not claimed.
    assert [r["id"] for r in queued(sql, clinic) if r["claim_count"] == 0] == [ids[2]]
    assert chatbot.claim(conn, clinic.id, chatbot.Lease("a", limit=2)) == []
    assert [r["id"] for r in queued(sql, clinic)] == ids[:2]  # deleted once a claim reached it


def test_a_batch_of_blocked_senders_does_not_end_the_claim(sql, clinic, worker_conn):
    patient_id = clinic.add_patient(phone="+" + PHONE)
    blocked = fill(sql, clinic, 3, sender="+" + PHONE)
    (free,) = fill(sql, clinic, 1)
    sql.execute(
        "UPDATE patients SET is_blocked = true WHERE clinic_id = %s AND id = %s",
        (clinic.id, patient_id),
    )
    claimed = chatbot.claim(worker_conn(), clinic.id, chatbot.Lease("a", limit=2))
    assert [m["id"] for m in claimed] == [free]
    assert not {r["id"] for r in queued(sql, clinic)} & set(blocked)


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
