"""What keeps tests short: tokens, clinics to call the API as, CSV uploads, a throwaway database."""

import base64
import datetime as dt
import io
import uuid

import jwt
import psycopg

from patients.db import apply_schema
from patients.dui import normalise_dui
from patients.ops.embedded_pg import throwaway_cluster

JWT_SECRET = "test-secret-" + "x" * 40
DUI_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
OLD_DUI_KEY = base64.urlsafe_b64encode(b"o" * 32).decode()


def database_cluster(prefix: str = "pgt-"):
    """A throwaway PostgreSQL with the schema applied; the caller destroys it."""
    cluster = throwaway_cluster(prefix)
    with psycopg.connect(cluster.url) as conn:
        apply_schema(conn)
    return cluster


# The list item's fields (the contract's GET /api/patients shape); never the DUI or the notes.
LIST_ITEM_FIELDS = {
    "id",
    "full_name",
    "phone",
    "email",
    "no_show_count",
    "is_blocked",
    "created_at",
}


def post_csv(client, clinic, data, *, filename="pacientes.csv", query="", role="staff"):
    """POST a CSV (str or bytes) to the import as the clinic's user, the way curl -F file=@… does."""
    if isinstance(data, str):
        data = data.encode()
    return client.post(
        f"/api/patients/import{query}",
        headers=clinic.headers(role),
        data={"file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def imported(response):
    assert response.status_code == 200, response.get_json()
    return response.json


def make_token(clinic_id, role="staff", sub="user-1", secret=JWT_SECRET, expires_in=3600, **claims):
    """An HS256 token with the claims that decide (sub, exp, aud, iat, app_metadata), as
    mint-token makes them; tests/supabase_tokens.py has Supabase's complete shape."""
    now = dt.datetime.now(dt.UTC)
    payload = {
        "sub": sub,
        "aud": "authenticated",
        "exp": now + dt.timedelta(seconds=expires_in),
        "iat": now,
        "app_metadata": {"clinic_id": str(clinic_id), "role": role},
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


class Clinic:
    """A clinic made for one test, with helpers to add rows and to call the API as its users."""

    def __init__(self, sql, keys, plan="pro", country_code="SV", timezone="America/El_Salvador"):
        self.sql, self.keys = sql, keys
        row = sql.execute(
            "INSERT INTO clinics (name, plan, country_code, timezone) VALUES (%s, %s, %s, %s) "
            "RETURNING id::text",
            (f"Clínica {uuid.uuid4().hex[:6]}", plan, country_code, timezone),
        ).fetchone()
        self.id = row["id"]

    def headers(self, role="staff", sub="user-1"):
        return {"Authorization": f"Bearer {make_token(self.id, role, sub)}"}

    def add_patient(self, full_name="Juan Pérez", phone="+50377654321", dui=None, **fields):
        patient_id = fields.pop("id", None) or str(uuid.uuid4())
        ciphertext = key_id = None
        if dui is not None:
            ciphertext, key_id = self.keys.encrypt(self.id, patient_id, normalise_dui(dui))
        columns = {
            "id": patient_id,
            "clinic_id": self.id,
            "full_name": full_name,
            "phone": phone,
            "dui_ciphertext": ciphertext,
            "dui_key_id": key_id,
            **fields,
        }
        names = ", ".join(columns)
        marks = ", ".join(["%s"] * len(columns))
        self.sql.execute(f"INSERT INTO patients ({names}) VALUES ({marks})", list(columns.values()))
        return patient_id

    def add_doctor(self, full_name="Dra. Ana Gómez", specialty="Pediatría"):
        return self.sql.execute(
            "INSERT INTO doctors (clinic_id, full_name, specialty) VALUES (%s, %s, %s) RETURNING id::text",
            (self.id, full_name, specialty),
        ).fetchone()["id"]

    def add_appointment(self, patient_id, doctor_id, date, time="09:00", status="confirmed"):
        return self.sql.execute(
            "INSERT INTO appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time, status) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id::text",
            (self.id, patient_id, doctor_id, date, time, status),
        ).fetchone()["id"]

    def patients(self):
        return self.sql.execute(
            "SELECT * FROM patients WHERE clinic_id = %s ORDER BY phone", (self.id,)
        ).fetchall()

    def audit(self, action=None):
        return self.sql.execute(
            "SELECT * FROM audit_log WHERE clinic_id = %s AND (%s::text IS NULL OR action = %s) ORDER BY id",
            (self.id, action, action),
        ).fetchall()
