"""Bad input everywhere: oversized query strings, invalid UTF-8, NUL bytes, deeply nested JSON,
wrong content types. Each is a clear 4xx JSON error, never a 500, and writes nothing."""

import io
import json
import socket

import pytest

ERROR_KEYS = {"code", "message", "details"}


def assert_clear_4xx(response, *codes):
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json"
    assert set(response.json) == ERROR_KEYS
    if codes:
        assert response.json["code"] in codes, response.json
    return response.json


@pytest.fixture
def target(clinic):
    patient = clinic.add_patient("Entrada Mala", "+50372223333")
    return clinic, patient


def list_query(query):
    return f"/api/patients?{query}"


# -- query strings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "search=" + "a" * 5000,
        "page=" + "9" * 4000,
        "limit=" + "1" * 400,
        "blocked=" + "t" * 3000,
        "search=%FF%FE",  # not UTF-8
        "search=ok&page=%C3%28",  # a broken two-byte sequence
        "page=1%00",
        "search=a%00b",
        "blocked=true%00",
        "limit=%F0%9F%98%80",  # an emoji where a number belongs
    ],
)
def test_bad_list_query(client, target, query):
    clinic, _ = target
    assert_clear_4xx(client.get(list_query(query), headers=clinic.headers()), "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "query",
    ["search=" + "x" * 3000, "delimiter=%FF", "delimiter=tab", "blocked=%00", "search=%00"],
)
def test_bad_export_query(client, target, query):
    clinic, _ = target
    response = client.get(f"/api/patients/export?{query}", headers=clinic.headers())
    assert_clear_4xx(response, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "query",
    ["patient_id=%FF", "patient_id=" + "f" * 2000, "action=%00", "page=-1", "limit=%C0%AF"],
)
def test_bad_audit_query(client, target, query):
    clinic, _ = target
    response = client.get(f"/api/audit?{query}", headers=clinic.headers("admin"))
    assert_clear_4xx(response, "VALIDATION_ERROR")


def test_bad_dry_run_flag(client, target):
    clinic, _ = target
    response = client.post(
        "/api/patients/import?dry_run=%FF",
        data={"file": (io.BytesIO(b"Nombre,Telefono\r\nA,77776666\r\n"), "a.csv")},
        headers=clinic.headers(),
    )
    assert_clear_4xx(response, "VALIDATION_ERROR")
    assert clinic.patients() == [p for p in clinic.patients() if p["phone"] != "+50377776666"]


@pytest.mark.parametrize(
    "path", ["/api/patients/%FF%FE", "/api/patients/%00", "/api/patients/" + "a" * 3000]
)
def test_bad_path_ids_are_not_found(client, target, path):
    clinic, _ = target
    assert_clear_4xx(client.get(path, headers=clinic.headers()), "NOT_FOUND")
    assert_clear_4xx(
        client.patch(path + "/block", json={"blocked": True}, headers=clinic.headers()),
        "NOT_FOUND",
    )


# -- bodies --------------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "body",
    [
        b'{"blocked": "\xff\xfe"}',
        b"\xff\xfe\x00\x00",
        b'{"blocked": true, "reason": "a\\u0000b"}',
        b'{"blocked": true\x00}',
        b'{"blocked": 1}',
        b'{"blocked": "true"}',
        b'{"blocked": null}',
        b"{}",
        b"",
        b"[true]",
        b'{"blocked": true, "reason": "' + b"r" * 5000 + b'"}',
        b'{"blocked": true, "blocked": "x"}',
        b'{"blocked": true, "extra": {"a": ' + nested(50) + b"}}",
        nested(100_000),
        b'{"blocked": ' + nested(50_000) + b"}",
        b'{"blocked": true, "reason": 1e999999}',
        b"NaN",
    ],
    ids=lambda b: repr(b[:40]),
)
def test_bad_block_body(client, sql, target, body):
    clinic, patient = target
    response = client.patch(
        f"/api/patients/{patient}/block",
        data=body,
        content_type="application/json",
        headers=clinic.headers(),
    )
    assert_clear_4xx(response, "VALIDATION_ERROR")
    assert clinic.patients()[0]["is_blocked"] is False
    assert clinic.audit() == []


