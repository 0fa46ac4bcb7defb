"""Hostile and malformed requests cost little and always answer a small JSON 4xx (issue 16).

Each case was found by an attack pass (schemathesis' CLI with every check, plus hand-made
requests) and is reproduced here through HTTP: raw sockets against a live gunicorn where the
HTTP itself is malformed (gunicorn's parser is part of what is tested), Flask's test client
elsewhere.
"""

import json
import math
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.live import status_kb

pytestmark = pytest.mark.slow

ERROR_KEYS = {"code", "message", "details"}
NOT_FOUND = {"code": "NOT_FOUND", "message": "Not found.", "details": None}


# -- raw HTTP --------------------------------------------------------------------------------


class Answer:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers.get('content-type')} {self.body[:200]!r}>"


def exchange(server, data: bytes, timeout: float = 15.0) -> list[Answer]:
    """Send `data` as is on one connection and read until the server closes it: every HTTP
    response that came back, in order."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)  # with `Connection: close`: the server closes once it has answered
        raw = b""
        try:
            while chunk := sock.recv(65536):
                raw += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return parse_answers(raw)


def parse_answers(raw: bytes) -> list[Answer]:
    answers = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"not an HTTP response: {raw[:300]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", len(rest)))
        answers.append(Answer(int(status_line.split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return answers


def request_bytes(method: str, path: str, headers: dict, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in {"Connection": "close", **headers}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    """(field name, filename or None, content) -> a multipart/form-data body."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: text/csv\r\n"
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def post_multipart(client, clinic, body: bytes, boundary: str = "b0undary", query: str = ""):
    return client.post(
        f"/api/patients/import{query}",
        data=body,
        headers={
            **clinic.headers(),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )


def fetch(client, url, method="GET", **kwargs):
    """The whole answer, read and closed: an export streams, and a stream left open would hold
    its request context and its database connection past the test."""
    response = client.open(url, method=method, **kwargs)
    response.get_data()
    response.close()
    return response


def assert_small_json_4xx(answer, status: int, code: str):
    assert answer.status == status, answer
    body = answer.json()
    assert set(body) == ERROR_KEYS
    assert body["code"] == code, body
    return body


# -- 1. the import's INVALID_ROWS is bounded --------------------------------------------------

PHONE_REQUIRED = {"column": "phone", "reason": "a phone number is required"}


def test_invalid_rows_lists_the_first_1000_problems_and_counts_them_all(client, clinic):
    # 1,400 rows, each with an empty phone; every 100th also has no name: 1,414 problems.
    # (A third, ignored column keeps a row without name and phone from being a blank row.)
    rows = [("" if line % 100 == 0 else "x") + ",,nota\n" for line in range(2, 1402)]
    data = ("Nombre,Teléfono,Notas\n" + "".join(rows)).encode()
    response = post_multipart(client, clinic, multipart([("file", "p.csv", data)]))
    assert response.status_code == 400
    body = response.json
    assert body["code"] == "INVALID_ROWS"
    assert len(body["details"]) == 1000
    assert body["details"][0] == {"line": 2, **PHONE_REQUIRED}
    assert body["details"][98] == {"line": 100, "column": "name", "reason": "a name is required"}
    assert body["details"][99] == {"line": 100, **PHONE_REQUIRED}
    # The first 1,000 in line order: lines 2 to 992, nine of them (100, ..., 900) with two.
    assert body["details"][-1] == {"line": 992, **PHONE_REQUIRED}
    assert body["message"] == (
        "1400 of 1400 rows cannot be imported (1414 problems; the first 1000 are listed); "
        "nothing was written. Fix them and upload the file again."
    )
    assert clinic.patients() == []


def test_a_file_with_fewer_problems_lists_them_all(client, clinic):
    data = b"Nombre,Tel\xc3\xa9fono,Notas\nAna,77654321,\n,,nota\nLuis,77654322,\n"
    body = post_multipart(client, clinic, multipart([("file", "p.csv", data)])).json
    assert body["details"] == [
        {"line": 3, "column": "name", "reason": "a name is required"},
        {"line": 3, **PHONE_REQUIRED},
    ]
    assert body["message"] == (
        "1 of 3 rows cannot be imported (2 problems); nothing was written. "
        "Fix them and upload the file again."
    )


LIMIT = 5 * 1024 * 1024 - 16 * 1024


def garbage_file() -> tuple[bytes, int]:
    header = b"nombre,telefono\n"
    rows = (LIMIT - len(header)) // 2
    return header + b"x\n" * rows, rows


def test_a_5_mb_file_of_garbage_answers_small_and_costs_little_memory(live_server, clinic):
    data, rows = garbage_file()
    workers = live_server.worker_pids()
    before = {pid: status_kb(pid, "VmRSS") for pid in workers}
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak counter starts from here
    body = multipart([("file", "garbage.csv", data)])
    status, _, raw = live_server.request(
        "POST",
        "/api/patients/import",
        body=body,
        headers={**clinic.headers(), "Content-Type": "multipart/form-data; boundary=b0undary"},
        timeout=60,
    )
    assert status == 400
    assert len(raw) < 150_000  # was 187 MB
    answer = json.loads(raw)
    assert answer["code"] == "INVALID_ROWS"
    assert len(answer["details"]) == 1000
    assert answer["details"][-1] == {"line": 1001, **PHONE_REQUIRED}
    assert answer["message"] == (
        f"{rows} of {rows} rows cannot be imported ({rows} problems; the first 1000 are "
        "listed); nothing was written. Fix them and upload the file again."
    )
    grown_mb = max(status_kb(pid, "VmHWM") - before[pid] for pid in workers) / 1024
    # Was about 1.1 GB; the 5 MB body, its text and the CSV reader's buffers stay well under this.
    assert grown_mb < 100, f"a worker's peak grew by {grown_mb:.0f} MB"


# -- 2. a malformed chunked body is a 400 JSON, not a 500 ---------------------------------------

BAD_CHUNK = b"zz\r\nhello\r\n0\r\n\r\n"


def chunked_request(method, path, headers, chunks: bytes = BAD_CHUNK) -> bytes:
    return request_bytes(method, path, {**headers, "Transfer-Encoding": "chunked"}, chunks)


@pytest.fixture
def patient(clinic):
    return clinic.add_patient("Chunk Pérez", "+50371112222")


@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
@pytest.mark.parametrize("route", ["import", "block"])
def test_a_malformed_chunked_body_is_a_400_json(http_server, clinic, patient, route, with_token):
    headers = clinic.headers() if with_token else {}
    if route == "import":
        method, path = "POST", "/api/patients/import"
        headers["Content-Type"] = "multipart/form-data; boundary=b0undary"
    else:
        method, path = "PATCH", f"/api/patients/{patient}/block"
        headers["Content-Type"] = "application/json"
    answers = exchange(http_server, chunked_request(method, path, headers))
    assert answers, "no answer at all"
    body = assert_small_json_4xx(answers[0], 400, "VALIDATION_ERROR")
    if getattr(http_server, "proxy", None) is not None:
        return  # nginx refused it itself, in its own JSON (deploy/nginx.conf): enough
    reason = "is not readable HTTP (a malformed chunked transfer or a body cut short)"
    assert body == {
        "code": "VALIDATION_ERROR",
        "message": f"Invalid body: {reason}",
        "details": {"field": "body", "reason": reason},
    }
    # Whatever else the connection carried is JSON too, and nothing was a 500.
    for answer in answers:
        assert answer.status < 500
        answer.json()
    assert clinic.patients()[0]["is_blocked"] is False


def test_a_well_formed_chunked_import_still_imports(http_server, clinic):
    body = multipart([("file", "p.csv", "Nombre,Teléfono\nAna Chunk,7765-4321\n".encode())])
    chunks = (
        b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (body[:40], body[40:]))
        + b"0\r\n\r\n"
    )
    headers = {
        **clinic.headers(),
        "Content-Type": "multipart/form-data; boundary=b0undary",
        "Connection": "close",
    }
    (answer,) = exchange(
        http_server, chunked_request("POST", "/api/patients/import", headers, chunks)
    )
    assert answer.status == 200, answer
    assert answer.json()["imported"] == 1
    assert [p["phone"] for p in clinic.patients()] == ["+50377654321"]


