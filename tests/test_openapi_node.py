"""The served description as the Node tools of the dashboard teams read it (pinned in
tests/typescript/package-lock.json, installed here with `npm ci`):

- Redocly CLI lints it with its recommended rules: no error, no warning.
- openapi-typescript generates types from it; tests/typescript/usage.ts (openapi-fetch making every
  call the README shows and reading every kind of error) passes `tsc --strict` and, compiled, runs
  against a live gunicorn; tests/typescript/wrong.ts, deliberately wrong, is rejected line by line.

Skipped where there is no `node` (`.ci/run` installs Debian's nodejs and npm where it is missing).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import make_token

PROJECT = Path(__file__).resolve().parent / "typescript"
NODE_MODULES = PROJECT / "node_modules"
BIN = NODE_MODULES / ".bin"
# No tool phones home: Redocly's usage telemetry and update check, npm's update notice.
QUIET = {
    "REDOCLY_TELEMETRY": "off",
    "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    "NO_UPDATE_NOTIFIER": "1",
    "npm_config_update_notifier": "false",
}
MARKED = re.compile(r"// rejected: (TS\d+)")
TSC_ERROR = re.compile(r"^(\S+)\((\d+),\d+\): error (TS\d+):", re.MULTILINE)


def run(command, *, cwd=PROJECT, env=None, timeout=120):
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**os.environ, **QUIET, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def node_tools():
    """The pinned packages, installed once (again only when package-lock.json changes)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("needs node and npm (.ci/run installs Debian's nodejs and npm)")
    lock = hashlib.sha256((PROJECT / "package-lock.json").read_bytes()).hexdigest()
    stamp = NODE_MODULES / ".installed-lock"
    if not (stamp.exists() and stamp.read_text() == lock):
        # --ignore-scripts: nothing in the tree needs an install script (core-js's only prints).
        installed = run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], timeout=600)
        assert installed.returncode == 0, installed.stderr[-3000:]
        stamp.write_text(lock)
    return BIN


@pytest.fixture(scope="module")
def served(app, tmp_path_factory):
    """/api/openapi.json as the app serves it, in a file the tools read."""
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    path = tmp_path_factory.mktemp("description") / "openapi.json"
    path.write_bytes(response.data)
    return path


def lint(node_tools, path):
    result = run(
        [
            node_tools / "redocly",
            "lint",
            path,
            "--config",
            PROJECT / "redocly.yaml",
            "--format",
            "json",
        ]
    )
    report = json.loads(result.stdout)
    problems = [(p["ruleId"], p["location"][0]["pointer"]) for p in report["problems"]]
    return result.returncode, report["totals"], problems


@pytest.fixture(scope="module")
def served_lint(node_tools, served):
    """(exit code, totals, problems) of the served description, linted once for the module."""
    return lint(node_tools, served)


def test_redocly_recommended_rules_pass(served_lint):
    code, totals, problems = served_lint
    assert problems == []
    assert totals == {"errors": 0, "warnings": 0, "ignored": 0}
    assert code == 0


def test_redocly_lint_can_fail(node_tools, served, served_lint, tmp_path):
    """The lint above is not vacuous: the license dropped, an operation with no 4xx answer."""
    broken = json.loads(served.read_text())
    del broken["info"]["license"]
    del broken["paths"]["/healthz"]["get"]["responses"]["400"]
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(broken))
    _, baseline, before = served_lint
    code, totals, problems = lint(node_tools, path)
    assert sorted(set(problems) - set(before)) == [
        ("info-license", "#/info"),
        ("operation-4xx-response", "#/paths/~1healthz/get/responses"),
    ]
    assert totals["warnings"] == baseline["warnings"] + 2
    assert code == 0  # warnings alone do not fail Redocly's exit code: the totals above do


def test_only_the_docs_page_has_a_trailing_slash(served):
    """redocly.yaml turns no-path-trailing-slash off for /api/docs/, a route served on purpose
    (a browser's address bar adds the slash); any other such path is still refused."""
    paths = json.loads(served.read_text())["paths"]
    assert [path for path in paths if path.endswith("/")] == ["/api/docs/"]


