"""PostgreSQL goes away under load and comes back: a live gunicorn on a throwaway cluster of its own.

While it is down every answer is a prompt 503 SERVICE_UNAVAILABLE with Retry-After (no hang, no
500); once it is back, the same gunicorn (no restart) serves 200s again within seconds.
"""

import http.client
import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers import Clinic, database_cluster
from tests.live import LiveServer, report

pytestmark = pytest.mark.slow

CLIENTS = 8
OUTAGE_SECONDS = 3.0
# Pool wait (3 s) + one connect attempt (3 s) + slack for a busy machine: no request may take longer.
WORST_ANSWER_SECONDS = 10.0
RECOVERY_BOUND_SECONDS = 15.0


@pytest.fixture
def own_cluster():
    cluster = database_cluster("pgo-")
    yield cluster
    cluster.destroy()


def test_database_outage_is_503_then_recovers(own_cluster, config, app, request):
    with psycopg.connect(own_cluster.url, autocommit=True, row_factory=dict_row) as sql:
        clinic = Clinic(sql, app.extensions["dui_keys"])
        clinic.add_patient("Durante Caída", "+50376665555")
        headers = clinic.headers()

    server = LiveServer({**config, "DATABASE_URL": own_cluster.url}, workers=1, threads=4)
    with server:
        results, lock = [], threading.Lock()  # (time sent, status, seconds, retry-after)
        stop = threading.Event()

        def client_loop():
            while not stop.is_set():
                sent = time.monotonic()
                conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
                try:
                    conn.request("GET", "/api/patients", headers=headers)
                    response = conn.getresponse()
                    response.read()
                    row = (
                        sent,
                        response.status,
                        time.monotonic() - sent,
                        response.getheader("Retry-After"),
                        response.getheader("Content-Type"),
                    )
                except (OSError, http.client.HTTPException) as exc:
                    row = (sent, type(exc).__name__, time.monotonic() - sent, None, None)
                finally:
                    conn.close()
                with lock:
                    results.append(row)
                time.sleep(0.02)

        threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            down_at = time.monotonic()
            own_cluster.stop("fast")
            time.sleep(OUTAGE_SECONDS)
            first_503 = next((r[0] + r[2] for r in results if r[1] == 503), None)
            own_cluster.start(fsync=False)
            up_at = time.monotonic()
            recovered_at = None
            while time.monotonic() < up_at + RECOVERY_BOUND_SECONDS:
                with lock:
                    recovered_at = next(
                        (r[0] for r in results if r[0] >= up_at and r[1] == 200), None
                    )
                if recovered_at:
                    break
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=WORST_ANSWER_SECONDS + 5)
        log = server.log()

    statuses = [r[1] for r in results]
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert 500 not in statuses and not any(isinstance(s, str) for s in statuses), (
        sorted(set(map(str, statuses))),
        log[-2000:],
    )
    assert set(statuses) <= {200, 503}
    unavailable = [r for r in results if r[1] == 503]
    assert unavailable, "the outage was never noticed"
    assert all(r[3] and r[3].isdigit() for r in unavailable), "503 without Retry-After"
    assert all(r[4].startswith("application/json") for r in unavailable)
    assert first_503 is not None and first_503 - down_at < WORST_ANSWER_SECONDS
    slowest = max(r[2] for r in results)
    assert slowest < WORST_ANSWER_SECONDS, f"a request took {slowest:.1f} s"
    assert recovered_at is not None, "no 200 within the bound after PostgreSQL came back"
    recovery = recovered_at - up_at
    ok_after = [r for r in results if r[0] > recovered_at + 0.3]
    assert ok_after and all(r[1] == 200 for r in ok_after), "recovery did not hold"
    report(
        request,
        f"outage: {len(results)} requests; down {OUTAGE_SECONDS:.0f} s -> first 503 after "
        f"{first_503 - down_at:.2f} s, {len(unavailable)} x 503 (slowest answer {slowest:.2f} s), "
        f"0 x 500; 200 again {recovery:.2f} s after PostgreSQL was back, same gunicorn",
    )


def test_timeouts_bound_a_slow_request(app):
    """The limits the README promises are the ones a request's connection really has."""
    pool = app.extensions["pool"]
    assert pool.timeout <= 3
    with pool.connection() as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[name]
            for name in ("statement_timeout", "idle_in_transaction_session_timeout")
        }
    assert settings == {"statement_timeout": "30s", "idle_in_transaction_session_timeout": "1min"}
    assert pool.kwargs["connect_timeout"] <= 3