def test_a_well_formed_chunked_block_still_blocks(http_server, clinic, patient):
    payload = b'{"blocked": true}'
    chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    headers = {**clinic.headers(), "Content-Type": "application/json", "Connection": "close"}
    (answer,) = exchange(
        http_server, chunked_request("PATCH", f"/api/patients/{patient}/block", headers, chunks)
    )
    assert answer.status == 200, answer
    assert answer.json()["is_blocked"] is True


# -- 3. no redirects: a path that is not a route is the JSON 404 --------------------------------

NOT_ROUTES = [
    "/api//patients",
    "//api/patients",
    "///api/patients",
    "/api/patients/",
    "/api//audit",
    "/api/patients//export",
    "/api/patients/export/",
    "/api/patients/import/",
    "/api/patients/{id}//block",
    "/api/patients//{id}",
    "/api/patients/{id}/",
    "/api/openapi.json/",
    "/api//openapi.json",
    "/healthz/",
    "//healthz",
    "//",
]


@pytest.mark.parametrize("path", NOT_ROUTES)
@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "OPTIONS"])
def test_not_a_route_is_the_json_404(http_server, clinic, patient, path, method):
    """No redirect (werkzeug's merge_slashes/strict_slashes), so no Location built from Host."""
    headers = {
        **clinic.headers(),
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Connection": "close",
    }
    raw = request_bytes(method, path.replace("{id}", patient), headers).replace(
        b"Host: 127.0.0.1\r\n", b""
    )
    (answer,) = exchange(http_server, raw)
    assert answer.status == 404, answer
    assert "location" not in answer.headers
    assert answer.json() == NOT_FOUND


