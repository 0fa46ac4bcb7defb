"""A bounded load run against a live gunicorn: concurrent clients list, search and read records
for a while; every answer is a 200, and the latency percentiles are printed.

LOAD_SECONDS (default 8) and LOAD_CLIENTS (default 30) make it longer or wider, e.g.
`LOAD_SECONDS=60 LOAD_CLIENTS=50 .venv/bin/python -m pytest tests/test_load.py`.
"""

import http.client
import os
import random
import statistics
import threading
import time

import pytest

from tests.live import report

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("LOAD_SECONDS", "8"))
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "30"))
NAMES = ["Ana", "Luis", "María", "José", "Pérez", "Gómez", "López", "Díaz", "Rivas", "Cruz"]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_load_is_held_without_errors(live_server, make_clinic, sql, request):
    clinic = make_clinic()
    rows = [
        (clinic.id, f"{random.choice(NAMES)} {random.choice(NAMES)} {i}", f"+5037{i:07d}")
        for i in range(2000)
    ]
    with sql.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO patients (clinic_id, full_name, phone) VALUES (%s, %s, %s)", rows
        )
    ids = [
        r["id"]
        for r in sql.execute(
            "SELECT id::text FROM patients WHERE clinic_id = %s LIMIT 200", (clinic.id,)
        )
    ]
    headers = {**clinic.headers("staff"), "Connection": "keep-alive"}
    paths = [
        lambda: "/api/patients?limit=50",
        lambda: f"/api/patients?page={random.randint(1, 40)}",
        lambda: (
            f"/api/patients?search={random.choice(['ana', 'perez', 'gomez', '7000', 'lopez 1'])}"
        ),
        lambda: f"/api/patients/{random.choice(ids)}",
    ]

    latencies, failures, lock = [], [], threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client_loop():
        conn = http.client.HTTPConnection(live_server.host, live_server.port, timeout=15)
        mine, bad = [], []
        while time.monotonic() < deadline:
            path = random.choice(paths)().replace(" ", "%20")
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                bad.append(f"{path}: {type(exc).__name__}")
                conn.close()
                conn = http.client.HTTPConnection(live_server.host, live_server.port, timeout=15)
                continue
            mine.append(time.perf_counter() - started)
            if status != 200:
                bad.append(f"{path}: {status}")
        conn.close()
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 30)
    elapsed = time.monotonic() - started

    assert not any(t.is_alive() for t in threads), "a client hung"
    assert failures == [], failures[:10]
    assert len(latencies) > CLIENTS  # every client got answers
    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    report(
        request,
        f"load: {len(latencies)} requests from {CLIENTS} clients in {elapsed:.1f} s "
        f"({len(latencies) / elapsed:.0f}/s), 0 errors, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(latencies) * 1000:.0f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms",
    )