# (a request's path, the described path it is)
SERVICE_ROUTES = [
    ("/healthz", "/healthz"),
    ("/api/openapi.json", "/api/openapi.json"),
    ("/api/docs", "/api/docs"),
    ("/api/docs/", "/api/docs/"),
    ("/api/docs/index.css", "/api/docs/{name}"),
]


@pytest.mark.parametrize(("path", "described"), SERVICE_ROUTES)
def test_service_routes_answer_the_described_400(client, served, path, described):
    """The 4xx Redocly asks these routes to describe is the one they give: a repeated parameter
    or a query string that is not UTF-8 (refused by the middleware before any route runs)."""
    repeated = client.get(f"{path}?x=1&x=2")
    assert repeated.status_code == 400
    assert repeated.json == {
        "code": "VALIDATION_ERROR",
        "message": "Invalid x: must be given once",
        "details": {"field": "x", "reason": "must be given once"},
    }
    not_utf8 = client.get(f"{path}?q=%ff")
    assert not_utf8.status_code == 400
    assert not_utf8.json["details"] == {"field": "query", "reason": "is not valid UTF-8"}
    responses = json.loads(served.read_text())["paths"][described]["get"]["responses"]
    assert responses["400"]["$ref"] == "#/components/responses/BadRequest"


@pytest.fixture(scope="module")
def typescript_project(node_tools, served, tmp_path_factory):
    """The generated types beside copies of usage.ts and wrong.ts (node_modules linked in)."""
    folder = tmp_path_factory.mktemp("typescript")
    for name in ("package.json", "tsconfig.json", "tsconfig.wrong.json", "usage.ts", "wrong.ts"):
        shutil.copy(PROJECT / name, folder / name)
    (folder / "node_modules").symlink_to(NODE_MODULES)
    generated = run(["node", PROJECT / "generate.mjs", served, folder / "schema.d.ts"])
    assert generated.returncode == 0, generated.stderr
    return folder


def test_generated_types_are_named_after_the_operation_ids(typescript_project, served):
    """The operationIds are the contract's generated names: each one is an `operations` entry."""
    described = json.loads(served.read_text())["paths"]
    operation_ids = {
        operation["operationId"]
        for item in described.values()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch"}
    }
    schema = (typescript_project / "schema.d.ts").read_text()
    generated = set(re.findall(r'operations\["(\w+)"\]', schema))
    assert generated == operation_ids
    assert len(operation_ids) == 14


def test_typed_usage_compiles_under_strict(node_tools, typescript_project):
    """usage.ts type-checks with `strict` (tsconfig.json), and only then is emitted to out/."""
    result = run([node_tools / "tsc", "-p", typescript_project, "--strict"], cwd=typescript_project)
    assert result.stdout == "" and result.returncode == 0, result.stdout
    assert (typescript_project / "out" / "usage.js").exists()


def test_wrong_usage_is_rejected(node_tools, typescript_project):
    """Each line of wrong.ts marked `// rejected: TSxxxx` is refused with that error, and nothing
    else is: the check can fail, and fails where a dashboard would go wrong."""
    source = (typescript_project / "wrong.ts").read_text().splitlines()
    marked = {
        (number, match.group(1))
        for number, line in enumerate(source, start=1)
        if (match := MARKED.search(line))
    }
    assert len(marked) == 7
    result = run(
        [
            node_tools / "tsc",
            "-p",
            typescript_project / "tsconfig.wrong.json",
            "--noEmit",
            "--strict",
        ],
        cwd=typescript_project,
    )
    found = {(int(line), code) for name, line, code in TSC_ERROR.findall(result.stdout)}
    assert {name for name, _, _ in TSC_ERROR.findall(result.stdout)} == {"wrong.ts"}
    assert found == marked, result.stdout
    assert result.returncode == 2


