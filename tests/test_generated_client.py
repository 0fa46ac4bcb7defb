"""A Python client generated from the served description calls every operation of a live gunicorn,
and every answer, errors included, parses into the model the description names.

The client is made as an operator team makes it: openapi-python-client (pinned in
requirements-dev.txt) reads `GET /api/openapi.json` from the running server, with
tests/openapi-python-client.yaml, and any generation warning fails (a warning is a response or a
model the client silently drops). Generated once per session into a temporary folder (about a
second). Then each operation is called through it, the import with LibreOffice's CSVs from
tests/fixtures/spreadsheets, and each answer must be parsed (not None), of the right model class,
with its fields read. The README's curl examples are each made through the client too: a README
request the client never made fails the last test.
"""

import hashlib
import hmac
import importlib
import io
import json
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.conftest import Clinic
from tests.live import LiveServer, report

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIG = HERE / "openapi-python-client.yaml"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
SPREADSHEETS = HERE / "fixtures" / "spreadsheets"
PACKAGE = "patients_api_client"
VERIFY_TOKEN = "verify-" + "v" * 24
APP_SECRET = "secret-" + "s" * 24


# -- the server, the clinic, the client -------------------------------------------------------


@pytest.fixture(scope="module")
def server(config):
    env = {"WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN, "WHATSAPP_APP_SECRET": APP_SECRET}
    with LiveServer(config, workers=1, threads=4, env=env) as live:
        yield live


def generate(source: list[str], out: Path) -> subprocess.CompletedProcess:
    """openapi-python-client as an operator runs it; `source` is `--url …` or `--path …`."""
    command = [str(GENERATOR), "generate", *source, "--config", str(CONFIG), "--meta", "none"]
    command += ["--output-path", str(out), "--fail-on-warning"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def api(server, tmp_path_factory, request):
    """The generated package, imported. Fails on any warning the generator prints."""
    out = tmp_path_factory.mktemp("generated") / PACKAGE
    started = time.monotonic()
    done = generate(["--url", f"{server.url}/api/openapi.json"], out)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not re.search(r"warning|error|skipping", output, re.IGNORECASE), output
    report(request, f"openapi-python-client: generated in {time.monotonic() - started:.1f} s")
    sys.path.insert(0, str(out.parent))
    try:
        package = importlib.import_module(PACKAGE)
        modules = {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in ("models", "types", "errors")
        }
    finally:
        sys.path.remove(str(out.parent))
    return Generated(package, modules)


def test_a_generation_warning_fails(server, tmp_path):
    """Not vacuous: the description as it was (error details an untyped object|array|null
    union) makes the generator drop the Error model with warnings, and that run fails."""
    spec = httpx.get(f"{server.url}/api/openapi.json").json()
    spec["components"]["schemas"]["Error"]["properties"]["details"] = {
        "type": ["object", "array", "null"]
    }
    (tmp_path / "openapi.json").write_text(json.dumps(spec))
    done = generate(["--path", str(tmp_path / "openapi.json")], tmp_path / PACKAGE)
    assert done.returncode != 0
    assert "Invalid property in union" in done.stdout + done.stderr


class Generated:
    def __init__(self, package, modules):
        self.package = package
        self.models = modules["models"]
        self.types = modules["types"]
        self.errors = modules["errors"]

    def op(self, tag: str, name: str):
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")


@pytest.fixture(scope="module")
def clinic(sql, app):
    """What the README's examples look for: Juan Pérez with a DUI and appointments, Rosa blocked."""
    clinic = Clinic(sql, app.extensions["dui_keys"])
    doctor = clinic.add_doctor()
    juan = clinic.add_patient("Juan Pérez", "+50377654321", dui="12345678-9", email="juan@x.com")
    clinic.add_appointment(juan, doctor, "2026-01-02")
    clinic.add_appointment(juan, None, "2026-01-09", status="no_show")
    clinic.add_patient("Rosa Quintanilla Menjívar", "+50370001234", is_blocked=True)
    clinic.juan = juan
    return clinic


@pytest.fixture(scope="module")
def basic(sql, app):
    return Clinic(sql, app.extensions["dui_keys"], plan="basic")


class Recorder:
    """Every request the generated clients sent: method, path, query, Accept-Language."""

    def __init__(self):
        self.sent = []

    def __call__(self, req: httpx.Request) -> None:
        self.sent.append(
            (
                req.method,
                req.url.path,
                dict(parse_qsl(req.url.query.decode(), keep_blank_values=True)),
                req.headers.get("Accept-Language"),
            )
        )


@pytest.fixture(scope="module")
def sent():
    return Recorder()


@pytest.fixture(scope="module")
def make_client(api, server, sent):
    def make(clinic=None, role="staff", language=None):
        headers = {"Accept-Language": language} if language else {}
        hooks = {"event_hooks": {"request": [sent]}}
        common = dict(
            base_url=server.url, headers=headers, httpx_args=hooks, timeout=httpx.Timeout(20)
        )
        if clinic is None:
            return api.package.Client(raise_on_unexpected_status=True, **common)
        token = clinic.headers(role)["Authorization"].removeprefix("Bearer ")
        return api.package.AuthenticatedClient(
            token=token, raise_on_unexpected_status=True, **common
        )

    return make


def parsed(response, status: int, model):
    """The response's status and its parsed body, of the described model (a class or `str`)."""
    assert response.status_code == status, response.content[:500]
    body = response.parsed
    assert body is not None, response.content[:500]
    assert type(body) is model, (type(body), response.content[:500])
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", response.headers["X-Request-ID"])
    return body


NOTHING = type(None)


def error(api, response, status: int, model: str, code: str, details=NOTHING):
    """An error parsed into its model: the code, a message, details of the described shape."""
    body = parsed(response, status, getattr(api.models, model))
    assert str(getattr(body.code, "value", body.code)) == code
    assert body.message
    assert isinstance(body.details, details), body.details
    return body


# -- patients ---------------------------------------------------------------------------------


def test_list_patients(api, make_client, clinic, basic):
    op = api.op("patients", "list_patients")
    staff = make_client(clinic)
    page = parsed(
        op.sync_detailed(client=staff, search="perez", limit=3), 200, api.models.PatientPage
    )
    assert [p.full_name for p in page.patients] == ["Juan Pérez"]
    assert (page.total, page.page, page.limit) == (1, 1, 3)
    juan = page.patients[0]
    assert type(juan) is api.models.PatientListItem
    assert (juan.phone, juan.email, juan.is_blocked) == ("+50377654321", "juan@x.com", False)
    assert str(juan.id) == clinic.juan and juan.created_at.tzinfo is not None
    page = parsed(
        op.sync_detailed(client=staff, search="perez", page=1, limit=20),
        200,
        api.models.PatientPage,
    )
    assert page.total == 1
    page = parsed(op.sync_detailed(client=staff, search="7765-4321"), 200, api.models.PatientPage)
    assert [p.full_name for p in page.patients] == ["Juan Pérez"]
    page = parsed(op.sync_detailed(client=staff, blocked=True), 200, api.models.PatientPage)
    assert [p.full_name for p in page.patients] == ["Rosa Quintanilla Menjívar"]
    page = parsed(
        op.sync_detailed(client=make_client(clinic, "admin")), 200, api.models.PatientPage
    )
    assert page.total == 2

    bad = error(
        api,
        op.sync_detailed(client=staff, limit=201),
        400,
        "ValidationError",
        "VALIDATION_ERROR",
        api.models.ValidationDetail,
    )
    assert bad.details.field == "limit" and bad.details.reason == "must be from 1 to 200"
    error(api, op.sync_detailed(client=make_client()), 401, "UnauthorizedError", "UNAUTHORIZED")


def test_get_patient(api, make_client, clinic):
    op = api.op("patients", "get_patient")
    record = parsed(
        op.sync_detailed(uuid.UUID(clinic.juan), client=make_client(clinic, "admin")),
        200,
        api.models.PatientRecord,
    )
    assert (record.full_name, record.dui, record.notes) == ("Juan Pérez", "12345678-9", None)
    assert [type(a) for a in record.appointments] == [api.models.Appointment] * 2
    latest, first = record.appointments
    assert (str(latest.appointment_date), latest.start_time, latest.doctors) == (
        "2026-01-09",
        "09:00:00",
        None,
    )
    assert first.status.value == "confirmed"
    assert first.doctors.full_name == "Dra. Ana Gómez" and first.doctors.specialty == "Pediatría"
    record = parsed(
        op.sync_detailed(uuid.UUID(clinic.juan), client=make_client(clinic)),
        200,
        api.models.PatientRecord,
    )
    assert record.dui is None
    error(
        api,
        op.sync_detailed(uuid.uuid4(), client=make_client(clinic)),
        404,
        "NotFoundError",
        "NOT_FOUND",
    )
    error(
        api,
        op.sync_detailed(uuid.uuid4(), client=make_client()),
        401,
        "UnauthorizedError",
        "UNAUTHORIZED",
    )


def test_block_patient(api, make_client, clinic):
    op = api.op("patients", "block_patient")
    Body = api.models.BlockPatientBody
    staff = make_client(clinic)
    juan = uuid.UUID(clinic.juan)
    item = parsed(
        op.sync_detailed(juan, client=staff, body=Body(blocked=True, reason="mensajes ofensivos")),
        200,
        api.models.PatientListItem,
    )
    assert item.is_blocked is True and item.full_name == "Juan Pérez"
    item = parsed(
        op.sync_detailed(juan, client=staff, body=Body(blocked=False)),
        200,
        api.models.PatientListItem,
    )
    assert item.is_blocked is False
    bad = error(
        api,
        op.sync_detailed(juan, client=staff, body=Body(blocked=True, reason="x" * 501)),
        400,
        "ValidationError",
        "VALIDATION_ERROR",
        api.models.ValidationDetail,
    )
    assert bad.details.field == "reason"
    error(
        api,
        op.sync_detailed(uuid.uuid4(), client=staff, body=Body(blocked=True)),
        404,
        "NotFoundError",
        "NOT_FOUND",
    )


# -- csv --------------------------------------------------------------------------------------


def test_export(api, make_client, clinic, basic):
    op = api.op("csv", "export_patients")
    delimiter = api.models.ExportPatientsDelimiter
    staff = make_client(clinic)
    text = parsed(
        op.sync_detailed(
            client=staff, search="perez", blocked=False, delimiter=delimiter.SEMICOLON
        ),
        200,
        str,
    )
    assert text.splitlines()[0] == "\ufeffNombre;Teléfono;Email;Registrado"
    assert text.splitlines()[1].startswith('"Juan Pérez";+503 7765 4321;"juan@x.com";')
    bad = error(
        api,
        op.sync_detailed(client=staff, search="\x00"),
        400,
        "ValidationError",
        "VALIDATION_ERROR",
        api.models.ValidationDetail,
    )
    assert bad.details.field == "search"
    error(
        api,
        op.sync_detailed(client=make_client(basic)),
        403,
        "PlanRequiredError",
        "PLAN_UPGRADE_REQUIRED",
    )
    error(api, op.sync_detailed(client=make_client()), 401, "UnauthorizedError", "UNAUTHORIZED")


def upload(api, name: str, data: bytes | None = None):
    data = (SPREADSHEETS / name).read_bytes() if data is None else data
    file = api.types.File(payload=io.BytesIO(data), file_name=name, mime_type="text/csv")
    return api.models.ImportPatientsBody(file=file)


def test_import(api, make_client, sql, app, basic):
    op = api.op("csv", "import_patients")
    clinic = Clinic(sql, app.extensions["dui_keys"])
    staff = make_client(clinic)
    # LibreOffice 7.4's CSV (tests/fixtures/spreadsheets/manifest.json): checked, then written.
    answer = parsed(
        op.sync_detailed(client=staff, body=upload(api, "pacientes-utf8.csv"), dry_run=True),
        200,
        api.models.ImportPatientsResponse200,
    )
    assert answer.dry_run is True and answer.created == 297 and clinic.patients() == []
    answer = parsed(
        op.sync_detailed(client=staff, body=upload(api, "pacientes-utf8.csv")),
        200,
        api.models.ImportPatientsResponse200,
    )
    assert (answer.imported, answer.created, answer.updated, answer.unchanged) == (297, 297, 0, 0)
    assert answer.message == "Successfully imported 297 patients" and answer.dry_run is False
    assert type(answer.columns) is api.models.ImportPatientsResponse200Columns
    assert answer.columns.name == ["Nombres", "Apellidos"] and answer.columns.phone == ["Celular"]
    assert "Notas" in answer.columns.ignored
    assert [type(w) for w in answer.warnings] == [
        api.models.ImportPatientsResponse200WarningsItem
    ] * answer.warning_count
    # The generated client sends the file name (the audit row keeps it).
    assert clinic.audit("patients.import")[0]["details"]["file_name"] == "pacientes-utf8.csv"
    # README's Spanish example: the same answer, its message in Spanish.
    answer = parsed(
        op.sync_detailed(
            client=make_client(clinic, language="es-SV,es;q=0.9"),
            body=upload(api, "pacientes-utf8.csv"),
        ),
        200,
        api.models.ImportPatientsResponse200,
    )
    assert answer.message == "Se importaron 297 pacientes" and answer.unchanged == 297

    rows = error(
        api,
        op.sync_detailed(client=staff, body=upload(api, "problemas-utf8.csv")),
        400,
        "Error",
        "INVALID_ROWS",
        list,
    )
    assert len(rows.details) == 7 and {type(p) for p in rows.details} == {api.models.RowProblem}
    assert rows.details[0].line >= 2 and rows.details[0].column.value in {
        "name",
        "phone",
        "email",
        "dui",
    }
    assert rows.details[0].reason
    missing = error(
        api,
        op.sync_detailed(client=staff, body=upload(api, "x.csv", b"Nombre,Correo\nAna,a@x.com\n")),
        400,
        "Error",
        "INVALID_CSV",
        api.models.MissingColumns,
    )
    assert ([m.value for m in missing.details.missing], missing.details.found) == (
        ["phone"],
        ["Nombre", "Correo"],
    )
    assert (missing.details.columns, missing.details.not_shown) == (2, 0)
    twice = error(
        api,
        op.sync_detailed(
            client=staff, body=upload(api, "x.csv", b"Nombre,Tel\xc3\xa9fono,Celular\n")
        ),
        400,
        "Error",
        "INVALID_CSV",
        api.models.DuplicateColumns,
    )
    assert (twice.details.column.value, twice.details.headers) == ("phone", ["Teléfono", "Celular"])
    broken = error(
        api,
        op.sync_detailed(
            client=staff, body=upload(api, "x.csv", b'Nombre,Telefono\nAna,7765-4321\n"Luis,7000\n')
        ),
        400,
        "Error",
        "INVALID_CSV",
        api.models.UnreadableLine,
    )
    assert broken.details.line == 3 and broken.details.reason
    error(
        api,
        op.sync_detailed(client=staff, body=upload(api, "x.csv", b"")),
        400,
        "Error",
        "INVALID_CSV",
    )
    too_big = upload(api, "x.csv", b"Nombre,Telefono\n" + b"x" * (5 * 1024 * 1024))
    error(api, op.sync_detailed(client=staff, body=too_big), 413, "TooLargeError", "FILE_TOO_LARGE")
    error(
        api,
        op.sync_detailed(client=make_client(basic), body=upload(api, "pacientes-utf8.csv")),
        403,
        "PlanRequiredError",
        "PLAN_UPGRADE_REQUIRED",
    )
    error(
        api,
        op.sync_detailed(client=make_client(), body=upload(api, "x.csv", b"")),
        401,
        "UnauthorizedError",
        "UNAUTHORIZED",
    )


def test_import_template(api, make_client, basic):
    op = api.op("csv", "import_template")
    assert (
        parsed(op.sync_detailed(client=make_client(basic)), 200, str)
        == "\ufeffNombre,Teléfono,Email,DUI\r\n"
    )
    error(api, op.sync_detailed(client=make_client()), 401, "UnauthorizedError", "UNAUTHORIZED")


# -- audit ------------------------------------------------------------------------------------


def test_audit(api, make_client, clinic):
    """After the tests above: a reveal, a block and an unblock, an export of this clinic."""
    op = api.op("audit", "list_audit")
    admin = make_client(clinic, "admin")
    page = parsed(
        op.sync_detailed(client=admin, action=api.models.ListAuditAction.PATIENT_BLOCK, limit=20),
        200,
        api.models.ListAuditResponse200,
    )
    assert page.total == 1 and type(page.entries[0]) is api.models.AuditEntry
    block = page.entries[0].details
    assert type(block) is api.models.BlockDetails
    assert (block.from_, block.to, block.reason, block.dropped_messages) == (
        False,
        True,
        "mensajes ofensivos",
        0,
    )
    page = parsed(op.sync_detailed(client=admin), 200, api.models.ListAuditResponse200)
    kinds = {entry.action.value: type(entry.details).__name__ for entry in page.entries}
    assert kinds == {
        "dui.reveal": "RevealDetails",
        "patient.block": "BlockDetails",
        "patient.unblock": "BlockDetails",
        "patients.export": "ExportDetails",
    }
    export = next(e.details for e in page.entries if e.action.value == "patients.export")
    assert (export.rows, export.complete, export.blocked, export.delimiter.value) == (
        1,
        True,
        False,
        "semicolon",
    )
    assert (export.search.kind.value, export.search.length) == ("name", 5)
    page = parsed(
        op.sync_detailed(client=admin, patient_id=uuid.UUID(clinic.juan)),
        200,
        api.models.ListAuditResponse200,
    )
    assert {str(e.patient_id) for e in page.entries} == {clinic.juan}
    bad = error(
        api,
        op.sync_detailed(client=admin, page=0),
        400,
        "ValidationError",
        "VALIDATION_ERROR",
        api.models.ValidationDetail,
    )
    assert bad.details.field == "page"
    error(api, op.sync_detailed(client=make_client(clinic)), 403, "ForbiddenError", "FORBIDDEN")
    error(api, op.sync_detailed(client=make_client()), 401, "UnauthorizedError", "UNAUTHORIZED")


def test_audit_of_an_import(api, make_client, sql, app):
    op = api.op("audit", "list_audit")
    clinic = Clinic(sql, app.extensions["dui_keys"])
    staff, admin = make_client(clinic), make_client(clinic, "admin")
    api.op("csv", "import_patients").sync_detailed(
        client=staff, body=upload(api, "pacientes-utf8.csv")
    )
    entries = parsed(op.sync_detailed(client=admin), 200, api.models.ListAuditResponse200).entries
    (details,) = [e.details for e in entries]
    assert type(details) is api.models.ImportDetails
    assert (details.file_name, details.created, details.imported) == (
        "pacientes-utf8.csv",
        297,
        297,
    )
    assert details.rows >= 297 and details.duplicates_merged == details.rows - 297


# -- service and webhooks ---------------------------------------------------------------------


def test_service_routes(api, make_client):
    public = make_client()
    assert (
        parsed(
            api.op("service", "health").sync_detailed(client=public),
            200,
            api.models.HealthResponse200,
        ).status
        == "ok"
    )
    document = parsed(
        api.op("service", "openapi").sync_detailed(client=public),
        200,
        api.models.OpenapiResponse200,
    )
    assert document.openapi.startswith("3.1") and "/api/patients" in document.paths
    assert "<title>Patients API</title>" in parsed(
        api.op("service", "docs_page").sync_detailed(client=public), 200, str
    )
    assert "<title>Patients API</title>" in parsed(
        api.op("service", "docs_page_slash").sync_detailed(client=public), 200, str
    )
    asset = api.op("service", "docs_asset")
    assert ".swagger-ui" in parsed(asset.sync_detailed("swagger-ui.css", client=public), 200, str)
    error(api, asset.sync_detailed("app.py", client=public), 404, "NotFoundError", "NOT_FOUND")


def test_unavailable(api, config, tmp_path):
    """503 with no database, through the same generated client (in process: a second gunicorn
    would only add its start-up time)."""
    from app import create_app

    dead = f"postgresql://postgres@/postgres?host={tmp_path}&port=5999"
    flask_app = create_app({**config, "DATABASE_URL": dead, "POOL_TIMEOUT": 1.0})
    try:
        transport = httpx.WSGITransport(app=flask_app)
        client = api.package.Client(
            base_url="http://service",
            raise_on_unexpected_status=True,
            httpx_args={"transport": transport},
        )
        response = api.op("service", "health").sync_detailed(client=client)
        error(api, response, 503, "UnavailableError", "SERVICE_UNAVAILABLE")
        assert response.headers["Retry-After"] == "5"
    finally:
        flask_app.extensions["pool"].close(timeout=1)


def signed(api, doc: dict):
    """The body as the generated client will send it (httpx's JSON), and Meta's signature of it."""
    body = api.models.WhatsappInboundBody.from_dict(doc)
    raw = httpx.Request("POST", "http://x", json=body.to_dict()).content
    return body, "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()


def test_webhooks(api, make_client, sql, clinic):
    number_id = str(10**14 + int(uuid.uuid4().int % 10**13))
    sql.execute(
        "UPDATE clinics SET whatsapp_phone_number_id = %s WHERE id = %s", (number_id, clinic.id)
    )
    meta = make_client()
    handshake = api.op("webhooks", "whatsapp_handshake")
    echoed = handshake.sync_detailed(
        client=meta, hub_mode="subscribe", hub_verify_token=VERIFY_TOKEN, hub_challenge="42"
    )
    assert parsed(echoed, 200, str) == "42"
    error(
        api,
        handshake.sync_detailed(
            client=meta, hub_mode="subscribe", hub_verify_token="nope", hub_challenge="42"
        ),
        403,
        "ForbiddenError",
        "FORBIDDEN",
    )

    inbound = api.op("webhooks", "whatsapp_inbound")
    message = {
        "id": f"wamid.{uuid.uuid4().hex}",
        "from": "50370009999",
        "timestamp": "1767225600",
        "type": "text",
        "text": {"body": "Hola"},
    }
    doc = {
        "entry": [
            {
                "changes": [
                    {"value": {"metadata": {"phone_number_id": number_id}, "messages": [message]}}
                ]
            }
        ]
    }
    body, signature = signed(api, doc)
    counts = parsed(
        inbound.sync_detailed(client=meta, body=body, x_hub_signature_256=signature),
        200,
        api.models.WhatsappInboundResponse200,
    )
    assert (counts.queued, counts.duplicate, counts.blocked, counts.unknown_number) == (1, 0, 0, 0)
    error(
        api,
        inbound.sync_detailed(client=meta, body=body, x_hub_signature_256="sha256=00"),
        401,
        "UnauthorizedError",
        "UNAUTHORIZED",
    )
    body, signature = signed(api, {"entry": "x" * (300 * 1024)})
    error(
        api,
        inbound.sync_detailed(client=meta, body=body, x_hub_signature_256=signature),
        413,
        "TooLargeError",
        "FILE_TOO_LARGE",
    )


def test_every_operation_was_called(sent, server):
    """Runs after the calls above: each operation of the served description was called through
    the generated client (a request is the operation whose literal path it has, else the one
    whose template it matches)."""
    spec = httpx.get(f"{server.url}/api/openapi.json").json()
    operations = {
        (method.upper(), path): op["operationId"]
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    called = set()
    for method, path, _, _ in sent.sent:
        if (method, path) in operations:
            called.add(operations[method, path])
            continue
        for (m, template), operation_id in operations.items():
            if m == method and re.fullmatch(re.sub(r"{\w+}", "[^/]+", template), path):
                called.add(operation_id)
                break
    assert called == set(operations.values())
    assert len(called) == 14


# -- every README example was made through the client ------------------------------------------


def readme_requests() -> list[tuple[str, str, dict, str | None]]:
    """Each `curl … "$BASE/…"` in the README's sh blocks: method, path, query, Accept-Language."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = command.split(" #", 1)[0]
            if "curl " not in command or "$BASE" not in command:
                continue
            words = shlex.split(command[command.index("curl ") :])
            url = next(w for w in words if w.startswith("$BASE"))
            method = words[words.index("-X") + 1] if "-X" in words else None
            method = method or ("POST" if {"-F", "-d"} & set(words) else "GET")
            language = None
            for i, word in enumerate(words):
                if word == "-H" and words[i + 1].lower().startswith("accept-language:"):
                    language = words[i + 1].split(":", 1)[1].strip()
            parts = urlsplit(url.replace("$BASE", "http://base"))
            found.append(
                (method, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)), language)
            )
    return found


def test_readme_examples_were_all_made_through_the_client(sent, clinic):
    """Runs last in this module: every README request has a request the client sent that matches
    it (same method and path, its query parameters with the same values, others only the
    generated defaults), so each README example is callable through the generated client."""
    examples = readme_requests()
    assert len(examples) >= 15
    defaults = {"page": "1", "limit": "50", "delimiter": "comma"}
    values = {"$PATIENT_ID": clinic.juan, "$WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN}
    missing = []
    for method, path, query, language in examples:
        path = path.replace("$PATIENT_ID", values["$PATIENT_ID"])
        query = {k: values.get(v, v) for k, v in query.items()}
        if not any(
            m == method
            and p == path
            and lang == language
            and all(q.get(k) == v for k, v in query.items())
            and all(defaults.get(k) == v for k, v in q.items() if k not in query)
            for m, p, q, lang in sent.sent
        ):
            missing.append((method, path, query, language))
    assert missing == []
