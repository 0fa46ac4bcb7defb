"""GET /api/patients/<id>: the full record in one round trip, 404s that reveal nothing, the DUI reveal."""

import datetime as dt
import logging
import uuid

import psycopg
import pytest

from tests.helpers import LIST_ITEM_FIELDS


def url(patient_id):
    return f"/api/patients/{patient_id}"


@pytest.fixture
def statements(monkeypatch):
    """Every statement the app sends to PostgreSQL while the test runs (the real database answers)."""
    sent = []
    real_execute = psycopg.Cursor.execute

    def execute(self, query, params=None, **kwargs):
        if str(query).strip():  # the pool's health check sends an empty statement
            sent.append(query)
        return real_execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return sent


def test_full_record_in_one_round_trip(client, clinic, statements):
    patient = clinic.add_patient(
        "Juan Pérez", "+50377654321", email="juan@example.com", notes="Alergia a la penicilina",
        dui="12345678-9", no_show_count=1,
    )  # fmt: skip
    ana = clinic.add_doctor("Dra. Ana Gómez", "Pediatría")
    luis = clinic.add_doctor("Dr. Luis Rivas", "Cardiología")
    # Inserted out of order: the answer is newest first, by date and then by time.
    a_old = clinic.add_appointment(patient, ana, "2026-01-10", "15:00", "completed")
    a_new_early = clinic.add_appointment(patient, luis, "2026-03-02", "08:30", "pending")
    a_mid = clinic.add_appointment(patient, ana, "2026-02-14", "10:00", "no_show")
    a_new_late = clinic.add_appointment(patient, ana, "2026-03-02", "16:45", "confirmed")

    statements.clear()
    response = client.get(url(patient), headers=clinic.headers("staff"))
    assert response.status_code == 200
    assert len(statements) == 1, statements

    body = response.json
    assert set(body) == LIST_ITEM_FIELDS | {"dui", "notes", "appointments"}
    assert body["id"] == patient
    assert body["full_name"] == "Juan Pérez"
    assert body["email"] == "juan@example.com"
    assert body["notes"] == "Alergia a la penicilina"
    assert body["no_show_count"] == 1
    assert body["dui"] is None
    assert [a["id"] for a in body["appointments"]] == [a_new_late, a_new_early, a_mid, a_old]
    assert body["appointments"][0] == {
        "id": a_new_late,
        "appointment_date": "2026-03-02",
        "start_time": "16:45:00",
        "status": "confirmed",
        "doctors": {"full_name": "Dra. Ana Gómez", "specialty": "Pediatría"},
    }
    assert body["appointments"][1]["doctors"] == {
        "full_name": "Dr. Luis Rivas",
        "specialty": "Cardiología",
    }


def test_record_without_appointments(client, clinic):
    patient = clinic.add_patient("Sin Citas", "+50370000001")
    body = client.get(url(patient), headers=clinic.headers()).json
    assert body["appointments"] == []
    assert body["notes"] is None and body["email"] is None and body["dui"] is None


def test_record_fields_match_the_list_item(client, clinic):
    patient = clinic.add_patient("Juan Pérez", "+50377654321", email="juan@example.com")
    (item,) = client.get("/api/patients", headers=clinic.headers()).json["patients"]
    record = client.get(url(patient), headers=clinic.headers()).json
    assert {k: record[k] for k in LIST_ITEM_FIELDS} == item


def test_other_clinics_appointments_and_doctors_never_join(client, make_clinic, sql):
    mine, theirs = make_clinic(), make_clinic()
    patient = mine.add_patient("Juan Pérez", "+50377654321")
    their_patient = theirs.add_patient("Otro", "+50377654321")
    theirs.add_appointment(their_patient, theirs.add_doctor(), "2026-01-01")
    assert client.get(url(patient), headers=mine.headers()).json["appointments"] == []


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_missing_malformed_and_foreign_ids_are_the_same_404(client, make_clinic, role):
    mine, theirs = make_clinic(), make_clinic()
    mine.add_patient("Mía", "+50370000001")
    foreign = theirs.add_patient("Ajena", "+50370000002", dui="123456789", notes="secreto")
    candidates = [
        foreign,
        foreign.upper(),
        str(uuid.uuid4()),
        "not-a-uuid",
        "123",
        "0" * 32,
        f"{{{foreign}}}",
        "%00",
        "' OR 1=1 --",
        "x" * 500,
    ]
    answers = []
    for candidate in candidates:
        response = client.get(url(candidate), headers=mine.headers(role))
        answers.append((response.status_code, response.get_data(as_text=True)))
    assert answers[0][0] == 404
    assert answers[0][1] == answers[2][1]  # foreign id == random id, byte for byte
    assert all(answer == answers[0] for answer in answers), answers
    assert "Ajena" not in answers[0][1] and "secreto" not in answers[0][1]
    assert theirs.audit() == [] and mine.audit() == []


def test_id_is_case_insensitive(client, clinic):
    patient = clinic.add_patient()
    assert client.get(url(patient.upper()), headers=clinic.headers()).json["id"] == patient


def test_staff_gets_null_dui_and_no_audit(client, clinic):
    patient = clinic.add_patient(dui="123456789")
    body = client.get(url(patient), headers=clinic.headers("staff")).json
    assert body["dui"] is None
    assert clinic.audit() == []


def test_admin_gets_clear_dui_and_an_audit_row(client, clinic, caplog, statements):
    patient = clinic.add_patient(dui="123456789")  # stored normalised
    before = dt.datetime.now(dt.UTC)
    caplog.set_level(logging.DEBUG)
    statements.clear()
    response = client.get(
        url(patient),
        headers={**clinic.headers("admin", sub="admin-7"), "X-Request-ID": "req-dui-1"},
    )
    # The record and its audit row: one statement (the INSERT is a CTE of the read), one transaction.
    assert len(statements) == 1, statements
    assert response.status_code == 200
    assert response.json["dui"] == "12345678-9"
    (row,) = clinic.audit()
    assert row["action"] == "dui.reveal"
    assert (row["actor_id"], row["actor_role"]) == ("admin-7", "admin")
    assert str(row["clinic_id"]) == clinic.id and str(row["patient_id"]) == patient
    assert row["request_id"] == "req-dui-1"
    assert before - dt.timedelta(seconds=5) <= row["created_at"] <= dt.datetime.now(dt.UTC)
    assert "12345678" not in str(row["details"])
    assert "12345678" not in caplog.text

    client.get(url(patient), headers=clinic.headers("admin", sub="admin-7"))
    assert len(clinic.audit("dui.reveal")) == 2  # every reveal, not just the first


def test_admin_on_a_patient_without_dui_writes_no_audit(client, clinic):
    patient = clinic.add_patient()
    assert client.get(url(patient), headers=clinic.headers("admin")).json["dui"] is None
    assert clinic.audit() == []


def test_dui_is_stored_encrypted(clinic, sql):
    patient = clinic.add_patient(dui="12345678-9")
    row = sql.execute(
        "SELECT dui_ciphertext, dui_key_id, row_to_json(p)::text AS everything "
        "FROM patients p WHERE clinic_id = %s AND id = %s",
        (clinic.id, patient),
    ).fetchone()
    assert row["dui_ciphertext"] and row["dui_key_id"]
    assert b"12345678" not in bytes(row["dui_ciphertext"])
    assert "12345678" not in row["everything"]


def test_record_needs_a_token(client, clinic):
    patient = clinic.add_patient()
    assert client.get(url(patient)).status_code == 401