@pytest.mark.slow
def test_typed_usage_runs_against_the_service(
    typescript_project, node_tools, live_server, make_clinic
):
    """The compiled usage.ts, run by node against a live gunicorn: every call answers what the
    README says, and every error body is read through the described Error."""
    clinic = make_clinic()
    patient_id = clinic.add_patient(
        "Juan Pérez", "+50377654321", dui="12345678-9", created_at="2026-03-01T03:00Z"
    )
    doctor = clinic.add_doctor()
    clinic.add_appointment(patient_id, doctor, "2026-05-20", "09:30")
    compiled = typescript_project / "out" / "usage.js"
    if not compiled.exists():
        built = run([node_tools / "tsc", "-p", typescript_project], cwd=typescript_project)
        assert built.returncode == 0, built.stdout
    result = run(
        ["node", compiled],
        cwd=typescript_project,
        env={
            "API_BASE": live_server.url,
            "STAFF_TOKEN": make_token(clinic.id, "staff", sub="ana@clinic"),
            "ADMIN_TOKEN": make_token(clinic.id, "admin", sub="admin@clinic"),
            "PATIENT_ID": patient_id,
            "PATIENTS_CSV": "Nombres,Apellidos,Celular,Correo,Notas\n"
            "Ana,López,7123-4567,ana@example.com,hola\n"
            "Juan,Pérez,7765-4321,,\n",
        },
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    columns = {
        "name": ["Nombres", "Apellidos"],
        "phone": ["Celular"],
        "email": ["Correo"],
        "dui": [],
        "ignored": ["Notas"],
    }
    bad_limit = {
        "code": "VALIDATION_ERROR",
        "message": "Invalid limit: must be from 1 to 200",
        "field": "limit",
        "reason": "must be from 1 to 200",
    }
    assert lines == [
        {"call": "health", "status": "ok"},
        {"call": "list", "status": 200, "total": 1, "names": ["Juan Pérez"]},
        {"call": "search", "total": 1, "phones": ["+50377654321"]},
        {
            "call": "record",
            "dui": "12345678-9",
            "notes": None,
            "appointments": [["2026-05-20", "09:30:00", "confirmed", "Dra. Ana Gómez"]],
        },
        {"call": "staff record", "dui": None},
        {"call": "block", "is_blocked": True},
        {"call": "blocked", "ids": [patient_id]},
        {
            "call": "audit",
            "total": 1,
            "entries": [["patient.block", "ana@clinic", "staff", patient_id]],
        },
        {"call": "unblock", "is_blocked": False},
        {"call": "template", "lines": ["Nombre,Teléfono,Email,DUI"]},
        {
            "call": "import",
            "dry_run_created": 1,
            "created": 1,
            "updated": 0,
            "unchanged": 1,
            "columns": columns,
        },
        {
            "call": "export",
            "type": "text/csv; charset=utf-8",
            "lines": [
                "Nombre;Teléfono;Email;Registrado",
                '"Juan Pérez";+503 7765 4321;;2026-02-28',
            ],
        },
        {"call": "bad limit", "status": 400, **bad_limit},
        {
            "call": "bad rows",
            "status": 400,
            "code": "INVALID_ROWS",
            "message": "1 of 1 rows cannot be imported (1 problems); nothing was written. "
            "Fix them and upload the file again.",
            "rows": [[2, "phone", "not a valid phone number"]],
        },
        {
            "call": "no phone column",
            "status": 400,
            "code": "INVALID_CSV",
            "message": "The header has no phone column. Expected a header line such as "
            "Nombre,Teléfono,Email,DUI; found: Nombre, Notas.",
            "missing": ["phone"],
        },
        {
            "call": "no token",
            "status": 401,
            "code": "UNAUTHORIZED",
            "message": "A valid bearer token is required.",
            "details": None,
        },
        # usage.ts's typed fixture is the body the service really sent.
        {"call": "sample", **bad_limit},
    ]
    assert [p["phone"] for p in clinic.patients()] == ["+50371234567", "+50377654321"]
