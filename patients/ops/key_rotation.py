"""`flask --app app rotate-dui-keys`: re-encrypt every DUI under the newest key of DUI_KEYS.

Each batch is its own transaction (rows locked FOR UPDATE SKIP LOCKED, decrypted with their old
key, encrypted with the newest, written, committed), so Ctrl-C or a crash loses at most the batch
in flight, every row is always readable, and running the command again picks up what is left.
Once it reports nothing left, the older keys can be dropped from DUI_KEYS.
"""

from dataclasses import dataclass

import click
from flask import current_app
from flask.cli import with_appcontext
from psycopg_pool import ConnectionPool
from tqdm import tqdm

from patients import db, dui
from patients.repository import queries


@dataclass
class Outcome:
    rotated: int = 0
    unreadable: int = (
        0  # could not be decrypted (copied, tampered or key missing): left as they are
    )
    remaining: int = 0  # still under an older key afterwards (busy rows, unreadable ones)


def rotate(
    pool: ConnectionPool, keys: dui.DuiKeys, batch_size: int = 500, progress=None
) -> Outcome:
    outcome = Outcome()
    after = (None, None)
    while True:
        with pool.connection() as conn:
            rows = queries.lock_duis_to_rotate(
                conn,
                newest_key_id=keys.newest_id,
                after_clinic_id=after[0],
                after_id=after[1],
                batch_size=batch_size,
            )
            if not rows:
                break
            after = (rows[-1]["clinic_id"], rows[-1]["id"])
            batch = {"clinic_ids": [], "ids": [], "ciphertexts": [], "key_ids": []}
            for row in rows:
                clear = keys.decrypt(
                    row["clinic_id"], row["id"], row["dui_ciphertext"], row["dui_key_id"]
                )
                if clear is None:  # already logged by decrypt(), without the value
                    outcome.unreadable += 1
                    continue
                ciphertext, key_id = keys.encrypt(row["clinic_id"], row["id"], clear)
                batch["clinic_ids"].append(row["clinic_id"])
                batch["ids"].append(row["id"])
                batch["ciphertexts"].append(ciphertext)
                batch["key_ids"].append(key_id)
            if batch["ids"]:
                outcome.rotated += queries.rewrite_duis(conn, **batch)
        if progress is not None:
            progress.update(len(rows))
    with pool.connection() as conn:
        outcome.remaining = queries.count_duis_to_rotate(conn, newest_key_id=keys.newest_id)
    return outcome


@click.command("rotate-dui-keys")
@with_appcontext
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def rotate_dui_keys_command(batch_size):
    """Re-encrypt every DUI under the newest key of DUI_KEYS (safe to interrupt and rerun)."""
    keys = current_app.extensions["dui_keys"]
    with db.pool().connection() as conn:
        total = queries.count_duis_to_rotate(conn, newest_key_id=keys.newest_id)
    with tqdm(total=total, desc="re-encrypting DUIs", unit="DUI") as bar:
        outcome = rotate(db.pool(), keys, batch_size, progress=bar)
    click.echo(f"Re-encrypted {outcome.rotated} DUIs under key {keys.newest_id}.")
    if outcome.unreadable:
        click.echo(
            f"{outcome.unreadable} DUIs could not be decrypted with any key of DUI_KEYS and were "
            "left as they are (see the warnings in the log for their patient ids)."
        )
    if outcome.remaining:
        click.echo(
            f"{outcome.remaining} DUIs are still under an older key; keep the older keys in "
            "DUI_KEYS. Run the command again once the unreadable ones are dealt with."
        )
        raise SystemExit(1)
    click.echo("Every DUI is under the newest key; older keys may now be removed from DUI_KEYS.")