@pytest.mark.parametrize(
    "content_type, body",
    [
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="blocked"\r\n\r\ntrue\r\n--x--\r\n',
        ),
        ("application/x-www-form-urlencoded", b"blocked=true"),
        ("application/xml", b"<blocked>true</blocked>"),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00"),
    ],
)
def test_block_with_a_wrong_content_type(client, target, content_type, body):
    clinic, patient = target
    response = client.patch(
        f"/api/patients/{patient}/block",
        data=body,
        headers={**clinic.headers(), "Content-Type": content_type},
    )
    assert_clear_4xx(response, "VALIDATION_ERROR")
    assert clinic.patients()[0]["is_blocked"] is False


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/json", b'{"file": "Nombre,Telefono\\nA,77776666"}'),
        ("text/csv", b"Nombre,Telefono\r\nA,77776666\r\n"),
        ("multipart/form-data", b"no boundary at all"),
        ("multipart/form-data; boundary=zz", b"--zz\r\nbroken"),
        ("application/x-www-form-urlencoded", b"file=Nombre%2CTelefono"),
    ],
)
def test_import_with_a_wrong_content_type(client, target, content_type, body):
    clinic, _ = target
    response = client.post(
        "/api/patients/import",
        data=body,
        headers={**clinic.headers(), "Content-Type": content_type},
    )
    assert_clear_4xx(response, "INVALID_CSV", "VALIDATION_ERROR")
    assert len(clinic.patients()) == 1


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02\x03" * 100,
        b"Nombre,Telefono\r\nAna\x00,77776666\r\n",
        b"\xff\xd8\xff\xe0 JFIF binary",
        b"",
        b"Nombre;Telefono\r\n" + b'"' * 10_000,
    ],
    ids=["binary", "nul", "jpeg", "empty", "quotes"],
)
def test_import_of_unreadable_files(client, target, data):
    clinic, _ = target
    response = client.post(
        "/api/patients/import",
        data={"file": (io.BytesIO(data), "x.csv")},
        headers=clinic.headers(),
    )
    assert_clear_4xx(response, "INVALID_CSV", "INVALID_ROWS")
    assert len(clinic.patients()) == 1


# -- through the real server: what never reaches Flask ---------------------------------------


def raw_request(server, data: bytes, timeout=10) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if len(b"".join(chunks)) > 1_000_000:
                break
        return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@pytest.mark.slow
def test_oversized_request_line_and_headers_are_refused_in_json(http_server, make_clinic):
    clinic = make_clinic()
    auth = clinic.headers()["Authorization"]
    cases = [
        f"GET /api/patients?search={'a' * 20_000} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n",
        f"GET /api/patients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {'a' * 100_000}\r\nConnection: close\r\n\r\n",
        "GET /api/patients HTTP/1.1\r\nHost: x\r\n"
        + "X-Pad: y\r\n" * 500
        + "Connection: close\r\n\r\n",
    ]
    for request in cases:
        answer = raw_request(http_server, request.encode())
        assert 400 <= status_of(answer) < 500, answer[:200]
        head, _, body = answer.partition(b"\r\n\r\n")
        # gunicorn (or nginx in front) answers these itself, before Flask: still the contract's
        # JSON, no echo.
        assert b"Content-Type: application/json" in head, answer[:300]
        error = json.loads(body)
        assert error["code"] == "VALIDATION_ERROR" and set(error) == {"code", "message", "details"}
        assert b"aaaa" not in body and b"<html" not in body.lower()
    malformed = raw_request(
        http_server, b"GET /api/patients HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    )
    assert status_of(malformed) == 400 and b"application/json" in malformed
    # The server is unharmed.
    assert http_server.request("GET", "/healthz")[0] == 200


@pytest.mark.slow
def test_raw_invalid_utf8_through_the_server(http_server, make_clinic):
    clinic = make_clinic()
    auth = clinic.headers()["Authorization"]
    for target in (
        b"/api/patients?search=\xff\xfe",
        b"/api/patients/\xff\xfe",
        b"/api/pa\x00tients",
    ):
        answer = raw_request(
            http_server,
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + auth.encode()
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert 400 <= status_of(answer) < 500, (target, answer[:300])
    assert http_server.request("GET", "/healthz")[0] == 200