def test_the_test_client_sees_no_redirect_either(client, clinic):
    for path in ("/api//patients", "/api/patients/", "/api//audit"):
        response = client.get(path, headers=clinic.headers("admin"))
        assert response.status_code == 404, path
        assert "Location" not in response.headers
        assert response.json == NOT_FOUND


def test_a_rule_with_a_trailing_slash_would_not_redirect_either(config):
    """Should a route ever end with `/`, werkzeug's strict_slashes would redirect `/x` to `/x/`:
    the middleware answers that 404 too. (The one such rule today, `/api/docs/`, has its own
    `/api/docs` rule beside it: both spellings are the docs page, neither redirects.)"""
    from app import create_app

    app = create_app(config)
    try:
        app.add_url_rule("/healthz/extra/", "extra", lambda: "extra")
        slashed = [r.rule for r in app.url_map.iter_rules() if r.rule.endswith("/")]
        assert sorted(slashed) == ["/api/docs/", "/healthz/extra/"]
        response = app.test_client().get("/healthz/extra", headers={"Host": "evil.example"})
        assert response.status_code == 404
        assert "Location" not in response.headers
        assert response.json == NOT_FOUND
        assert app.test_client().get("/healthz/extra/").status_code == 200
    finally:
        app.extensions["pool"].close()


# -- 4. the description and the code agree ------------------------------------------------------


def spec():
    from patients.api import docs

    return docs.spec()


def parameter(name: str) -> dict:
    return spec()["components"]["parameters"][name]


@pytest.mark.parametrize("url", ["/api/patients", "/api/audit"])
def test_page_above_the_described_maximum_is_a_400(client, clinic, url):
    maximum = parameter("Page")["schema"]["maximum"]
    ok = client.get(url, query_string={"page": maximum}, headers=clinic.headers("admin"))
    assert ok.status_code == 200
    assert ok.json["page"] == maximum
    over = client.get(url, query_string={"page": maximum + 1}, headers=clinic.headers("admin"))
    assert over.status_code == 400
    assert over.json["details"] == {"field": "page", "reason": f"must be from 1 to {maximum}"}


