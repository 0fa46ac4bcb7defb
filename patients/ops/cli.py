"""Operator commands: `flask --app app <command>`. Registered by create_app().

A mistake (an unknown country or time zone, a clinic that does not exist, a database that does
not answer) is refused with one line, `Error: …`, and exit status 1; nothing is written. Those
lines are for an operator's terminal, in English, and not in the translation catalog (the web
layer's messages are). Templates with `%(name)s`, filled by `refuse()`.
"""

import datetime as dt
import functools
import random
import time
import uuid
import zoneinfo
from dataclasses import dataclass

import click
import jwt
import phonenumbers
import psycopg
from flask import Flask, current_app
from flask.cli import with_appcontext
from psycopg_pool import PoolTimeout
from tqdm import tqdm

from patients import db, dui
from patients.ops import demo_data, key_rotation, whatsapp
from patients.repository import queries

DEMO_CLINIC = "Clínica Demo San Salvador"


def refuse(message: str, **params) -> click.ClickException:
    return click.ClickException(message % params if params else message)


def one_line_database_errors(command):
    """A database that does not answer is one line, not psycopg's traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            url = current_app.config["DATABASE_URL"]
            reason = exc
            if isinstance(exc, PoolTimeout):  # "couldn't get a connection": ask libpq why
                try:
                    psycopg.connect(url, connect_timeout=3).close()
                except psycopg.OperationalError as direct:
                    reason = direct
            raise click.ClickException(db.cannot_connect(url, reason)) from None

    return run


@click.command("create-clinic")
@with_appcontext
@click.argument("name")
@click.option("--plan", type=click.Choice(["basic", "pro"]), default="basic", show_default=True)
@click.option("--country", "country_code", default="SV", show_default=True, help="Phone region.")
@click.option("--timezone", default="America/El_Salvador", show_default=True)
@one_line_database_errors
def create_clinic_command(name, plan, country_code, timezone):
    """Create a clinic and print its id."""
    country_code = country_code.strip().upper()
    # The phone region of every import and webhook: only regions libphonenumber has numbers for.
    if country_code not in phonenumbers.SUPPORTED_REGIONS:
        raise refuse(
            "unknown country %(country)s: use a two-letter region phonenumbers knows (SV, GT, HN, MX, US, …)",
            country=repr(country_code),
        )
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise refuse(
            "unknown time zone %(timezone)s: use an IANA name such as America/El_Salvador",
            timezone=repr(timezone),
        ) from None
    with db.pool().connection() as conn:
        clinic = queries.create_clinic(
            conn, name=name, plan=plan, country_code=country_code, timezone=timezone
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
@one_line_database_errors
def mint_token_command(clinic_id, role, sub, hours):
    """Print a bearer token for a user of a clinic (JWT_AUDIENCE, JWT_ISSUER as configured)."""
    if hours <= 0:
        raise refuse("--hours must be more than 0")
    if not current_app.config["JWT_SECRET"]:
        raise refuse("JWT_SECRET is not set: this service verifies tokens with the JWKS only")
    with db.pool().connection() as conn:
        clinic = queries.get_clinic(conn, clinic_id=clinic_id)
    if clinic is None:
        # A token for a clinic that does not exist reads nothing and is refused by the plan
        # checks: an operator who pasted a wrong id learns it here, not from a puzzling API.
        raise refuse(
            "no clinic %(clinic)s in this database: create-clinic prints the id of a new one",
            clinic=clinic_id,
        )
    click.echo(mint_configured_token(current_app.config, clinic_id, role, sub, hours))


@click.command("seed-demo")
@with_appcontext
@click.option("--patients", "count", default=3000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@one_line_database_errors
def seed_demo_command(count, seed):
    """Create the demo clinic (Pro plan) with realistic patients, doctors and appointments.

    Prints the clinic id. Running it again reuses the clinic it made the first time.
    """
    with db.pool().connection() as conn:
        demo = seed_demo_clinic(conn, current_app.extensions["dui_keys"], count, seed)
    click.echo(demo.clinic_id)


@dataclass
class DemoClinic:
    clinic_id: str
    patient_id: str  # Juan Pérez, the README's $PATIENT_ID


def seed_demo_clinic(conn, keys: dui.DuiKeys, count: int = 3000, seed: int = 7) -> DemoClinic:
    existing = queries.find_clinic_by_name(conn, name=DEMO_CLINIC)
    clinic_id = existing["id"] if existing else generate_demo_clinic(conn, keys, count, seed)
    return DemoClinic(clinic_id, add_showcase(conn, keys, clinic_id))


def add_showcase(conn, keys: dui.DuiKeys, clinic_id: str) -> str:
    """The README's patients and WhatsApp number, once; the id of the first (Juan Pérez)."""
    today = dt.date.today()
    doctor_id = queries.first_doctor(conn, clinic_id=clinic_id)
    ids = []
    for patient in demo_data.SHOWCASE:
        known = queries.find_patient_by_phone(conn, clinic_id=clinic_id, phone=patient["phone"])
        if known:
            ids.append(known)
            continue
        patient_id = str(uuid.uuid4())
        ciphertext = key_id = None
        if patient["dui"]:
            ciphertext, key_id = keys.encrypt(clinic_id, patient_id, patient["dui"])
        queries.create_showcase_patient(
            conn,
            id=patient_id,
            clinic_id=clinic_id,
            dui_ciphertext=ciphertext,
            dui_key_id=key_id,
            **{k: patient[k] for k in ("full_name", "phone", "email", "notes")},
            no_show_count=patient["no_show_count"],
            is_blocked=patient["is_blocked"],
        )
        for days, start, status, with_doctor in patient["appointments"]:
            queries.create_showcase_appointment(
                conn,
                clinic_id=clinic_id,
                patient_id=patient_id,
                doctor_id=doctor_id if with_doctor else None,
                appointment_date=today + dt.timedelta(days=days),
                start_time=start,
                status=status,
            )
        ids.append(patient_id)
    queries.claim_whatsapp_number(conn, clinic_id=clinic_id, number_id=demo_data.WHATSAPP_NUMBER_ID)
    return ids[0]


def generate_demo_clinic(conn, keys: dui.DuiKeys, count: int, seed: int) -> str:
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
