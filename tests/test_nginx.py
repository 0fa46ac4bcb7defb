"""The service behind deploy/nginx.conf, as it is deployed: Debian's nginx in front of a live gunicorn.

Every answer a client can get is JSON, from either layer: nginx's own errors (413, 414, 431, 400,
and 503 for a gunicorn that is down or too slow) in the contract's shape, the app's own errors
passed through untouched with their X-Request-ID. The export streams through the proxy (an
abandoned download is audited as incomplete), a forged X-Forwarded-For is not what the audit
records, and slow clients are absorbed by nginx instead of pinning gunicorn's threads.

Skipped, with the reason, where nginx is not installed (.ci/run installs Debian's nginx-light).
"""

import contextlib
import json
import re
import socket
import time

import psycopg
import pytest

from patients import config as settings
from patients.repository import queries
from tests.live import LiveServer, report
from tests.nginx_proxy import CONFIG, ROOT, NginxProxy, require_nginx
from tests.test_export import copy_of_export

pytestmark = pytest.mark.slow

ERROR_KEYS = {"code", "message", "details"}
EXPORT_SQL = (ROOT / "queries" / "export.sql").read_text()
EXPORT = "/api/patients/export"


class Stack:
    """gunicorn (direct) and nginx in front of it (proxy): one app, two ways in."""

    def __init__(self, direct: LiveServer, proxy: NginxProxy):
        self.direct, self.proxy = direct, proxy


@pytest.fixture(scope="module")
def stack(config):
    require_nginx()
    # 1 worker x 2 threads: the instance two slow clients starved before nginx absorbed them.
    # TRUSTED_PROXIES=1: the address, scheme and host come from the one nginx in front.
    # A short import lock wait, so the app's own 503 can be shown through the proxy.
    env = {"TRUSTED_PROXIES": "1", "IMPORT_LOCK_WAIT_SECONDS": "1"}
    with (
        LiveServer(config, workers=1, threads=2, env=env) as direct,
        NginxProxy(direct.port) as proxy,
    ):
        yield Stack(direct, proxy)


def split(raw: bytes) -> tuple[int, str, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.decode("latin-1").lower(), body


def nginx_error(status, heads, body, code) -> dict:
    """An error nginx answered itself: the contract's JSON, never the request echoed."""
    assert heads["content-type"] == "application/json", (status, heads, body[:200])
    error = json.loads(body)
    assert set(error) == ERROR_KEYS and error["code"] == code and error["details"] is None
    assert re.fullmatch(r"[0-9a-f]{32}", heads["x-request-id"])
    assert heads["cache-control"] == "no-store"
    return error


def access_line(proxy: NginxProxy, request_id: str) -> dict:
    """nginx's access log line for the request (written once nginx closed the request)."""

    def lines():
        return [entry for entry in proxy.access_log() if entry["request_id"] == request_id]

    [line] = wait_for(lines, 5)
    return line


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


# -- the configuration itself ------------------------------------------------------------------


def location_setting(text: str, location: str, directive: str) -> int:
    """`directive`'s value in seconds inside `location = <location> { ... }` of deploy/nginx.conf."""
    block = re.search(rf"location = {re.escape(location)} \{{(.*?)\n        \}}", text, re.S)
    assert block, location
    [value] = re.findall(rf"^\s*{directive} (\d+)s;", block.group(1), re.M)
    return int(value)


def seconds(setting: str) -> float:
    """A PostgreSQL duration as SHOW prints it ('30s', '10min', '1h', '500ms')."""
    number, unit = re.fullmatch(r"(\d+)(ms|s|min|h)", setting).groups()
    return int(number) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600}[unit]