@pytest.mark.parametrize("value", ["0", "1", "yes", "no", "t", "", "truee"])
@pytest.mark.parametrize("url", ["/api/patients", "/api/patients/export"])
def test_blocked_is_true_or_false_only(client, clinic, url, value):
    response = fetch(client, url, query_string={"blocked": value}, headers=clinic.headers())
    assert response.status_code == 400
    assert response.json["details"] == {"field": "blocked", "reason": "must be true or false"}


@pytest.mark.parametrize("value", ["true", "false", "True", "FALSE"])
def test_blocked_true_and_false_in_any_case(client, clinic, value):
    clinic.add_patient("Bloqueada", "+50371110000", is_blocked=True)
    clinic.add_patient("Libre", "+50371110001")
    response = client.get(
        "/api/patients", query_string={"blocked": value}, headers=clinic.headers()
    )
    assert response.status_code == 200
    expected = "Bloqueada" if value.lower() == "true" else "Libre"
    assert [p["full_name"] for p in response.json["patients"]] == [expected]


def test_the_description_says_blocked_is_a_boolean():
    assert parameter("Blocked")["schema"] == {"type": "boolean"}


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/audit?patient_id=", "patient_id"),
        ("/api/audit?action=", "action"),
        ("/api/audit?page=", "page"),
        ("/api/patients?limit=", "limit"),
        ("/api/patients?page=", "page"),
        ("/api/patients/export?delimiter=", "delimiter"),
        ("/api/patients/export?blocked=", "blocked"),
    ],
)
def test_an_empty_value_is_not_an_absent_filter(client, clinic, url, field):
    response = fetch(client, url, headers=clinic.headers("admin"))
    assert response.status_code == 400
    assert response.json["details"]["field"] == field


def test_an_empty_search_is_no_search(client, clinic):
    clinic.add_patient("Ana", "+50371110002")
    for query in ("search=", "search=%20%20"):
        response = client.get(f"/api/patients?{query}", headers=clinic.headers())
        assert response.status_code == 200
        assert response.json["total"] == 1


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/patients?page=1&page=1", "page"),
        ("/api/patients?search=a&search=b", "search"),
        ("/api/patients?blocked=true&limit=5&blocked=false", "blocked"),
        ("/api/patients/export?delimiter=comma&delimiter=comma", "delimiter"),
        ("/api/audit?patient_id={id}&patient_id={id}", "patient_id"),
        ("/api/patients/import?dry_run=true&dry_run=true", "dry_run"),
    ],
)
def test_a_repeated_parameter_is_a_400(client, clinic, url, field):
    url = url.replace("{id}", str(uuid.uuid4()))
    method = "POST" if "import" in url else "GET"
    response = fetch(client, url, method, headers=clinic.headers("admin"))
    assert response.status_code == 400
    assert response.json == {
        "code": "VALIDATION_ERROR",
        "message": f"Invalid {field}: must be given once",
        "details": {"field": field, "reason": "must be given once"},
    }


def test_nul_in_search_is_a_described_400(client, clinic):
    response = client.get("/api/patients?search=a%00b", headers=clinic.headers())
    assert response.status_code == 400
    assert response.json["details"] == {
        "field": "search",
        "reason": "must not contain NUL characters",
    }
    assert parameter("Search")["schema"]["pattern"] == "^[^\\u0000]*$"


def test_the_block_body_refuses_unknown_fields_as_described(client, clinic, patient):
    response = client.patch(
        f"/api/patients/{patient}/block",
        json={"blocked": True, "blocekd": False},
        headers=clinic.headers(),
    )
    assert response.status_code == 400
    assert response.json["details"] == {"field": "blocekd", "reason": "is not a known field"}
    schema = spec()["paths"]["/api/patients/{patient_id}/block"]["patch"]["requestBody"]
    assert schema["content"]["application/json"]["schema"]["additionalProperties"] is False


def test_options_on_the_import_advertises_only_its_methods(client, clinic):
    response = client.options("/api/patients/import")
    assert response.status_code == 200
    assert sorted(response.headers["Allow"].split(", ")) == ["OPTIONS", "POST"]
    got = client.get("/api/patients/import", headers=clinic.headers())
    assert got.status_code == 405
    assert got.json["code"] == "METHOD_NOT_ALLOWED"
    assert sorted(got.headers["Allow"].split(", ")) == ["OPTIONS", "POST"]


