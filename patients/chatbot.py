"""How a chatbot worker consumes inbound_messages safely alongside others: plain Python, no Flask.

The protocol (queries/chatbot.sql):
1. `claim()`, one statement: lock up to `limit` free messages FOR UPDATE SKIP LOCKED and, of those
   only, delete the ones whose sender is by now a blocked patient, park the ones tried
   `max_attempts` times already, and lease the rest to this worker.
2. Compose the answer. Right before sending, `still_mine()`: the message is still this worker's and
   its sender was not blocked meanwhile (it also renews the lease for the send, and counts the
   attempt: a claim leases a whole batch, but only the message being answered is being tried).
3. After sending, `complete()`: processed_at is set. A worker that dies before this never
   completes; its lease runs out and another worker claims the message again.
   If answering raises, `fail()`: the message comes back after `retry_seconds`, or is parked once it
   has had `max_attempts` attempts, and the worker goes on with the rest: one message the chatbot
   cannot answer never holds up a clinic's queue.
`wait()` sleeps on LISTEN inbound_messages (the webhook's inserts notify with the clinic id), so a
worker needs no tight polling; the timeout doubles as the sweep for run-out leases.

The connection is the caller's own, in autocommit mode (LISTEN must not sit in a transaction).
"""

import logging
from dataclasses import dataclass

import psycopg

from patients.repository import queries

log = logging.getLogger(__name__)

CHANNEL = "inbound_messages"


@dataclass
class Lease:
    worker: str
    limit: int = 10
    seconds: int = 60
    max_attempts: int = 5  # attempts without an answer before a message is parked
    retry_seconds: int = 30  # how long a message the chatbot failed on waits before its next claim


def listen(conn: psycopg.Connection) -> None:
    conn.execute(f"LISTEN {CHANNEL}")


def waiting_clinics(conn: psycopg.Connection) -> list[str]:
    return [row["clinic_id"] for row in queries.waiting_clinics(conn)]


def claim(conn: psycopg.Connection, clinic_id: str, lease: Lease) -> list[dict]:
    """The messages this worker now holds, oldest first (empty: nothing free to claim)."""
    while True:
        rows = queries.claim_inbound_messages(
            conn,
            clinic_id=clinic_id,
            worker=lease.worker,
            limit=lease.limit,
            lease_seconds=lease.seconds,
            max_attempts=lease.max_attempts,
        )
        claimed = [row for row in rows if row["id"] is not None]
        if claimed or not rows[0]["looked"]:
            # Else every row taken was blocked or parked, and more may wait behind them.
            return sorted(claimed, key=lambda row: (row["received_at"], row["id"]))


def still_mine(conn: psycopg.Connection, message: dict, lease: Lease) -> bool:
    """Call once per attempt, right before sending: True counts an attempt on this message."""
    attempt = queries.still_claimed(
        conn,
        clinic_id=message["clinic_id"],
        id=message["id"],
        claim_token=message["claim_token"],
        lease_seconds=lease.seconds,
    )
    if attempt is None:
        return False
    message["attempts"] = attempt
    return True


def complete(conn: psycopg.Connection, message: dict) -> bool:
    """Mark the message answered; False when it was no longer this worker's (blocked, taken over)."""
    return by_its_claim(queries.complete_inbound_message, conn, message)


def release(conn: psycopg.Connection, message: dict) -> bool:
    return by_its_claim(queries.release_inbound_message, conn, message)


def by_its_claim(query, conn: psycopg.Connection, message: dict) -> bool:
    """Run `query` on the message only while this worker's claim on it stands."""
    changed = query(
        conn, clinic_id=message["clinic_id"], id=message["id"], claim_token=message["claim_token"]
    )
    return changed == 1


def fail(conn: psycopg.Connection, message: dict, lease: Lease) -> bool | None:
    """The chatbot could not answer: back to the queue after a delay, or parked (True) after
    `max_attempts` attempts; None when the message was no longer this worker's."""
    row = queries.fail_inbound_message(
        conn,
        clinic_id=message["clinic_id"],
        id=message["id"],
        claim_token=message["claim_token"],
        max_attempts=lease.max_attempts,
        retry_seconds=lease.retry_seconds,
    )
    return None if row is None else row["parked"]


def wait(conn: psycopg.Connection, timeout: float) -> set[str]:
    """The clinics notified within `timeout` seconds (empty on timeout), gathering any burst."""
    clinics = {n.payload for n in conn.notifies(timeout=timeout, stop_after=1)}
    if clinics:
        # Whatever else arrived with it, without waiting again.
        clinics |= {n.payload for n in conn.notifies(timeout=0)}
    return clinics


def drain(conn: psycopg.Connection, clinic_id: str, lease: Lease, answer) -> int:
    """Claim and answer the clinic's waiting messages until none is free; how many were answered.

    `answer(message)` sends the reply; it is called only while the message is still this worker's.
    When it raises, the message is failed (retried later, or parked) and the next one is answered.
    """
    answered = 0
    while batch := claim(conn, clinic_id, lease):
        for message in batch:
            if not still_mine(conn, message, lease):
                continue
            try:
                answer(message)
            except Exception as exc:
                failed(conn, message, lease, exc)
                continue
            except BaseException:
                release(conn, message)  # stopped (Ctrl-C): back to the queue at once, no failure
                raise
            answered += complete(conn, message)
    return answered


def failed(conn: psycopg.Connection, message: dict, lease: Lease, exc: Exception) -> None:
    parked = fail(conn, message, lease)
    # The exception's type only: its text (and a traceback's last line) may quote the message or
    # the sender's phone, which the log must never hold.
    if parked is None:
        outcome, level = "no longer this worker's (blocked or taken over)", logging.WARNING
    elif parked:
        outcome, level = "parked (failed_at) for an operator", logging.ERROR
    else:
        outcome, level = "tried again later", logging.WARNING
    log.log(
        level,
        "chatbot failed on message %s of clinic %s (%s), attempt %d of %d: %s",
        message["id"],
        message["clinic_id"],
        type(exc).__name__,
        message["attempts"],
        lease.max_attempts,
        outcome,
    )


def run(
    conn: psycopg.Connection,
    lease: Lease,
    answer,
    *,
    poll: float = 30.0,
    once: bool = False,
    clinic_id: str | None = None,
) -> int:
    """The worker loop: drain every clinic with work, then sleep until notified (or `poll` passes).

    `once`: drain what is waiting now and return the number answered (tests, a demo).
    `clinic_id`: serve that clinic only.
    """

    def ours(clinics) -> set[str]:
        return {c for c in clinics if clinic_id in (None, c)}

    listen(conn)
    answered = 0
    clinics = ours(waiting_clinics(conn))
    while True:
        for each in sorted(clinics):
            answered += drain(conn, each, lease, answer)
        if once:
            return answered
        notified = wait(conn, poll)
        clinics = ours(notified) if notified else ours(waiting_clinics(conn))
