"""The OpenAPI description is true: every route is described, nothing else is, it is valid 3.1,
and the docs page built from it renders in a real browser."""

import os
import re

import pytest
from openapi_spec_validator import validate

from tests.chromium import Chromium

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
CHROMIUM = "/usr/bin/chromium"


def app_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":  # Flask's default static folder; the app has none
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method.lower(), path))
    return routes


def described_routes(spec) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


@pytest.fixture(scope="module")
def spec(app):
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    return response.json


def test_description_is_public_json(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json["openapi"].startswith("3.1")


def test_every_route_is_described_and_nothing_else(app, spec):
    routes, described = app_routes(app), described_routes(spec)
    assert routes - described == set(), "routes without a description"
    assert described - routes == set(), "descriptions of routes that do not exist"


def test_route_check_catches_a_missing_description(config, spec):
    """The comparison above is not vacuous: a new route makes it fail."""
    from app import create_app

    app = create_app(config)
    app.extensions["pool"].close()
    app.add_url_rule("/api/patients/<patient_id>/merge", "merge", methods=["POST"])
    assert app_routes(app) - described_routes(spec) == {
        ("post", "/api/patients/{patient_id}/merge")
    }


def test_description_is_valid_openapi_3_1(spec):
    validate(spec)  # raises with the first error found


def test_invalid_description_is_refused(spec):
    broken = {**spec, "paths": {"/api/x": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(Exception, match="description"):
        validate(broken)


def test_every_operation_documents_its_errors(spec):
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        assert any(code.startswith("2") for code in responses), (method, path)
        public = operation.get("security") == []
        if path.startswith("/api/") and not public:
            assert "401" in responses, (method, path)
        for code, response in responses.items():
            if code[0] in "45":
                assert "$ref" in response or "application/json" in response["content"], (
                    method,
                    path,
                    code,
                )
        declared = {p.get("name") for p in operation.get("parameters", [])} | {
            spec["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"]
            for p in operation.get("parameters", [])
            if "$ref" in p
        }
        for name in re.findall(r"{(\w+)}", path):
            assert name in declared, (method, path, name)


def test_bearer_scheme(spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]


def test_error_schema_is_the_contract(spec):
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message", "details"}
    assert "SERVICE_UNAVAILABLE" in error["properties"]["code"]["enum"]


def test_docs_page_uses_only_our_own_assets(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html), "the docs page loads from outside"
    assets = re.findall(r"(?:src|href)=\"(/api/docs/[^\"]+)\"", html)
    assert len(assets) == 5
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.data) > 0
    assert 'url: "/api/openapi.json"' in html
    assert client.get("/api/docs/../../app.py").status_code == 404
    # With the slash, the same page (answered, not redirected) with the same absolute URLs.
    slashed = client.get("/api/docs/")
    assert slashed.status_code == 200
    assert slashed.get_data(as_text=True) == html
    assert client.get("/api/docs/oauth2-redirect.html").status_code == 404


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")
@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/"])
def test_docs_page_renders_in_chromium(live_server, spec, path):
    """Waits for what the page's scripts draw (one block per operation), not for a fixed time: a
    first snapshot may show only Swagger UI's spinner."""
    operation_count = sum(1 for _ in operations(spec))
    with Chromium(CHROMIUM) as browser:
        browser.open(f"{live_server.url}{path}")
        drawn = browser.wait_for(
            f"document.querySelectorAll('.opblock').length >= {operation_count}"
            " && document.querySelectorAll('.opblock').length",
            timeout=30,
        )
        assert drawn == operation_count, browser.evaluate("document.body.innerText")[:2000]
        text = browser.evaluate("document.body.innerText")
        assert "Patients API" in text
        assert "/api/patients/export" in text
        assert "Failed to load API definition" not in text
        errors = browser.evaluate(
            "performance.getEntriesByType('resource')"
            ".filter(e => e.responseStatus && e.responseStatus >= 400).map(e => e.name)"
        )
        assert errors == []
        shot = browser.screenshot()
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000  # a drawn page, not a blank one
