"""The service under test, run as in production: gunicorn with gunicorn.conf.py, on a free port."""

import http.client
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "bench-" + secrets.token_hex(24)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """`app` is the WSGI target (the product, or the bench's framework floor)."""

    def __init__(self, app: str, env: dict, log_path: Path):
        self.app, self.log_path = app, log_path
        self.port = free_port()
        self.env = {**os.environ, **env, "JWT_SECRET": JWT_SECRET}
        self.env.pop("GUNICORN_CONTROL_SOCKET", None)
        self.process = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout: float = 30) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--no-control-socket",
                self.app,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=log,  # one JSON line per request: a pipe nobody reads would stall the workers
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early; see {self.log_path}")
            if len(self.worker_pids()) >= 1 and self._answers():
                # every worker up, so none is still importing during a measurement
                expected = int(self.env.get("WEB_CONCURRENCY", os.cpu_count() or 2))
                if len(self.worker_pids()) >= expected:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout} s; see {self.log_path}")

    def _answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def worker_pids(self) -> list[int]:
        if not self.process:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def peak_rss_mb(self) -> float:
        """The largest VmHWM (peak resident memory since start) among the workers, in MB."""
        peaks = [vm_hwm_kb(pid) for pid in self.worker_pids()]
        return max(peaks, default=0) / 1024

    def workers_rss_mb(self) -> float:
        return max((vm_rss_kb(pid) for pid in self.worker_pids()), default=0) / 1024


def _status_field(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def vm_hwm_kb(pid: int) -> int:
    return _status_field(pid, "VmHWM")


def vm_rss_kb(pid: int) -> int:
    return _status_field(pid, "VmRSS")
