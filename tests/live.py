"""A live gunicorn, run as in production (gunicorn.conf.py), for tests and the bench.

A pytest plugin (tests/conftest.py lists it in `pytest_plugins`): the module-scoped `live_server`
fixture serves the test database. `with LiveServer(config) as server: ...` gives a server of one's
own (another database, other timeouts), and `LiveServer(app="bench.floor:create_app()",
env={...})` serves any WSGI target (the bench's floors). It binds 127.0.0.1 on a free port, has
no control socket, writes its output to a log file, and is always stopped.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(
        self,
        config: dict | None = None,
        *,
        app: str = "app:create_app()",
        workers: int = 2,
        threads: int = 4,
        env: dict | None = None,
        log_path: Path | None = None,
    ):
        self.app = app
        self.workers, self.threads = workers, threads
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if config is not None:
            self.env |= {
                "DATABASE_URL": config["DATABASE_URL"],
                "JWT_SECRET": config["JWT_SECRET"],
                "DUI_KEYS": config["DUI_KEYS"],
                "POOL_MAX_SIZE": str(config.get("POOL_MAX_SIZE", 4)),
            }
        self.env |= {"WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": str(threads)}
        self.env |= env or {}
        self.env.pop("GUNICORN_CONTROL_SOCKET", None)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self.own_log = log_path is None
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "LiveServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    str(ROOT / "gunicorn.conf.py"),
                    "--bind",
                    f"{self.host}:{self.port}",
                    "--no-control-socket",
                    self.app,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,  # one JSON line per request: never a pipe nobody reads
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()[-3000:]}")
            # Every worker up and answering, so none is still importing during a measurement.
            if len(self.worker_pids()) >= self.workers and self.answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log()[-3000:]}")

    def answers(self) -> bool:
        try:
            return self.request("GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process, timeout=25)

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.own_log:
            self.log_path.unlink(missing_ok=True)

    # -- helpers -------------------------------------------------------------------------
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The worker processes: children of the gunicorn master."""
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return sorted(int(pid) for pid in children.read_text().split())
        except OSError:
            return []

    def peak_rss_mb(self) -> float:
        """The largest VmHWM (peak resident memory since start) among the workers, in MB."""
        return max((status_kb(pid, "VmHWM") for pid in self.worker_pids()), default=0) / 1024

    def workers_rss_mb(self) -> float:
        return max((status_kb(pid, "VmRSS") for pid in self.worker_pids()), default=0) / 1024

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """(status, headers as a dict with lower-case names, body bytes) over a fresh connection."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, timeout=10.0):
        status, heads, raw = self.request(method, path, body, headers, timeout)
        return status, heads, json.loads(raw) if raw else None


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL to its whole process group if it has not gone within `timeout`."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def status_kb(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure in kB (VmHWM, VmRSS), or 0 for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def report(request, line: str) -> None:
    """Print a figure (requests made, percentiles) in the test run's output, even when captured."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="module")
def live_server(config):
    with LiveServer(config) as server:
        yield server
