"""Operator commands: `flask --app app <command>`. Registered by create_app()."""

import datetime as dt
import random
import time
import uuid
import zoneinfo

import click
import jwt
from flask import Flask, current_app
from flask.cli import with_appcontext
from tqdm import tqdm

from patients import db, dui
from patients.ops import demo_data, key_rotation, whatsapp
from patients.repository import queries

DEMO_CLINIC = "Clínica Demo San Salvador"


@click.command("create-clinic")
@with_appcontext
@click.argument("name")
@click.option("--plan", type=click.Choice(["basic", "pro"]), default="basic", show_default=True)
@click.option("--country", "country_code", default="SV", show_default=True, help="Phone region.")
@click.option("--timezone", default="America/El_Salvador", show_default=True)
def create_clinic_command(name, plan, country_code, timezone):
    """Create a clinic and print its id."""
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"unknown time zone {timezone!r}", param_hint="--timezone"
        ) from None
    with db.pool().connection() as conn:
        clinic = queries.create_clinic(
            conn, name=name, plan=plan, country_code=country_code.upper(), timezone=timezone
        )
    click.echo(clinic["id"])


def mint_token(
    secret: str,
    clinic_id: str,
    role: str,
    sub: str,
    hours: float,
    *,
    audience: str = "authenticated",
    issuer: str | None = None,
) -> str:
    """A token in the shape Supabase Auth issues (patients/tokens.py reads both the same way):
    `aud`, `iss` when the service expects one, `iat`, our clinic and role in `app_metadata`, the
    Postgres role `authenticated` at the top. HS256 with the legacy secret, no `kid`."""
    now = int(time.time())
    claims = {
        **({"iss": issuer} if issuer else {}),
        "sub": sub,
        "aud": audience,
        "exp": now + round(hours * 3600),
        "iat": now,
        "app_metadata": {"clinic_id": str(clinic_id), "role": role},
        "role": "authenticated",
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def mint_configured_token(settings, clinic_id: str, role: str, sub: str, hours: float) -> str:
    """A token this app (its JWT_SECRET, JWT_AUDIENCE, JWT_ISSUER) accepts."""
    return mint_token(
        settings["JWT_SECRET"],
        clinic_id,
        role,
        sub,
        hours,
        audience=settings["JWT_AUDIENCE"],
        issuer=settings["JWT_ISSUER"],
    )


@click.command("mint-token")
@with_appcontext
@click.option("--clinic", "clinic_id", required=True, type=click.UUID)
@click.option("--role", type=click.Choice(["admin", "staff"]), default="staff", show_default=True)
@click.option("--sub", default="operator", show_default=True, help="The user id in the token.")
@click.option("--hours", default=12.0, show_default=True, help="How long the token lives.")
def mint_token_command(clinic_id, role, sub, hours):
    """Print a bearer token for a user of a clinic (JWT_AUDIENCE, JWT_ISSUER as configured)."""
    click.echo(mint_configured_token(current_app.config, clinic_id, role, sub, hours))


@click.command("seed-demo")
@with_appcontext
@click.option("--patients", "count", default=3000, show_default=True)
@click.option("--seed", default=7, show_default=True)
def seed_demo_command(count, seed):
    """Create the demo clinic (Pro plan) with realistic patients, doctors and appointments.

    Prints the clinic id. Running it again reuses the clinic it made the first time.
    """
    with db.pool().connection() as conn:
        click.echo(seed_demo_clinic(conn, current_app.extensions["dui_keys"], count, seed))


def seed_demo_clinic(conn, keys: dui.DuiKeys, count: int = 3000, seed: int = 7) -> str:
    existing = queries.find_clinic_by_name(conn, name=DEMO_CLINIC)
    if existing:
        return existing["id"]
    rng = random.Random(seed)
    clinic_id = queries.create_clinic(
        conn, name=DEMO_CLINIC, plan="pro", country_code="SV", timezone="America/El_Salvador"
    )["id"]
    doctor_ids = [str(uuid.uuid4()) for _ in range(5)]
    for doctor_id in doctor_ids:
        queries.create_doctor(conn, id=doctor_id, clinic_id=clinic_id, **demo_data.doctor(rng))
    now = dt.datetime.now(dt.UTC)
    patient_ids = []
    with conn.cursor() as cur:
        with cur.copy(queries.copy_patients_in.sql) as copy:
            for serial in tqdm(range(count), desc="patients", unit="row"):
                p = demo_data.patient(rng, serial)
                patient_id = str(uuid.uuid4())
                created = now - dt.timedelta(days=rng.randrange(900), minutes=rng.randrange(1440))
                copy.write_row(
                    demo_data.patient_copy_row(rng, keys, clinic_id, patient_id, p, created)
                )
                patient_ids.append(patient_id)
        with cur.copy(queries.copy_appointments_in.sql) as copy:
            for patient_id in tqdm(patient_ids, desc="appointments", unit="patient"):
                for _ in range(rng.randrange(4)):
                    day = now.date() + dt.timedelta(days=rng.randrange(-400, 60))
                    start = dt.time(rng.randrange(7, 17), rng.choice((0, 20, 40)))
                    status = rng.choice(demo_data.STATUSES)
                    copy.write_row(
                        (clinic_id, patient_id, rng.choice(doctor_ids), day, start, status)
                    )
    return clinic_id


def init_app(app: Flask) -> None:
    for command in (create_clinic_command, mint_token_command, seed_demo_command):
        app.cli.add_command(command)
    app.cli.add_command(key_rotation.rotate_dui_keys_command)
    for command in whatsapp.COMMANDS:
        app.cli.add_command(command)
