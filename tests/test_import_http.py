"""POST /api/patients/import against a live gunicorn: the 5 MB limit as a client really sees it,
two imports of one clinic at once, and a full-size file in well under the proxy's 30 s."""

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest

from tests.live import LiveServer

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
LIMIT = 5 * MiB


@pytest.fixture(scope="module")
def server(config):
    # One worker, so the concurrent imports below really meet in one process's pool and threads.
    with LiveServer(config, workers=1, threads=4) as live:
        yield live


def multipart(file_bytes: bytes, filename="pacientes.csv") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return head + file_bytes + f"\r\n--{boundary}--\r\n".encode(), boundary


def sv_phone(n: int) -> str:
    return f"{n // 10000:04d}-{n % 10000:04d}"


def rows_csv(phones, name="Paciente"):
    lines = ["Nombre,Teléfono,Email,DUI"]
    lines += [f"{name} {n},{sv_phone(n)},," for n in phones]
    return ("\r\n".join(lines) + "\r\n").encode()


def raw_exchange(server, head: bytes, body_chunks, timeout=20.0) -> bytes:
    """Send a request over a plain socket the way curl does (all of the body, in chunks), then
    read the answer until the server closes or the response is complete. A reset before the
    answer arrived raises, which is the failure this file guards against."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            sock.sendall(chunk)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            head_end = received.find(b"\r\n\r\n")
            if head_end != -1:
                headers = received[:head_end].decode("latin-1").lower()
                for line in headers.split("\r\n"):
                    if line.startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                        if len(received) >= head_end + 4 + length:
                            return received
        return received


def upload_head(server, boundary, framing: str, authorization: str | None = None) -> bytes:
    """The head of a raw multipart POST to the import; `framing` is Content-Length or chunked."""
    lines = ["POST /api/patients/import HTTP/1.1", f"Host: {server.host}:{server.port}"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    lines += [f"Content-Type: multipart/form-data; boundary={boundary}", framing]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def pieces(body: bytes, size: int = 256 * 1024):
    return (body[i : i + size] for i in range(0, len(body), size))


def parse_response(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_body_over_the_limit_is_a_json_413_over_a_raw_socket(server, clinic):
    body, boundary = multipart(b"x" * (6 * MiB))
    auth = clinic.headers()["Authorization"]
    head = upload_head(server, boundary, f"Content-Length: {len(body)}", auth)
    status, answer = parse_response(raw_exchange(server, head, pieces(body)))
    assert status == 413
    assert answer["code"] == "FILE_TOO_LARGE"
    assert clinic.patients() == []


def test_chunked_body_over_the_limit_is_a_json_413(server, clinic):
    body, boundary = multipart(b"Nombre,Telefono\r\n" + b"Ana,77654321\r\n" * (7 * MiB // 14))
    auth = clinic.headers()["Authorization"]
    head = upload_head(server, boundary, "Transfer-Encoding: chunked", auth)
    chunks = [
        f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces(body, 128 * 1024)
    ]
    chunks.append(b"0\r\n\r\n")
    status, answer = parse_response(raw_exchange(server, head, chunks))
    assert status == 413
    assert answer["code"] == "FILE_TOO_LARGE"
    assert clinic.patients() == []


def test_file_just_over_5_mib_inside_the_multipart_slack_is_413(server, clinic):
    # The body is within MAX_CONTENT_LENGTH (5 MiB + 64 KiB), but the file itself is not.
    body, boundary = multipart(b"a" * (LIMIT + 1))
    status, _, answer = server.json(
        "POST",
        "/api/patients/import",
        body=body,
        headers={
            **clinic.headers(),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        timeout=20,
    )
    assert status == 413
    assert answer["code"] == "FILE_TOO_LARGE"


def test_refused_big_body_from_an_unauthenticated_client_still_gets_its_answer(server):
    body, boundary = multipart(b"x" * (6 * MiB))
    head = upload_head(server, boundary, f"Content-Length: {len(body)}")
    status, answer = parse_response(raw_exchange(server, head, pieces(body)))
    assert (status, answer["code"]) == (401, "UNAUTHORIZED")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_receives_the_413(server, clinic, tmp_path):
    big = tmp_path / "grande.csv"
    big.write_bytes(b"Nombre,Telefono\r\n" + b"Ana,77654321\r\n" * (6 * MiB // 14))
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-H",
            f"Authorization: {clinic.headers()['Authorization']}",
            "-F",
            f"file=@{big}",
            "-w",
            "\n%{http_code}",
            f"{server.url}/api/patients/import",
        ],
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert result.returncode == 0, result.stderr  # 56 would be "connection reset"
    body, _, status = result.stdout.rpartition("\n")
    assert status == "413"
    assert json.loads(body)["code"] == "FILE_TOO_LARGE"


def test_the_connection_stays_usable_after_a_413(server, clinic):
    """The refused body was read off the socket, so the next request on it is understood."""
    import http.client

    conn = http.client.HTTPConnection(server.host, server.port, timeout=20)
    try:
        body, boundary = multipart(b"x" * (6 * MiB))
        headers = {**clinic.headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
        conn.request("POST", "/api/patients/import", body=body, headers=headers)
        first = conn.getresponse()
        assert first.status == 413
        first.read()
        if first.getheader("Connection", "").lower() != "close":
            conn.request("GET", "/api/patients/import/template", headers=clinic.headers())
            second = conn.getresponse()
            assert second.status == 200
            assert second.read().decode("utf-8-sig").startswith("Nombre,Teléfono")
    finally:
        conn.close()


def post_file(server, clinic, data: bytes, timeout=60):
    body, boundary = multipart(data)
    return server.json(
        "POST",
        "/api/patients/import",
        body=body,
        headers={**clinic.headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=timeout,
    )


def test_two_imports_of_one_clinic_at_once_end_consistent(server, clinic, make_clinic):
    base = 70_000_000
    first = rows_csv(range(base, base + 1500), name="Primero")
    second = rows_csv(range(base + 1000, base + 2500), name="Segundo")  # 500 phones overlap
    other = make_clinic()
    third = rows_csv(range(base, base + 800), name="Otra")
    answers = {}

    def run(key, who, data):
        answers[key] = post_file(server, who, data)

    threads = [
        threading.Thread(target=run, args=("a", clinic, first)),
        threading.Thread(target=run, args=("b", clinic, second)),
        threading.Thread(target=run, args=("c", other, third)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert {k: v[0] for k, v in answers.items()} == {"a": 200, "b": 200, "c": 200}
    a, b = answers["a"][2], answers["b"][2]
    assert a["imported"] == b["imported"] == 1500
    # Whichever ran second found the 500 shared phones already there.
    assert a["created"] + b["created"] == 2500
    assert a["updated"] + b["updated"] == 500
    assert len(clinic.patients()) == 2500
    assert answers["c"][2]["created"] == 800
    assert len(other.patients()) == 800
    assert len(clinic.audit("patients.import")) == 2
