"""The OpenAPI description is true: every route is described, nothing else is, it is valid 3.1,
and the docs page built from it renders in a real browser."""

import copy
import os
import re

import pytest
from openapi_spec_validator import validate

from tests.chromium import Chromium
from tests.helpers import post_csv

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


# -- examples, headers and parameters ----------------------------------------------------------


def resolved(spec, item: dict) -> dict:
    while "$ref" in item:
        kind, name = item["$ref"].split("/")[-2:]
        item = spec["components"][kind][name]
    return item


def media_examples(media: dict) -> list:
    found = [e["value"] for e in media.get("examples", {}).values()]
    return found + ([media["example"]] if "example" in media else [])


def example_problems(spec) -> list[str]:
    """Every example in the description checked against the schema it illustrates (formats
    included: a uuid, a date-time); one line per invalid example."""
    from jsonschema import Draft202012Validator

    def check(where: str, schema: dict, value) -> list[str]:
        validator = Draft202012Validator(
            {**schema, "components": spec["components"]},
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        return [f"{where}: {e.message}" for e in validator.iter_errors(value)]

    problems = []
    for method, path, operation in operations(spec):
        where = f"{method.upper()} {path}"
        for parameter in map(lambda p: resolved(spec, p), operation.get("parameters", [])):
            for value in media_examples(parameter):
                problems += check(f"{where} {parameter['name']}", parameter["schema"], value)
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            for value in media_examples(media):
                problems += check(f"{where} body {media_type}", media["schema"], value)
        for code, response in operation["responses"].items():
            response = resolved(spec, response)
            for media_type, media in response.get("content", {}).items():
                for value in media_examples(media):
                    problems += check(f"{where} {code} {media_type}", media["schema"], value)
            for name, header in response.get("headers", {}).items():
                header = resolved(spec, header)
                for value in media_examples(header):
                    problems += check(f"{where} {code} {name}", header["schema"], value)
    return problems


def test_every_example_is_valid_against_its_schema(spec):
    assert example_problems(spec) == []


def test_an_invalid_example_is_caught(spec):
    broken = copy.deepcopy(spec)
    media = broken["paths"]["/api/patients"]["get"]["responses"]["200"]["content"]
    media["application/json"]["examples"]["search"]["value"]["patients"][0]["id"] = "not-an-id"
    broken["components"]["parameters"]["Page"]["example"] = 0
    assert example_problems(broken) == [
        "GET /api/audit page: 0 is less than the minimum of 1",
        "GET /api/patients page: 0 is less than the minimum of 1",
        "GET /api/patients 200 application/json: 'not-an-id' is not a 'uuid'",
    ]


def test_every_operation_has_request_and_response_examples(spec):
    """They feed the docs page's "Try it out" and schemathesis' examples phase. Every parameter,
    every request body and every response body has one (a PNG icon excepted)."""
    for method, path, operation in operations(spec):
        for parameter in map(lambda p: resolved(spec, p), operation.get("parameters", [])):
            assert media_examples(parameter), (method, path, parameter["name"])
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            assert media_examples(media), (method, path, media_type)
        for code, response in operation["responses"].items():
            for media_type, media in resolved(spec, response).get("content", {}).items():
                if media_type != "image/png":
                    assert media_examples(media), (method, path, code, media_type)


def test_every_response_describes_its_headers(spec):
    for method, path, operation in operations(spec):
        for code, response in operation["responses"].items():
            headers = resolved(spec, response).get("headers", {})
            assert headers.get("X-Request-ID") == {"$ref": "#/components/headers/XRequestID"}, (
                method,
                path,
                code,
            )
            if code == "503":
                assert "Retry-After" in headers, (method, path)
    assert spec["components"]["headers"]["XRequestID"]["required"] is True


def test_error_details_are_described_per_error(spec):
    schemas = spec["components"]["schemas"]
    union = [
        d.get("$ref", d.get("type")) for d in schemas["Error"]["properties"]["details"]["oneOf"]
    ]
    assert union == [
        "#/components/schemas/ValidationDetail",
        "#/components/schemas/RowProblems",
        "#/components/schemas/MissingColumns",
        "#/components/schemas/DuplicateColumns",
        "#/components/schemas/UnreadableLine",
        "null",
    ]
    for name, code in (
        ("UnauthorizedError", "UNAUTHORIZED"),
        ("ForbiddenError", "FORBIDDEN"),
        ("PlanRequiredError", "PLAN_UPGRADE_REQUIRED"),
        ("NotFoundError", "NOT_FOUND"),
        ("TooLargeError", "FILE_TOO_LARGE"),
        ("UnavailableError", "SERVICE_UNAVAILABLE"),
        ("InternalError", "INTERNAL_ERROR"),
    ):
        assert schemas[name]["properties"]["code"] == {"type": "string", "const": code}
        assert schemas[name]["properties"]["details"] == {"type": "null"}
        assert code in schemas["Error"]["properties"]["code"]["enum"]


def query_parameters(spec, name: str):
    """(path, schema) of every GET/POST operation with the query parameter `name`."""
    for method, path, operation in operations(spec):
        for parameter in map(lambda p: resolved(spec, p), operation.get("parameters", [])):
            if parameter["name"] == name and parameter["in"] == "query":
                yield method, path, parameter["schema"]


def call(client, clinic, method: str, path: str, query: str):
    if method == "post":  # the import: a one-patient file, checked only
        return post_csv(client, clinic, "Nombre,Telefono\nAna,7765-4321\n", query=f"?{query}")
    return client.get(f"{path}?{query}", headers=clinic.headers("admin"))


@pytest.mark.parametrize("name", ["page", "limit"])
def test_integer_bounds_are_the_codes(spec, client, clinic, name):
    """The description's minimum and maximum are exactly what the code takes: both bounds answer
    200, one past either is 400 naming the parameter."""
    described = list(query_parameters(spec, name))
    assert {path for _, path, _ in described} == {"/api/patients", "/api/audit"}
    for method, path, schema in described:
        low, high = schema["minimum"], schema["maximum"]
        for value in (low, high):
            assert call(client, clinic, method, path, f"{name}={value}").status_code == 200
        for value in (low - 1, high + 1):
            response = call(client, clinic, method, path, f"{name}={value}")
            assert response.status_code == 400, (path, value)
            assert response.json["details"]["field"] == name


@pytest.mark.parametrize("name", ["blocked", "dry_run"])
def test_booleans_are_the_codes(spec, client, clinic, name):
    """Described as booleans (what a generated client sends: `true`/`false`); the code takes
    those in any letter case (Python's requests sends `True`), as the descriptions say, and
    nothing else."""
    described = list(query_parameters(spec, name))
    assert described
    for method, path, schema in described:
        assert schema == {"type": "boolean"}
        for value in ("true", "false", "True", "FALSE"):
            assert call(client, clinic, method, path, f"{name}={value}").status_code == 200
        for value in ("1", "0", "yes", "no", "", "t"):
            response = call(client, clinic, method, path, f"{name}={value}")
            assert response.status_code == 400, (path, value)
            assert response.json["details"] == {"field": name, "reason": "must be true or false"}


def test_operation_ids_are_kept(spec):
    """Generated clients name their functions and types after them: none may be renamed."""
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids))
    assert set(ids) >= {
        "listPatients",
        "getPatient",
        "blockPatient",
        "exportPatients",
        "importPatients",
        "importTemplate",
        "listAudit",
        "health",
        "openapi",
        "docsPage",
        "docsPageSlash",
        "docsAsset",
        "whatsappHandshake",
        "whatsappInbound",
    }
