"""Response headers that keep patient data out of caches, and logs that never carry a DUI, a
token or a full phone number (read from a live gunicorn's real output)."""

import json
import time
import uuid

import pytest

DUI = "04567891-2"
PHONE = "+50377651234"


def test_patient_data_is_never_cached(client, clinic):
    patient = clinic.add_patient("Cache Nunca", PHONE, dui=DUI)
    for path, role, status in [
        ("/api/patients", "staff", 200),
        ("/api/patients?search=cache", "staff", 200),
        (f"/api/patients/{patient}", "admin", 200),
        ("/api/patients/export", "staff", 200),
        ("/api/audit", "admin", 200),
        (f"/api/patients/{uuid.uuid4()}", "staff", 404),
        ("/api/patients?page=0", "staff", 400),
        ("/api/patients/import/template", "staff", 200),
    ]:
        response = client.get(path, headers=clinic.headers(role))
        response.get_data()  # a streamed export holds its connection until it is read
        assert response.status_code == status, path
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    blocked = client.patch(
        f"/api/patients/{patient}/block", json={"blocked": True}, headers=clinic.headers()
    )
    assert blocked.status_code == 200
    assert blocked.headers["Cache-Control"] == "no-store"


def test_unauthenticated_and_public_answers_are_not_cached_either(client):
    for path in ("/api/patients", "/healthz", "/api/openapi.json", "/api/docs", "/nowhere"):
        response = client.get(path)
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path


def test_docs_assets_may_be_cached(client):
    response = client.get("/api/docs/swagger-ui-bundle.js")
    assert response.status_code == 200
    assert "no-store" not in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def log_lines(server, marker):
    """The JSON lines the server wrote after `marker` was logged (the marker is a request id)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = server.log()
        if marker in text:
            break
        time.sleep(0.05)
    text = server.log()
    return [line for line in text.splitlines() if line.startswith("{")], text


@pytest.mark.slow
def test_logs_carry_no_dui_token_or_phone(http_server, make_clinic):
    clinic = make_clinic()
    patient = clinic.add_patient("Log Limpio", PHONE, dui=DUI)
    headers = clinic.headers("admin")
    token = headers["Authorization"].split()[1]
    marker = uuid.uuid4().hex

    requests = [
        ("GET", f"/api/patients?search={DUI}"),
        ("GET", f"/api/patients?search={PHONE.replace('+', '%2B')}"),
        ("GET", "/api/patients?search=7765-1234"),
        ("GET", f"/api/patients?search={token}"),
        ("GET", f"/api/patients/{DUI}"),
        ("GET", f"/api/patients/{PHONE}"),
        ("GET", f"/api/patients/{token}"),
        ("GET", f"/api/patients/{patient}"),  # an admin: the DUI is revealed (and audited)
        ("GET", f"/api/patients/export?search={DUI}"),
        ("GET", f"/api/patients?page={DUI}"),  # echoed in a validation error's details?
    ]
    for method, path in requests:
        status, _, _ = http_server.request(
            method, path, headers={**headers, "X-Request-ID": marker}
        )
        assert status < 500, path
    # A request id chosen by the caller is logged too.
    http_server.request("GET", "/healthz", headers={"X-Request-ID": DUI})
    # A bad token carrying the data, too.
    http_server.request("GET", "/api/patients", headers={"Authorization": f"Bearer {token}x{DUI}"})
    http_server.request("GET", "/healthz", headers={"X-Request-ID": marker + "-end"})

    lines, text = log_lines(http_server, marker + "-end")
    ours = [entry for entry in map(json.loads, lines) if entry.get("request_id") == marker]
    assert len(ours) >= len(requests), "the access log lines are there, with the request id"
    for secret in (DUI, DUI.replace("-", ""), PHONE, PHONE[1:], "77651234", "7765-1234", token):
        assert secret not in text, f"{secret[:12]}… is in the logs"
