"""A live gunicorn for tests that need the real server (fuzzing, load, outages, killed workers).

    from tests.live import live_server  # noqa: F401  (the module-scoped fixture)

or `with LiveServer(config) as server: ...` for a server of one's own (another database, other
timeouts). It binds 127.0.0.1 on a free port, has no control socket, reads DATABASE_URL,
JWT_SECRET and DUI_KEYS from the test config, writes its output to a log file the test can read,
and is always stopped.
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
        self, config: dict, *, workers: int = 2, threads: int = 4, env: dict | None = None
    ):
        self.config = config
        self.workers, self.threads = workers, threads
        self.extra_env = env or {}
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "LiveServer":
        env = {
            **os.environ,
            "DATABASE_URL": self.config["DATABASE_URL"],
            "JWT_SECRET": self.config["JWT_SECRET"],
            "DUI_KEYS": self.config["DUI_KEYS"],
            "POOL_MAX_SIZE": str(self.config.get("POOL_MAX_SIZE", 4)),
            "WEB_CONCURRENCY": str(self.workers),
            "GUNICORN_THREADS": str(self.threads),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        env.pop("GUNICORN_CONTROL_SOCKET", None)
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
                    "app:create_app()",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()[-3000:]}")
            try:
                if self.request("GET", "/healthz", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)

    # -- helpers -------------------------------------------------------------------------
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The worker processes: children of the gunicorn master."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 4 (after the parenthesised command, which may hold spaces) is the parent pid.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid:
                pids.append(int(entry.name))
        return sorted(pids)

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
