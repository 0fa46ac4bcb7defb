"""The load driver: latency over keep-alive HTTP, throughput (wrk when installed, else threads),
a streamed export and a multipart import, and the same work on plain PostgreSQL.
"""

import http.client
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from bench import HERE
from bench.service import vm_hwm_kb
from patients.config import bench_settings


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)  # seconds

    def p(self, q: float) -> float:
        ordered = sorted(self.samples)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def p99(self) -> float:
        return self.p(0.99)


class HttpClient:
    """One keep-alive connection, as a browser tab or a script would hold."""

    def __init__(self, port: int, token: str, headers: dict | None = None):
        """`headers` instead of a token: the bare reference app takes its clinic in X-Clinic-Id."""
        self.port, self.token = port, token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.headers |= headers or {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            return self._get(path)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # gunicorn closes a keep-alive connection idle for 5 s (while the other side was
            # measured); a browser reconnects too. Warm-ups run first, so no timed request does.
            self.conn.close()
            return self._get(path)

    def _get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self):
        self.conn.close()


def latency(call, count: int, warmup: int, desc: str) -> Timing:
    """`call()` once per request, sequentially; it raises on a wrong answer."""
    for _ in range(warmup):
        call()
    timing = Timing()
    for _ in tqdm(range(count), desc=desc, unit="req", leave=False):
        started = time.perf_counter()
        call()
        timing.samples.append(time.perf_counter() - started)
    return timing


def latency_pair(ours, plain, count: int, warmup: int, desc: str) -> tuple[Timing, Timing]:
    """Both sides in turn, request by request: a load that comes and goes on the shared cores
    weighs on both alike, and the keep-alive connection never sits idle long enough to close.
    Which side goes first alternates, so neither always follows the other (a commit's WAL flush
    waits for the one before it)."""
    for _ in range(warmup):
        ours()
        plain()
    a, b = Timing(), Timing()
    for index in tqdm(range(count), desc=desc, unit="pair", leave=False):
        first, second = ((ours, a), (plain, b)) if index % 2 == 0 else ((plain, b), (ours, a))
        started = time.perf_counter()
        first[0]()
        middle = time.perf_counter()
        second[0]()
        first[1].samples.append(middle - started)
        second[1].samples.append(time.perf_counter() - middle)
    return a, b


def http_call(client: HttpClient, path: str, check=None):
    def call():
        status, body = client.get(path)
        if status != 200:
            raise RuntimeError(f"GET {path.split('?')[0]} answered {status}: {body[:200]!r}")
        if check:
            check(body)

    return call


# -- throughput -----------------------------------------------------------------------------


@dataclass
class Throughput:
    requests: int
    errors: int
    seconds: float
    tool: str
    p50: float = float("nan")
    p99: float = float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @classmethod
    def combined(cls, rounds: list["Throughput"]) -> "Throughput":
        return cls(
            sum(r.requests for r in rounds),
            sum(r.errors for r in rounds),
            sum(r.seconds for r in rounds),
            rounds[0].tool,
            statistics.median(r.p50 for r in rounds),
            max(r.p99 for r in rounds),
        )


def throughput(
    port: int,
    path: str,
    token: str,
    clients: int,
    seconds: float,
    tool: str = "auto",
    headers: dict | None = None,
) -> Throughput:
    headers = ({"Authorization": f"Bearer {token}"} if token else {}) | (headers or {})
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk")):
        return throughput_wrk(port, path, headers, clients, seconds)
    return throughput_threads(port, path, headers, clients, seconds)