def test_the_timeouts_agree_with_the_app(app):
    text = CONFIG.read_text()
    with app.extensions["pool"].connection() as conn:
        statement = seconds(conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"])
        with conn.transaction(force_rollback=True):
            conn.execute(re.search(r"SET LOCAL statement_timeout = '\w+'", EXPORT_SQL).group())
            export = seconds(conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"])
    # The import may wait for another import of its clinic, then validate the file and run its
    # statements (each stopped at statement_timeout): the proxy must outwait all of that with a
    # margin, or it answers 504 while the import goes on to commit.
    import_timeout = location_setting(text, "/api/patients/import", "proxy_read_timeout")
    assert import_timeout >= 2 * (settings.IMPORT_LOCK_WAIT_SECONDS + statement) + 30
    # The export's COPY may run as long as its own statement_timeout; its location waits as long.
    assert location_setting(text, EXPORT, "proxy_read_timeout") == export == 600
    assert re.search(r"location = /api/patients/export \{[^}]*proxy_buffering off;", text)
    # A little over the app's 5 MB (+ multipart envelope), so near the limit the app answers.
    assert re.search(r"^\s*client_max_body_size 6m;", text, re.M)
    assert settings.MAX_UPLOAD_BYTES + settings.MULTIPART_SLACK < 6 * 1024 * 1024
    assert "proxy_intercept_errors" not in re.sub(r"#.*", "", text)


# -- nginx's own answers are JSON ----------------------------------------------------------------


def test_a_12_mb_upload_is_refused_by_nginx_in_json(stack, clinic):
    body = b"--b\r\nContent-Disposition: form-data; name=file; filename=x.csv\r\n\r\n"
    body += b"Nombre,Telefono\r\n" + b"Ana,77654321\r\n" * (12 * 1024 * 1024 // 14) + b"--b--\r\n"
    status, heads, raw = stack.proxy.request(
        "POST",
        "/api/patients/import",
        body=body,
        headers={**clinic.headers(), "Content-Type": "multipart/form-data; boundary=b"},
        timeout=30,
    )
    assert status == 413
    error = nginx_error(status, heads, raw, "FILE_TOO_LARGE")
    assert error["message"] == "The upload is larger than 5 MB."
    # nginx answered before a byte of it reached gunicorn.
    assert access_line(stack.proxy, heads["x-request-id"])["upstream_status"] == ""
    assert heads["x-request-id"] not in stack.direct.log()
    assert clinic.patients() == []


def test_an_upload_just_over_5_mb_is_the_apps_own_413(stack, clinic):
    body = b"--b\r\nContent-Disposition: form-data; name=file; filename=x.csv\r\n\r\n"
    body += b"x" * (5 * 1024 * 1024 + 100 * 1024) + b"\r\n--b--\r\n"
    headers = {**clinic.headers(), "Content-Type": "multipart/form-data; boundary=b"}
    direct = stack.direct.request("POST", "/api/patients/import", body, headers, timeout=30)
    proxied = stack.proxy.request("POST", "/api/patients/import", body, headers, timeout=30)
    assert direct[0] == proxied[0] == 413
    assert proxied[2] == direct[2]
    assert json.loads(proxied[2])["code"] == "FILE_TOO_LARGE"
    assert access_line(stack.proxy, proxied[1]["x-request-id"])["upstream_status"] == "413"


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (
            b"GET /api/patients?search=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "The request line is too long.",
        ),
        (
            b"GET /api/patients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + b"a" * 100_000
            + b"\r\n\r\n",
            431,
            "The request headers are too large.",
        ),
        (
            b"GET /api/patients HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            400,
            "The request could not be read.",
        ),
        (b"NOT A REQUEST\r\n\r\n", 400, "The request could not be read."),
        (
            b"POST /api/patients/import HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n",
            400,
            "The request could not be read.",
        ),
        (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "This method is not allowed here."),
        (
            b"POST /api/patients/import HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "The request uses an unsupported encoding.",
        ),
    ],
    ids=[
        "414-request-line",
        "431-headers",
        "400-content-length",
        "400-garbage",
        "400-chunk",
        "405-trace",
        "501-encoding",
    ],
)
def test_requests_nginx_cannot_read_are_answered_in_json(stack, request_bytes, status, message):
    answer = stack.proxy.raw(request_bytes)
    got, head, body = split(answer)
    assert got == status, answer[:300]
    heads = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
    code = "METHOD_NOT_ALLOWED" if status == 405 else "VALIDATION_ERROR"
    error = nginx_error(status, heads, body, code)
    assert error["message"] == message
    assert b"aaaa" not in body and b"<html" not in answer.lower()


ODD_REQUESTS = [
    b"GET /.errors/503 HTTP/1.1\r\nHost: x\r\n\r\n",  # nginx's internal error pages
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.0\r\n\r\n",
    b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://elsewhere.example/api/patients HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a%2 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX\x00: y\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
    b"POST /api/patients/import HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
    b"Content-Length: 99999999\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,  # TLS on the plain port
]


def test_no_answer_to_an_odd_request_is_html(stack):
    for data in ODD_REQUESTS:
        with socket.create_connection((stack.proxy.host, stack.proxy.port), timeout=5) as sock:
            sock.sendall(data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            answer = sock.recv(65536)
        status, head, body = split(answer)
        assert 200 <= status < 600 and "content-type: application/json" in head, (data, answer)
        assert set(json.loads(body)) == ERROR_KEYS, (data, answer)
        assert b"<html" not in answer.lower()


def test_nginx_speaks_spanish_to_a_spanish_client(stack):
    answer = stack.proxy.raw(
        b"GET /api/patients HTTP/1.1\r\nHost: x\r\nAccept-Language: es-SV,es;q=0.9,en;q=0.5\r\n"
        b"Authorization: Bearer " + b"a" * 100_000 + b"\r\n\r\n"
    )
    status, _, body = split(answer)
    assert status == 431
    assert json.loads(body)["message"] == "Los encabezados de la solicitud son demasiado grandes."


def test_gunicorn_stopped_is_a_json_503_with_retry_after(config, clinic):
    with LiveServer(config, workers=1, threads=2) as direct, NginxProxy(direct.port) as proxy:
        assert proxy.request("GET", "/healthz")[0] == 200
        direct.stop()
        for path in ("/healthz", "/api/patients"):
            status, heads, body = proxy.request("GET", path, headers=clinic.headers())
            assert status == 503
            error = nginx_error(status, heads, body, "SERVICE_UNAVAILABLE")
            assert heads["retry-after"] == "5"
            assert error["message"].startswith("The service is unavailable right now.")
            line = access_line(proxy, heads["x-request-id"])
            assert (line["status"], line["upstream_status"]) == (503, "502")


def test_a_gunicorn_that_does_not_answer_in_time_is_a_json_503(clinic):
    # The 504 case: an upstream that accepts and never answers, and this test's copy of the
    # config with a 1 s read timeout instead of 60 s (the only change).
    source = CONFIG.read_text()
    assert source.count("    proxy_read_timeout 60s;") == 1
    source = source.replace("    proxy_read_timeout 60s;", "    proxy_read_timeout 1s;")
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with NginxProxy(port, source=source) as proxy:
            status, heads, body = proxy.request("GET", "/api/patients", headers=clinic.headers())
            assert status == 503
            nginx_error(status, heads, body, "SERVICE_UNAVAILABLE")
            assert heads["retry-after"] == "5"
            assert access_line(proxy, heads["x-request-id"])["upstream_status"] == "504"


def test_a_client_that_stops_sending_is_dropped_without_an_answer(clinic):
    # This test's copy waits 1 s instead of 10 s for the headers and between body reads.
    source = CONFIG.read_text()
    for setting in ("client_header_timeout", "client_body_timeout"):
        assert source.count(f"{setting} 10s;") == 1
        source = source.replace(f"{setting} 10s;", f"{setting} 1s;")
    auth = clinic.headers()["Authorization"]
    stalled = [
        f"GET /api/patients HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n",
        f"POST /api/patients/import HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
        "Content-Length: 1000\r\n\r\nNombre,Tel",
    ]
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        upstream.settimeout(0.1)
        with NginxProxy(upstream.getsockname()[1], source=source) as proxy:
            for data in stalled:
                with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
                    sock.sendall(data.encode())
                    started = time.monotonic()
                    try:
                        answer = sock.recv(1000)
                    except ConnectionResetError:
                        answer = b""
                    # Dropped after the timeout (a reset: no HTML, no answer at all).
                    assert answer == b""
                    assert 0.5 < time.monotonic() - started < 4
            # Neither reached the upstream.
            with pytest.raises(TimeoutError):
                upstream.accept()


# -- the app's own answers pass through untouched -------------------------------------------------


def test_the_apps_errors_pass_through_unchanged(stack, make_clinic):
    clinic, basic = make_clinic(), make_clinic(plan="basic")
    cases = [
        ("GET", "/api/patients/00000000-0000-0000-0000-000000000000", clinic.headers(), 404),
        ("GET", "/nowhere", {}, 404),
        ("GET", "/api/patients", {}, 401),
        ("GET", "/api/patients?page=0", clinic.headers(), 400),
        ("GET", "/api/audit", clinic.headers("staff"), 403),
        ("GET", EXPORT, basic.headers(), 403),
        ("DELETE", "/api/patients", clinic.headers(), 405),
    ]
    for method, path, headers, status in cases:
        headers = {**headers, "X-Request-ID": f"pass-{status}-{time.monotonic_ns()}"}
        direct = stack.direct.request(method, path, headers=headers)
        proxied = stack.proxy.request(method, path, headers=headers)
        assert direct[0] == proxied[0] == status, (path, proxied)
        assert proxied[2] == direct[2], path
        for name in ("content-type", "x-request-id", "cache-control", "allow", "retry-after"):
            assert proxied[1].get(name) == direct[1].get(name), (path, name)
        assert proxied[1]["x-request-id"] == headers["X-Request-ID"]
        # The app answered (its log has the id), not nginx.
        assert access_line(stack.proxy, headers["X-Request-ID"])["upstream_status"] == str(status)


def test_the_apps_own_503_passes_through_unchanged(stack, clinic, database_url):
    body = (
        b"--b\r\nContent-Disposition: form-data; name=file; filename=x.csv\r\n\r\n"
        b"Nombre,Telefono\r\nAna,77654321\r\n\r\n--b--\r\n"
    )
    headers = {
        **clinic.headers(),
        "Content-Type": "multipart/form-data; boundary=b",
        "X-Request-ID": "app-503",
    }
    # Another import of the clinic holds its lock: the app waits 1 s, then answers its own 503.
    with psycopg.connect(database_url) as holder:
        queries.lock_clinic_imports(holder, clinic_id=clinic.id)  # an import in progress
        status, heads, raw = stack.proxy.request("POST", "/api/patients/import", body, headers)
    assert status == 503
    assert json.loads(raw)["code"] == "SERVICE_UNAVAILABLE"
    assert heads["retry-after"] == "10"  # the app's, not nginx's 5
    assert heads["x-request-id"] == "app-503"
    assert "still running" in json.loads(raw)["message"]
    assert clinic.patients() == []


def test_a_malformed_request_id_is_replaced_not_passed_on(stack):
    status, heads, _ = stack.proxy.request("GET", "/healthz", headers={"X-Request-ID": "a b<c>"})
    assert status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", heads["x-request-id"])
    # nginx and the app log the same id.
    assert access_line(stack.proxy, heads["x-request-id"])["upstream_status"] == "200"
    assert heads["x-request-id"] in stack.direct.log()


# -- the export streams through the proxy ---------------------------------------------------------


def add_wide_patients(sql, clinic, count):
    """`count` patients of about 1 KB of CSV each (long emails are cheap to insert: no index)."""
    sql.execute(
        "INSERT INTO patients (clinic_id, full_name, phone, email) "
        "SELECT %s, 'Paciente ' || lpad(i::text, 6, '0'), '+503' || (60000000 + i)::text, "
        "       'p' || i || '.' || repeat('x', 1000) || '@example.com' "
        "  FROM generate_series(1, %s) AS i",
        (clinic.id, count),
    )


def test_the_export_is_the_same_file_through_the_proxy(stack, clinic, sql):
    add_wide_patients(sql, clinic, 2_000)
    headers = clinic.headers()
    direct = stack.direct.request("GET", EXPORT, headers=headers, timeout=30)
    proxied = stack.proxy.request("GET", EXPORT, headers=headers, timeout=30)
    assert direct[0] == proxied[0] == 200
    assert proxied[2] == direct[2] and len(proxied[2]) > 2_000_000
    assert proxied[1]["transfer-encoding"] == "chunked"
    assert proxied[1]["content-type"] == "text/csv; charset=utf-8"
    assert proxied[1]["content-disposition"] == 'attachment; filename="pacientes.csv"'
    # The app asks any buffering proxy not to buffer this answer; nginx acts on it, not passes it.
    assert direct[1]["x-accel-buffering"] == "no"
    assert "x-accel-buffering" not in proxied[1]
    assert [row["details"]["complete"] for row in clinic.audit("patients.export")] == [True, True]


TOTAL_ROWS = 20_000  # about 21 MB: far more than the socket buffers between gunicorn and the client


@contextlib.contextmanager
def stalled_download(proxy, clinic):
    """A download whose client reads its first bytes, then stops reading (and leaves at the end)."""
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.sendall(
            f"GET {EXPORT} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {clinic.headers()['Authorization']}\r\n\r\n".encode()
        )
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n")
        yield first


def test_an_abandoned_download_through_the_proxy_is_audited_incomplete(stack, clinic, sql, request):
    add_wide_patients(sql, clinic, TOTAL_ROWS)

    with stalled_download(stack.proxy, clinic) as first:
        # The first bytes are here and PostgreSQL has not finished the file: nothing waits for
        # the last row, and nothing is read ahead of the client.
        assert wait_for(lambda: copy_of_export(sql, clinic.id), 2) == {"state": "active"}
        time.sleep(0.5)
        assert copy_of_export(sql, clinic.id) == {"state": "active"}
        assert clinic.audit("patients.export") == []

    [row] = wait_for(lambda: clinic.audit("patients.export"))
    assert row["details"]["complete"] is False
    # `rows` counts what the app handed to its socket: more than the client received (the
    # buffers between), fewer than the file.
    assert 0 < row["details"]["rows"] < TOTAL_ROWS
    report(
        request,
        f"export through nginx, client gone after its first {len(first)} bytes: "
        f"{row['details']['rows']} of {TOTAL_ROWS} rows (~1 KB each) handed to the socket",
    )
    assert wait_for(lambda: copy_of_export(sql, clinic.id) is None)


def test_a_buffering_proxy_would_audit_it_complete(stack, clinic, sql):
    """What the export location's settings prevent: the same config without them."""
    source = CONFIG.read_text()
    assert source.count("proxy_buffering off;") == 1
    source = source.replace("proxy_buffering off;", "proxy_ignore_headers X-Accel-Buffering;")
    add_wide_patients(sql, clinic, TOTAL_ROWS)
    buffering = NginxProxy(stack.direct.port, source=source)
    with buffering, stalled_download(buffering, clinic):
        # nginx reads the whole file into its own buffers while the client holds 64 KB.
        [row] = wait_for(lambda: clinic.audit("patients.export"), 30)
    assert row["details"]["rows"] == TOTAL_ROWS and row["details"]["complete"] is True


# -- addresses ------------------------------------------------------------------------------------


def test_a_forged_forwarded_for_is_not_what_the_audit_records(stack, clinic):
    patient = clinic.add_patient("Ana Gómez", "+50377650000")
    headers = {
        **clinic.headers(),
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Host": "evil.example",
        "X-Request-ID": f"forged-{time.monotonic_ns()}",
        "Content-Type": "application/json",
    }
    # The client speaks from 127.0.0.2, nginx to gunicorn from 127.0.0.1: the audit must hold
    # the address nginx saw, neither the forged one nor nginx's own.
    status, _, _ = stack.proxy.request(
        "PATCH",
        f"/api/patients/{patient}/block",
        body=b'{"blocked": true}',
        headers=headers,
        source="127.0.0.2",
    )
    assert status == 200
    [row] = clinic.audit("patient.block")
    assert str(row["client_ip"]) == "127.0.0.2"
    status, _, listing = stack.proxy.json(
        "GET", "/api/audit", headers=clinic.headers("admin"), source="127.0.0.2"
    )
    assert status == 200 and listing["entries"][0]["client_ip"] == "127.0.0.2"
    # Both logs say so too.
    assert access_line(stack.proxy, headers["X-Request-ID"])["client_ip"] == "127.0.0.2"
    [line] = [
        json.loads(text)
        for text in stack.direct.log().splitlines()
        if headers["X-Request-ID"] in text and '"path"' in text
    ]
    assert line["client_ip"] == "127.0.0.2"


# -- slow clients ---------------------------------------------------------------------------------

SLOW_CLIENTS = 50


def open_slow_clients(host, port, clinic, count=SLOW_CLIENTS) -> list[socket.socket]:
    """Half send unfinished headers, half a body that stops after 100 of its 100,000 bytes."""
    auth = clinic.headers()["Authorization"]
    sockets = []
    for i in range(count):
        sock = socket.create_connection((host, port), timeout=5)
        sockets.append(sock)
        if i % 2:
            sock.sendall(
                f"GET /api/patients HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n".encode()
            )
        else:
            sock.sendall(
                (
                    "POST /api/patients/import HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: {auth}\r\n"
                    "Content-Type: multipart/form-data; boundary=b\r\n"
                    "Content-Length: 100000\r\n\r\n"
                ).encode()
                + b"x" * 100
            )
    return sockets


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""  # pragma: no cover (nothing to read: open)
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_fifty_slow_clients_through_nginx_do_not_delay_a_normal_request(stack, clinic):
    clinic.add_patient("Ana Gómez", "+50377650000")
    slow = open_slow_clients(stack.proxy.host, stack.proxy.port, clinic)
    try:
        started = time.monotonic()
        status, _, body = stack.proxy.json(
            "GET", "/api/patients", headers=clinic.headers(), timeout=5
        )
        took = time.monotonic() - started
        assert status == 200 and body["total"] == 1
        # They were all still there, held by nginx (client_header_timeout/client_body_timeout
        # are 10 s), while the request went through.
        assert all(still_open(sock) for sock in slow)
    finally:
        for sock in slow:
            sock.close()
    # Direct, two of them are enough to take both of gunicorn's threads: nothing answers.
    slow = open_slow_clients(stack.direct.host, stack.direct.port, clinic, count=2)
    try:
        with pytest.raises(TimeoutError):
            stack.direct.request(
                "GET", "/api/patients", headers=clinic.headers(), timeout=max(2, 4 * took)
            )
    finally:
        for sock in slow:
            sock.close()
    assert wait_for(lambda: stack.direct.request("GET", "/healthz")[0] == 200)
