"""The OpenAPI description is true: every route is described, nothing else is, it is valid 3.1,
and the docs page built from it renders in a real browser."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest
from openapi_spec_validator import validate

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
    for asset in re.findall(r"(?:src|href)=\"(docs/[^\"]+)\"", html):
        served = client.get(f"/api/{asset}")
        assert served.status_code == 200, asset
        assert len(served.data) > 0
    assert client.get("/api/docs/../../app.py").status_code == 404
    assert client.get("/api/docs/oauth2-redirect.html").status_code == 404


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")
def test_docs_page_renders_in_chromium(live_server):
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{live_server.url}/api/docs",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    dom = result.stdout
    # Swagger UI fetched the description and drew one block per operation.
    assert "swagger-ui" in dom, result.stderr[-2000:]
    assert "Patients API" in dom
    assert dom.count('class="opblock ') >= 5, dom[-2000:]
    assert "/api/patients/export" in dom
    assert "Failed to load API definition" not in dom