WRK_RATE = re.compile(r"(\d+) requests in ([\d.]+)(m?s)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_PCT = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def throughput_wrk(port, path, headers, clients, seconds) -> Throughput:
    """wrk (C, one thread): the client takes little of the two cores the server needs."""
    with tqdm(total=int(seconds), desc=f"wrk {path.split('?')[0]}", unit="s", leave=False) as bar:
        process = subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{clients}",
                f"-d{int(seconds)}s",
                "--latency",
                "--timeout",
                "10s",
                *(arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")),
                f"http://127.0.0.1:{port}{path}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        while process.poll() is None and bar.n < bar.total:
            time.sleep(1)
            bar.update(1)
        out, _ = process.communicate()
    match = WRK_RATE.search(out)
    if process.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed:\n{out}")
    errors = sum(int(m) for m in (WRK_NON2XX.findall(out)))
    socket_errors = WRK_SOCKET.search(out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    elapsed = float(match[2]) * (1 if match[3] == "s" else 1e-3)
    pct = {q: float(v) * UNIT[u] for q, v, u in WRK_PCT.findall(out)}
    return Throughput(
        int(match[1]),
        errors,
        elapsed,
        "wrk",
        pct.get("50", float("nan")),
        pct.get("99", float("nan")),
    )


def throughput_threads(port, path, headers, clients, seconds) -> Throughput:
    """Fallback without wrk: Python threads, one keep-alive connection each."""
    deadline = time.monotonic() + seconds
    counts, lock = Counter(), threading.Lock()
    samples = []

    def worker():
        client = HttpClient(port, "", headers)
        mine, local = Counter(), []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                status, _ = client.get(path)
            except (OSError, http.client.HTTPException):
                mine["error"] += 1
                client.close()
                client = HttpClient(port, "", headers)
                continue
            local.append(time.perf_counter() - started)
            mine["ok" if status == 200 else "error"] += 1
        client.close()
        with lock:
            counts.update(mine)
            samples.extend(local)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    timing = Timing(samples)
    return Throughput(
        counts["ok"] + counts["error"], counts["error"], elapsed, "python", timing.p50, timing.p99
    )


# -- export and import over HTTP ------------------------------------------------------------


@dataclass
class Transfer:
    seconds: float
    status: int
    body_bytes: int
    lines: int
    body: bytes = b""  # the answer to an import (small); exports are counted, not kept


def stream_get(port: int, path: str, token: str) -> Transfer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    size = lines = 0
    first = b""
    while chunk := response.read(1 << 16):
        if not first:
            first = chunk[:2000]
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    conn.close()
    return Transfer(elapsed, response.status, size, lines, first if response.status != 200 else b"")


def post_file(port: int, path: str, token: str, filename: str, data: bytes) -> Transfer:
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode(),
            b"Content-Type: text/csv\r\n\r\n",
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    conn.request(
        "POST",
        path,
        body=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    response = conn.getresponse()
    answer = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return Transfer(elapsed, response.status, len(body), 0, answer)


# -- plain PostgreSQL through psql ----------------------------------------------------------

PSQL = bench_settings()["psql"]
PSQL_SCRIPTS = HERE / "psql"


@dataclass
class PsqlRun:
    seconds: float
    peak_rss_mb: float
    out_bytes: int
    lines: int


def psql(url: str, script: str, variables: dict, stdin: Path | None = None) -> PsqlRun:
    """Run bench/psql/<script> with psql; time, psql's own peak RSS (wait4), what it printed."""
    args = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(PSQL_SCRIPTS / script)]
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    source = stdin.open("rb") if stdin else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen(args, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = PeakWatcher(process.pid)
    size = lines = 0
    while chunk := process.stdout.read(1 << 16):
        size += len(chunk)
        lines += chunk.count(b"\n")
    errors = process.stderr.read()
    process.wait()
    elapsed = time.perf_counter() - started
    if stdin:
        source.close()
    if process.returncode != 0:
        raise RuntimeError(f"psql {script} failed: {errors.decode(errors='replace')[:500]}")
    return PsqlRun(elapsed, watcher.stop() / 1024, size, lines)


class PeakWatcher:
    """psql's own VmHWM, read while it runs (the peak only grows; wait4's ru_maxrss would count
    the forking Python's memory, inherited before the exec)."""

    def __init__(self, pid: int):
        self.pid, self.peak_kb, self.done = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self):
        while not self.done.is_set():
            peak = vm_hwm_kb(self.pid)
            if peak == 0 and self.peak_kb:
                return  # exited
            self.peak_kb = max(self.peak_kb, peak)
            self.done.wait(0.01)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak_kb


class SlowDownload:
    """A client reading a streamed answer slowly (a phone on a poor line), in a thread of its own.

    Its receive buffer is kept small, so what it has not read yet pushes back on the server (or
    on nginx, which streams the export unbuffered) instead of piling up in the kernel.
    """

    def __init__(self, port: int, path: str, token: str, bytes_per_second: int = 500_000):
        self.port, self.path, self.token = port, path, token
        self.chunk = 16 * 1024
        self.pause = self.chunk / bytes_per_second
        self.received = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.read, daemon=True)

    def __enter__(self) -> "SlowDownload":
        self.thread.start()
        time.sleep(0.5)  # under way (headers answered, rows flowing) before anything is measured
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def read(self) -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.chunk)
            sock.connect(("127.0.0.1", self.port))
            sock.sendall(
                f"GET {self.path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {self.token}"
                "\r\nConnection: close\r\n\r\n".encode()
            )
            while not self.stop.is_set():
                data = sock.recv(self.chunk)
                if not data:
                    return
                self.received += len(data)
                self.stop.wait(self.pause)


class RawClient:
    """One keep-alive connection that reads answers as bytes: the status and Content-Length are
    found, nothing else of the headers is parsed.

    http.client parses every header line in Python (the email package), some 10 µs each, and the
    service sends four more than a bare app (Cache-Control, X-Content-Type-Options, X-Request-ID,
    Vary): measured with it, the client's own parsing would count as the service's cost.
    """

    def __init__(self, port: int, headers: dict):
        self.port = port
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.head = f"Host: 127.0.0.1:{port}\r\n{lines}\r\n".encode()
        self.sock = None

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def get(self, path: str) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.sock is None:
                self.connect()
            try:
                return self._get(path)
            except (ConnectionError, OSError):
                # gunicorn closes a keep-alive connection idle for 5 s; reconnect once.
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _get(self, path: str) -> tuple[int, bytes]:
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        data = self.buffer
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv()
        head = data[:end]
        status = int(head[9:12])
        start = head.lower().find(b"\r\ncontent-length:")
        if start < 0:
            raise RuntimeError(f"GET {path}: no Content-Length in {head[:300]!r}")
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : stop if stop > 0 else None])
        body_start = end + 4
        while len(data) < body_start + length:
            data += self._recv()
        self.buffer = data[body_start + length :]
        return status, data[body_start : body_start + length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionResetError("closed by the server")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
