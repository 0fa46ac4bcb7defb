"""How a chatbot worker consumes inbound_messages safely alongside others: plain Python, no Flask.

The protocol (queries/chatbot.sql):
1. `claim()` in one transaction: drop the waiting messages whose sender is by now a blocked patient,
   then lock up to `limit` free messages FOR UPDATE SKIP LOCKED and lease them to this worker.
2. Compose the answer. Right before sending, `still_mine()`: the message is still this worker's and
   its sender was not blocked meanwhile (it also renews the lease for the send).
3. After sending, `complete()`: processed_at is set. A worker that dies before this never
   completes; its lease runs out and another worker claims the message again.
`wait()` sleeps on LISTEN inbound_messages (the webhook's inserts notify with the clinic id), so a
worker needs no tight polling; the timeout doubles as the sweep for run-out leases.

The connection is the caller's own, in autocommit mode (LISTEN must not sit in a transaction).
"""

from dataclasses import dataclass

import psycopg

from patients.repository import queries

CHANNEL = "inbound_messages"


@dataclass
class Lease:
    worker: str
    limit: int = 10
    seconds: int = 60


def listen(conn: psycopg.Connection) -> None:
    conn.execute(f"LISTEN {CHANNEL}")


def waiting_clinics(conn: psycopg.Connection) -> list[str]:
    return [row["clinic_id"] for row in queries.waiting_clinics(conn)]


def claim(conn: psycopg.Connection, clinic_id: str, lease: Lease) -> list[dict]:
    """The messages this worker now holds, oldest first (empty: nothing free to claim)."""
    with conn.transaction():
        queries.drop_blocked_waiting(conn, clinic_id=clinic_id)
        rows = queries.claim_inbound_messages(
            conn,
            clinic_id=clinic_id,
            worker=lease.worker,
            limit=lease.limit,
            lease_seconds=lease.seconds,
        )
    return sorted(rows, key=lambda row: (row["received_at"], row["id"]))


def still_mine(conn: psycopg.Connection, message: dict, lease: Lease) -> bool:
    return bool(
        queries.still_claimed(
            conn,
            clinic_id=message["clinic_id"],
            id=message["id"],
            claim_token=message["claim_token"],
            lease_seconds=lease.seconds,
        )
    )


def complete(conn: psycopg.Connection, message: dict) -> bool:
    """Mark the message answered; False when it was no longer this worker's (blocked, taken over)."""
    return (
        queries.complete_inbound_message(
            conn,
            clinic_id=message["clinic_id"],
            id=message["id"],
            claim_token=message["claim_token"],
        )
        == 1
    )


def release(conn: psycopg.Connection, message: dict) -> bool:
    return (
        queries.release_inbound_message(
            conn,
            clinic_id=message["clinic_id"],
            id=message["id"],
            claim_token=message["claim_token"],
        )
        == 1
    )


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
    """
    answered = 0
    while batch := claim(conn, clinic_id, lease):
        for message in batch:
            if not still_mine(conn, message, lease):
                continue
            try:
                answer(message)
            except Exception:
                release(conn, message)  # back to the queue at once, not after the lease
                raise
            answered += complete(conn, message)
    return answered


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
