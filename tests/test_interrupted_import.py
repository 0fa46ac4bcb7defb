"""The worker is killed (SIGKILL) in the middle of a large import: nothing of it is written, and
the server goes on serving (gunicorn's master starts a new worker)."""

import io
import os
import signal
import threading
import time
import uuid

import pytest

from tests.live import LiveServer

pytestmark = pytest.mark.slow

ROWS = 30_000


def multipart(data: bytes, boundary: str) -> bytes:
    return (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="grande.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


def big_csv() -> bytes:
    out = io.StringIO()
    out.write("Nombre,Teléfono,Email,DUI\r\n")
    for i in range(ROWS):
        check = i % 10
        out.write(f"Paciente Grande {i},+5037{i:07d},p{i}@example.com,{i:08d}-{check}\r\n")
    return out.getvalue().encode()


def import_backend(sql, clinic_id):
    """The PostgreSQL backend working for our import (it writes into this clinic), if any."""
    return sql.execute(
        "SELECT pid, state, query FROM pg_stat_activity "
        "WHERE application_name = 'patients-api' AND state <> 'idle' "
        "AND (query ILIKE '%%copy%%' OR query ILIKE '%%insert%%' OR query ILIKE '%%update%%') "
        "AND pid <> pg_backend_pid()"
    ).fetchall()


def test_killed_worker_writes_nothing(config, make_clinic, sql):
    clinic = make_clinic(plan="pro")
    clinic.add_patient("Ya Estaba", "+50379998888")
    before = clinic.patients()
    boundary = uuid.uuid4().hex
    body = multipart(big_csv(), boundary)

    with LiveServer(config, workers=1, threads=2) as server:
        [worker] = server.worker_pids()
        outcome = {}

        def upload():
            try:
                outcome["answer"] = server.request(
                    "POST",
                    "/api/patients/import",
                    body=body,
                    headers={
                        **clinic.headers(),
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                    },
                    timeout=60,
                )
            except Exception as exc:  # the connection dies with the worker
                outcome["error"] = exc

        thread = threading.Thread(target=upload)
        thread.start()
        # Wait until the import is writing in PostgreSQL, then kill the worker mid-transaction.
        deadline = time.monotonic() + 40
        busy = []
        while time.monotonic() < deadline and not busy and thread.is_alive():
            busy = import_backend(sql, clinic.id)
            time.sleep(0.02)
        assert busy, f"the import never reached the database: {outcome}"
        os.kill(worker, signal.SIGKILL)
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert "answer" not in outcome or outcome["answer"][0] != 200, outcome

        # PostgreSQL notices the dead client and rolls its transaction back.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(
            r["pid"] == busy[0]["pid"] for r in import_backend(sql, clinic.id)
        ):
            time.sleep(0.05)
        assert clinic.patients() == before, "part of the killed import was written"
        assert clinic.audit("patients.import") == []

        # The master replaced the worker; the same server imports normally again.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and server.worker_pids() in ([], [worker]):
            time.sleep(0.1)
        assert server.worker_pids() and worker not in server.worker_pids()
        small = multipart("Nombre,Teléfono\r\nDespués Bien,77001100\r\n".encode(), boundary)
        status, _, answer = server.request(
            "POST",
            "/api/patients/import",
            body=small,
            headers={
                **clinic.headers(),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            timeout=30,
        )
        assert status == 200, answer
    assert len(clinic.patients()) == len(before) + 1
