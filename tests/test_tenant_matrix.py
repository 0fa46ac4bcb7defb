"""Every endpoint and method, called with clinic B's token on clinic A's ids and data: B reads
nothing of A, changes nothing of A, and gets the same answer as for an id that does not exist.

The operations come from the OpenAPI description, so a new endpoint without a row here fails.
"""

import io
import re
import uuid

import pytest

from patients.api import docs

METHODS = ("get", "post", "put", "patch", "delete")
NOWHERE = "Nadie Inexistente Zqx"
STRANGER_PHONE = "+50379990000"


@pytest.fixture
def tenants(make_clinic):
    a, b = make_clinic(plan="pro"), make_clinic(plan="pro")
    doctor = a.add_doctor()
    a_patient = a.add_patient(
        "Ámbar Secreta", "+50377001122", dui="12345678-9", notes="solo A", email="a@example.com"
    )
    a.add_appointment(a_patient, doctor, "2026-03-04")
    b.add_patient("Bruno Propio", "+50377003344")
    return a, b, a_patient


def snapshot(sql, clinic):
    """Everything of clinic A that any endpoint could touch."""
    rows = {}
    for table in ("patients", "appointments", "audit_log"):
        rows[table] = sql.execute(
            f"SELECT * FROM {table} WHERE clinic_id = %s ORDER BY 1", (clinic.id,)
        ).fetchall()
    return rows


def csv_upload(name, phone):
    data = f"Nombre,Teléfono\r\n{name},{phone}\r\n".encode()
    return {"file": (io.BytesIO(data), "lista.csv")}


def answer(response):
    body = response.get_json(silent=True)
    if body is None:
        body = response.get_data()
    return response.status_code, body


def without_volatile(body):
    """Ids and timestamps of rows B itself created differ between two calls; the rest must not."""
    if isinstance(body, dict):
        return {k: without_volatile(v) for k, v in body.items() if k not in ("id", "created_at")}
    if isinstance(body, list):
        return [without_volatile(v) for v in body]
    return body


# For each described operation: (request with A's data, the same request with data nobody has).
# Each takes (client, B's admin headers, A's patient id, A's patient name, A's phone).
def record(client, h, target, name, phone):
    return client.get(f"/api/patients/{target}", headers=h)


def block(client, h, target, name, phone):
    return client.patch(f"/api/patients/{target}/block", json={"blocked": True}, headers=h)


def listing(client, h, target, name, phone):
    by_phone = client.get("/api/patients", query_string={"search": phone[-8:]}, headers=h)
    assert by_phone.json["total"] == 0
    return client.get("/api/patients", query_string={"search": name}, headers=h)


def export(client, h, target, name, phone):
    return client.get("/api/patients/export", query_string={"search": name}, headers=h)


def import_(client, h, target, name, phone):
    # A's phone in B's file: B gets a patient of its own; A's row is not touched.
    return client.post(
        "/api/patients/import",
        data=csv_upload("Importada Por B", phone),
        headers=h,
        content_type="multipart/form-data",
    )


def audit(client, h, target, name, phone):
    return client.get("/api/audit", query_string={"patient_id": target}, headers=h)


OPERATIONS = {
    ("get", "/api/patients/{patient_id}"): record,
    ("patch", "/api/patients/{patient_id}/block"): block,
    ("get", "/api/patients"): listing,
    ("get", "/api/patients/export"): export,
    ("post", "/api/patients/import"): import_,
    ("get", "/api/audit"): audit,
}
# Not tenant data: the same for everyone (no token, or no clinic in the request at all).
NOT_TENANT_DATA = {
    ("get", "/api/openapi.json"),
    ("get", "/api/docs"),
    ("get", "/api/docs/"),
    ("get", "/api/docs/{name}"),
    ("get", "/api/patients/import/template"),
    ("get", "/healthz"),
    ("get", "/webhooks/whatsapp"),  # authenticated by Meta's secrets, not by a clinic token
    ("post", "/webhooks/whatsapp"),
}


def described():
    spec = docs.spec()
    return {(m, path) for path, item in spec["paths"].items() for m in item if m in METHODS}


def test_every_operation_is_in_the_matrix():
    assert described() == set(OPERATIONS) | NOT_TENANT_DATA


@pytest.mark.parametrize("operation", sorted(OPERATIONS), ids=lambda o: f"{o[0]} {o[1]}")
@pytest.mark.parametrize("role", ["admin", "staff"])
def test_other_clinic_reads_and_changes_nothing(client, sql, tenants, operation, role):
    a, b, a_patient = tenants
    call = OPERATIONS[operation]
    headers = b.headers(role)
    before = snapshot(sql, a)

    theirs = call(client, headers, a_patient, "Ámbar Secreta", "+50377001122")
    body = theirs.get_data(as_text=True)
    for secret in (
        "Ámbar",
        "Secreta",
        "77001122",
        "12345678",
        "solo A",
        "a@example.com",
        a_patient,
    ):
        if operation == ("post", "/api/patients/import") and secret == "77001122":
            continue  # B's own new patient carries the phone B sent
        assert secret not in body, (operation, secret)
    assert snapshot(sql, a) == before, "clinic A changed"

    nobody = call(client, headers, str(uuid.uuid4()), NOWHERE, STRANGER_PHONE)
    if operation == ("post", "/api/patients/import"):
        # B's second file names another new phone: the same answer as A's phone got.
        assert answer(theirs) == answer(nobody)
        assert theirs.json["created"] == 1 and theirs.json["updated"] == 0
    else:
        assert without_volatile(answer(theirs)) == without_volatile(answer(nobody))
    assert snapshot(sql, a) == before


@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_patient_paths(client, sql, tenants, method):
    """Undescribed methods too (a 405 must not differ between A's id and a random one)."""
    a, b, a_patient = tenants
    before = snapshot(sql, a)
    for template in ("/api/patients/{}", "/api/patients/{}/block"):
        responses = [
            client.open(template.format(target), method=method.upper(), headers=b.headers("admin"))
            for target in (a_patient, str(uuid.uuid4()))
        ]
        assert answer(responses[0]) == answer(responses[1]), (method, template)
        assert responses[0].status_code in (404, 405, 400), (method, template)
    assert snapshot(sql, a) == before


def test_the_matrix_can_see_a_leak(client, tenants):
    """A's own token does see A's patient: the assertions above are not vacuous."""
    a, _b, a_patient = tenants
    mine = client.get(f"/api/patients/{a_patient}", headers=a.headers("admin"))
    assert mine.status_code == 200 and mine.json["dui"] == "12345678-9"
    listed = client.get("/api/patients", query_string={"search": "Ámbar"}, headers=a.headers())
    assert listed.json["total"] == 1
    assert re.search(
        "Ámbar", client.get("/api/patients/export", headers=a.headers()).get_data(as_text=True)
    )
