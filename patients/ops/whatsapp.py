"""WhatsApp operator commands: the reference chatbot consumer, retention, unrouted notifications.

- `flask --app app chatbot-demo`: a chatbot worker that claims waiting messages (patients/chatbot.py)
  and prints them instead of answering; run several at once to see them share the queue.
- `flask --app app purge-messages --days 90`: delete answered messages older than N days, in batches.
- `flask --app app whatsapp-unrouted [--replay]`: what arrived for numbers no clinic has.
"""

import datetime as dt
import os
import socket
from dataclasses import dataclass

import click
import psycopg
from flask import current_app
from flask.cli import with_appcontext
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from tqdm import tqdm

from patients import chatbot, db, whatsapp
from patients.repository import queries


@click.command("chatbot-demo")
@with_appcontext
@click.option("--worker", default=None, help="This worker's name (default: host and pid).")
@click.option("--clinic", "clinic_id", type=click.UUID, default=None, help="Only this clinic.")
@click.option("--batch", default=10, show_default=True, type=click.IntRange(1, 500))
@click.option(
    "--lease", default=60, show_default=True, type=click.IntRange(1, 3600), help="Seconds."
)
@click.option(
    "--poll",
    default=30.0,
    show_default=True,
    help="Seconds to sleep when no notification comes (run-out leases notify nobody).",
)
@click.option("--once", is_flag=True, help="Drain what is waiting now, then exit.")
def chatbot_demo_command(worker, clinic_id, batch, lease, poll, once):
    """A reference chatbot worker: claim waiting messages, print them, mark them answered."""
    lease = chatbot.Lease(
        worker=worker or f"{socket.gethostname()}-{os.getpid()}", limit=batch, seconds=lease
    )
    with psycopg.connect(
        current_app.config["DATABASE_URL"],
        autocommit=True,
        row_factory=dict_row,
        application_name="patients-chatbot-demo",
    ) as conn:
        answered = chatbot.run(
            conn,
            lease,
            print_message,
            poll=poll,
            once=once,
            clinic_id=str(clinic_id) if clinic_id else None,
        )
    click.echo(f"answered {answered}")


def print_message(message: dict) -> None:
    sender = message["sender_phone"] or message["sender_user_id"] or "an unknown sender"
    name = f" ({message['sender_name']})" if message["sender_name"] else ""
    what = message["body"] if message["body"] is not None else f"<{message['message_type']}>"
    click.echo(f"clinic {message['clinic_id']} #{message['id']} from {sender}{name}: {what}")


@dataclass
class Purged:
    messages: int = 0
    statuses: int = 0
    unrouted: int = 0
    unanswered: int = 0  # older than the cutoff but never answered: kept


def purge(pool: ConnectionPool, days: int, batch_size: int, progress: bool | None = None) -> Purged:
    """Delete what is older than `days`, clinic by clinic, one committed batch at a time.

    Safe to stop and to run again (and twice at once: each skips the other's rows).
    """
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    outcome = Purged()
    with pool.connection() as conn:
        clinics = queries.clinics_with_expired_messages(conn, cutoff=cutoff)
    outcome.unanswered = sum(row["unanswered"] for row in clinics)
    total = sum(row["expired"] for row in clinics)
    # progress None: a bar only on a terminal (tqdm's own test), so cron's mail holds the summary.
    disable = {True: False, False: True, None: None}[progress]
    with tqdm(total=total, desc="purging messages", unit="msg", disable=disable) as bar:
        for row in clinics:
            for name in ("purge_expired_messages", "purge_expired_statuses"):
                while True:
                    with pool.connection() as conn:
                        deleted = getattr(queries, name)(
                            conn, clinic_id=row["clinic_id"], cutoff=cutoff, batch=batch_size
                        )
                    if name == "purge_expired_messages":
                        outcome.messages += deleted
                        bar.update(deleted)
                    else:
                        outcome.statuses += deleted
                    if deleted < batch_size:
                        break
    with pool.connection() as conn:
        outcome.unrouted = queries.purge_expired_unrouted(conn, cutoff=cutoff)
    return outcome


@click.command("purge-messages")
@with_appcontext
@click.option(
    "--days",
    default=90,
    show_default=True,
    type=click.IntRange(min=1),
    help="Keep answered messages this many days.",
)
@click.option(
    "--batch", "batch_size", default=1000, show_default=True, type=click.IntRange(1, 100_000)
)
@click.option("--progress/--no-progress", default=None, help="Default: a bar only on a terminal.")
def purge_messages_command(days, batch_size, progress):
    """Delete answered WhatsApp messages (and delivery statuses) older than --days, in batches."""
    outcome = purge(db.pool(), days, batch_size, progress)
    click.echo(
        f"purged {outcome.messages} answered messages, {outcome.statuses} delivery statuses and "
        f"{outcome.unrouted} unrouted notifications older than {days} days; "
        f"kept {outcome.unanswered} older messages never answered"
    )


@click.command("whatsapp-unrouted")
@with_appcontext
@click.option(
    "--replay",
    is_flag=True,
    help="Store the ones whose number a clinic has by now, then forget them.",
)
def whatsapp_unrouted_command(replay):
    """List the notifications kept for phone_number_ids no clinic had."""
    with db.pool().connection() as conn:
        if replay:
            counts = whatsapp.replay_unrouted(conn)
            click.echo(
                "replayed {notifications} notifications: {queued} queued, {blocked} blocked, "
                "{duplicate} duplicate, {identity_changes} identity changes, {statuses} statuses".format(
                    **{key: counts.get(key, 0) for key in ("notifications", *whatsapp.OUTCOMES)}
                )
            )
        for row in queries.unrouted_summary(conn):
            state = "routable now" if row["routable"] else "no clinic has it"
            click.echo(
                f"{row['phone_number_id']}: {row['notifications']} kept, "
                f"{row['first_at'].isoformat(timespec='minutes')} to "
                f"{row['last_at'].isoformat(timespec='minutes')}, {state}"
            )


COMMANDS = (chatbot_demo_command, purge_messages_command, whatsapp_unrouted_command)
