"""Every error is the contract's JSON: never HTML, never a stack trace or SQL."""

import pytest
from flask import Blueprint

from app import create_app
from patients.api.auth import require_role


def assert_error(response, status, code):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.json
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert "<html" not in response.get_data(as_text=True).lower()
    return body


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/nowhere"), 404, "NOT_FOUND")


def test_wrong_method_is_json_405(client, clinic):
    response = client.delete("/api/patients", headers=clinic.headers())
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


def test_bug_is_json_500_without_details(config):
    app = create_app(config)
    broken = Blueprint("broken", __name__)

    @broken.get("/api/broken")
    @require_role("admin", "staff")
    def explode():
        raise RuntimeError("SELECT secret FROM patients WHERE dui = '12345678-9'")

    app.register_blueprint(broken)
    try:
        import uuid

        from tests.helpers import make_token

        token = make_token(str(uuid.uuid4()), "staff")
        response = app.test_client().get(
            "/api/broken", headers={"Authorization": f"Bearer {token}"}
        )
        body = assert_error(response, 500, "INTERNAL_ERROR")
        text = response.get_data(as_text=True)
        assert "SELECT" not in text and "12345678" not in text and "Traceback" not in text
        assert body["details"] is None
    finally:
        app.extensions["pool"].close()


def test_route_without_role_refuses_to_start(config):
    app = create_app(config)
    app.extensions["pool"].close()
    from patients.api import check_every_api_route_is_guarded

    app.add_url_rule("/api/oops", "oops", lambda: "tenant data")
    with pytest.raises(RuntimeError, match="no @require_role"):
        check_every_api_route_is_guarded(app)


@pytest.mark.parametrize("path", ["/api/patients", "/api/audit"])
@pytest.mark.parametrize(
    "query, field",
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("page=%D9%A3", "page"),  # an Arabic-Indic three: int() would take it
        ("page=" + "9" * 40, "page"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("limit=%205", "limit"),
    ],
)
def test_bad_paging_is_400_naming_the_field(client, clinic, path, query, field):
    """Every paged list (patients, audit trail) reads page and limit the same way."""
    body = assert_error(
        client.get(f"{path}?{query}", headers=clinic.headers("admin")), 400, "VALIDATION_ERROR"
    )
    assert body["details"]["field"] == field
    assert field in body["message"]


@pytest.mark.parametrize("given", ["12345678-9", "123456789", "50377654321", "eyJx.eyJy.z"])
def test_a_request_id_shaped_like_patient_data_is_replaced(client, given):
    """Request ids are stored in audit rows and returned by /api/audit, where no scrubbing runs."""
    echoed = client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"]
    assert echoed != given and len(echoed) == 32


def test_request_id_is_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id"}).headers["X-Request-ID"]
    assert len(generated) == 32