def test_a_patient_id_still_reads_the_record_and_a_malformed_one_is_404(client, clinic, patient):
    assert client.get(f"/api/patients/{patient}", headers=clinic.headers()).status_code == 200
    for bad in ("nope", "imports", "export.csv"):
        response = client.get(f"/api/patients/{bad}", headers=clinic.headers())
        assert response.status_code == 404, bad
        assert response.json["code"] == "NOT_FOUND"


# -- 5. multipart says what is actually wrong -----------------------------------------------------


def test_a_file_field_without_a_filename_is_read_as_the_file(client, clinic):
    """`curl -F 'file=<pacientes.csv'` sends the content as a plain field: it is the file all the
    same, its bytes as sent (a Windows-1252 file keeps its accents)."""
    data = "Nombre,Teléfono\nJosé Núñez,7765-4321\n".encode("cp1252")
    response = post_multipart(client, clinic, multipart([("file", None, data)]))
    assert response.status_code == 200, response.json
    assert response.json["imported"] == 1
    assert [p["full_name"] for p in clinic.patients()] == ["José Núñez"]


def test_more_than_1000_parts_says_so(client, clinic):
    parts = [(f"f{i}", None, b"x") for i in range(1001)]
    parts.append(("file", "p.csv", "Nombre,Teléfono\nAna,7765-4321\n".encode()))
    body = multipart(parts)
    assert len(body) < 300_000
    response = post_multipart(client, clinic, body)
    assert response.status_code == 400
    assert response.json == {
        "code": "INVALID_CSV",
        "message": "The upload has more than 1000 parts: send the spreadsheet alone, as the "
        "multipart/form-data field `file` (curl -F file=@pacientes.csv).",
        "details": None,
    }


def test_a_large_text_field_is_not_called_a_large_file(client, clinic):
    """A 600 KB plain field beside the file (werkzeug holds text fields to 500 KB) is no 413."""
    data = "Nombre,Teléfono\nAna,7765-4321\n".encode()
    body = multipart([("note", None, b"n" * 600_000), ("file", "p.csv", data)])
    response = post_multipart(client, clinic, body)
    assert response.status_code == 200, response.json
    assert response.json["imported"] == 1


def test_two_files_are_refused(client, clinic):
    data = "Nombre,Teléfono\nAna,7765-4321\n".encode()
    body = multipart([("file", "a.csv", data), ("file", "b.csv", data)])
    response = post_multipart(client, clinic, body)
    assert response.status_code == 400
    assert response.json["code"] == "INVALID_CSV"
    assert response.json["message"] == (
        "Send one file per import: the upload has more than one `file` field."
    )
    assert clinic.patients() == []


def test_multipart_without_a_boundary_says_so(client, clinic):
    response = client.post(
        "/api/patients/import",
        data=b"Nombre,Telefono\n",
        headers={**clinic.headers(), "Content-Type": "multipart/form-data"},
    )
    assert response.status_code == 400
    assert response.json["code"] == "INVALID_CSV"
    assert response.json["message"] == (
        "The upload is not readable multipart/form-data (its Content-Type has no boundary): "
        "send the spreadsheet as the field `file` (curl -F file=@pacientes.csv)."
    )


def test_a_multipart_body_that_breaks_off_says_so(client, clinic):
    body = multipart([("file", "p.csv", b"Nombre,Telefono\nAna,77654321\n")])[:-20]
    response = post_multipart(client, clinic, body)
    assert response.status_code == 400
    assert response.json["code"] == "INVALID_CSV"
    assert response.json["message"] == (
        "The upload breaks off before its end: send the whole file again "
        "(curl -F file=@pacientes.csv)."
    )


def test_no_file_field_names_the_fields_that_came(client, clinic):
    body = multipart([("archivo", "p.csv", b"Nombre,Telefono\nAna,77654321\n")])
    response = post_multipart(client, clinic, body)
    assert response.status_code == 400
    assert response.json["code"] == "INVALID_CSV"
    assert response.json["message"] == (
        "No file: send the spreadsheet as the multipart/form-data field `file` "
        "(curl -F file=@pacientes.csv)."
    )


def test_an_upload_over_5_mb_is_still_a_413(client, clinic):
    body = multipart([("file", "p.csv", b"Nombre,Telefono\n" + b"x" * (5 * 1024 * 1024))])
    response = post_multipart(client, clinic, body)
    assert response.status_code == 413
    assert response.json["code"] == "FILE_TOO_LARGE"


# -- 6. the export's audit row keeps what kind of search it was, not the term ---------------------


@pytest.mark.parametrize(
    ("term", "kind"),
    [("12345678-9", "phone_digits"), ("7765 4321", "phone_digits"), ("Pérez", "name")],
)
def test_the_export_audit_does_not_keep_the_search_term(client, clinic, term, kind):
    response = fetch(
        client, "/api/patients/export", query_string={"search": term}, headers=clinic.headers()
    )
    assert response.status_code == 200  # the audit row was written as the download ended
    (row,) = clinic.audit("patients.export")
    assert row["details"]["search"] == {"kind": kind, "length": len(term)}
    assert term not in json.dumps(row["details"], ensure_ascii=False)
    listed = client.get("/api/audit", headers=clinic.headers("admin"))
    assert term not in listed.get_data(as_text=True)


def test_an_export_without_search_records_none(client, clinic):
    response = fetch(client, "/api/patients/export", headers=clinic.headers())
    assert response.status_code == 200
    (row,) = clinic.audit("patients.export")
    assert row["details"]["search"] is None


# -- helpers are not vacuous ------------------------------------------------------------------


def test_parse_answers_reads_pipelined_responses():
    raw = (
        b"HTTP/1.1 401 UNAUTHORIZED\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    )
    assert [(a.status, a.body) for a in parse_answers(raw)] == [(401, b"{}"), (400, b"")]


# -- 7. what other issues landed, through the live server too --------------------------------


def test_the_30_s_clock_leeway_and_no_more(live_server, clinic):
    """Integer seconds, rounded so the test's own run time only moves a case away from the edge."""
    from tests.helpers import make_token

    now = time.time()
    for exp, status in ((math.ceil(now) - 29, 200), (math.floor(now) - 31, 401)):
        token = make_token(clinic.id, exp=exp, iat=math.floor(now) - 3600)
        got, _, body = live_server.json(
            "GET", "/api/patients", headers={"Authorization": f"Bearer {token}"}
        )
        assert got == status, (exp - now, body)
    nbf = make_token(clinic.id, nbf=math.ceil(now) + 31)
    got, _, body = live_server.json(
        "GET", "/api/patients", headers={"Authorization": f"Bearer {nbf}"}
    )
    assert (got, body["code"]) == (401, "UNAUTHORIZED")


HOSTILE_CELLS = {
    "email": "<script>alert(1)</script>@x",
    "dui": "9876-EVIL-5",
    "phone": '=HYPERLINK("http://evil.example")',
    "name": "Z" * 250,
}


def test_a_reason_never_repeats_the_cell(live_server, clinic):
    data = (
        "Nombre,Teléfono,Email,DUI\n"
        f'{HOSTILE_CELLS["name"]},"{HOSTILE_CELLS["phone"].replace(chr(34), chr(34) * 2)}",'
        f"{HOSTILE_CELLS['email']},{HOSTILE_CELLS['dui']}\n"
    ).encode()
    status, _, body = live_server.json(
        "POST",
        "/api/patients/import",
        body=multipart([("file", "p.csv", data)]),
        headers={**clinic.headers(), "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert status == 400
    assert [(p["line"], p["column"]) for p in body["details"]] == [
        (2, "name"),
        (2, "phone"),
        (2, "email"),
        (2, "dui"),
    ]
    answer = json.dumps(body, ensure_ascii=False)
    for cell in HOSTILE_CELLS.values():
        for piece in (cell, cell[:12], "script", "EVIL", "evil.example"):
            assert piece not in answer, piece
