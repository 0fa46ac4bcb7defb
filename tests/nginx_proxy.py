"""Debian's nginx, running deploy/nginx.conf, in front of a test's gunicorn.

    with NginxProxy(upstream_port) as proxy:
        status, headers, body = proxy.request("GET", "/healthz")

The proxy runs a generated copy of `deploy/nginx.conf` in a temporary prefix (`nginx -p <dir> -c
<dir>/nginx.conf`, `daemon off`, its own process group), with exactly these lines replaced: the
upstream's `server 127.0.0.1:8000` (the test's gunicorn), `listen 8080` (a free loopback port),
`user` (the test's own user), and the lines marked "host path" (pid, logs, temp folders: inside the
prefix; the log levels stay). Everything else, every limit, timeout and error page, is the shipped
file. A replaced
line that is no longer in the file fails loudly, so the tested copy never drifts from the real one.

`http_server` (a module fixture) is the module's live gunicorn twice: once direct, once through
the proxy, so a test written against `live_server` runs both ways by taking it instead.

Without an nginx binary the tests that need one are skipped with the reason (`.ci/run` installs
Debian's `nginx-light`). The proxy is always stopped.
"""

import getpass
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.live import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "nginx.conf"
CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)


def require_nginx() -> str:
    """The nginx binary, or skip the calling test (or fixture) saying why."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip(
            "nginx is not installed (apt-get install nginx-light; .ci/run does it): "
            "the tests through deploy/nginx.conf need it"
        )
    return binary


def nginx_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stderr or out.stdout).strip()


# (pattern, replacement, how many times it must match). Paths are relative: nginx resolves them
# against the prefix given with -p.
def substitutions(upstream: str, listen: str, user: str | None) -> list[tuple[str, str, int]]:
    host_paths = [
        (r"^(\s*)pid\s+\S+;.*$", r"\1pid nginx.pid;", 1),
        (r"^(\s*)error_log\s+\S+(\s+\w+;).*$", r"\1error_log logs/error.log\2", 1),
        (r"^(\s*)access_log\s+\S+\s+patients;.*$", r"\1access_log logs/access.log patients;", 1),
    ] + [
        (rf"^(\s*){kind}_temp_path\s+\S+;.*$", rf"\1{kind}_temp_path temp/{kind};", 1)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    return [
        (r"^(\s*)server 127\.0\.0\.1:8000;", rf"\1server {upstream};", 1),
        (r"^(\s*)listen 8080;", rf"\1listen {listen};", 1),
        # Root starts workers as `user`; anyone else cannot switch and must not name one.
        (r"^(\s*)user\s+\S+;.*$", rf"\1user {user};" if user else "", 1),
        *host_paths,
    ]


def generate_config(upstream: str, listen: str, user: str | None, source: str | None = None) -> str:
    text = CONFIG.read_text() if source is None else source
    for pattern, replacement, expected in substitutions(upstream, listen, user):
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        if count != expected:
            raise AssertionError(
                f"deploy/nginx.conf changed: {pattern!r} matched {count} times, not {expected}; "
                "update tests/nginx_proxy.py with it"
            )
    # The test owns the process: in the foreground, stopped by signal, never a system service.
    return "daemon off;\n" + text


class NginxProxy:
    """nginx on 127.0.0.1:<free port>, in front of 127.0.0.1:<upstream_port>."""

    def __init__(
        self, upstream_port: int, *, upstream_host: str = "127.0.0.1", source: str | None = None
    ):
        """`source`: a variant of deploy/nginx.conf's text, for a test that shows what one of its
        settings does by running without it (the substitutions still apply)."""
        self.binary = require_nginx()
        self.source = source
        self.upstream = f"{upstream_host}:{upstream_port}"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.url = f"http://{self.host}:{self.port}"
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.config_path = self.prefix / "nginx.conf"
        self.process: subprocess.Popen | None = None

    @property
    def version(self) -> str:
        return nginx_version(self.binary)

    def start(self, timeout: float = 15) -> "NginxProxy":
        for folder in ("logs", "temp"):
            (self.prefix / folder).mkdir(exist_ok=True)
        user = getpass.getuser() if os.geteuid() == 0 else None
        self.config_path.write_text(
            generate_config(self.upstream, f"{self.host}:{self.port}", user, self.source)
        )
        command = [self.binary, "-p", f"{self.prefix}/", "-c", str(self.config_path)]
        check = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the generated config:\n{check.stderr}")
        with open(self.prefix / "logs" / "stderr.log", "ab") as stderr:
            self.process = subprocess.Popen(
                command, stdout=stderr, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited early:\n{self.error_log()[-3000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start listening:\n{self.error_log()[-3000:]}")

    def stop(self) -> None:
        # SIGTERM is nginx's fast shutdown (SIGQUIT its graceful one); tests need fast.
        stop_process(self.process, timeout=10)

    def __enter__(self) -> "NginxProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)

    # -- reading what nginx wrote --------------------------------------------------------------
    def error_log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.prefix / "logs" / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def access_log(self) -> list[dict]:
        """The access log's JSON lines (nginx writes each line as the request ends)."""
        path = self.prefix / "logs" / "access.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -- the same client helpers as tests.live.LiveServer, so a test can take either -----------
    def request(self, method, path, body=None, headers=None, timeout=10.0, source=None):
        """(status, headers with lower-case names, body bytes) over a fresh connection.

        `source`: the client's own loopback address (e.g. "127.0.0.2"), so a test can tell the
        address nginx saw from nginx's own 127.0.0.1.
        """
        conn = http.client.HTTPConnection(
            self.host, self.port, timeout=timeout, source_address=(source, 0) if source else None
        )
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

    def json(self, method, path, body=None, headers=None, timeout=10.0, source=None):
        status, heads, raw = self.request(method, path, body, headers, timeout, source)
        return status, heads, json.loads(raw) if raw else None

    def raw(self, data: bytes, timeout: float = 10.0) -> bytes:
        """Send bytes as they are and read the whole answer (until nginx closes)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


class Proxied:
    """A live gunicorn reached through nginx: LiveServer's interface, the requests going via nginx.

    `log()` is everything both layers wrote (gunicorn's output, nginx's access and error logs), so
    a test that reads the log checks what a deployment keeps; anything else (worker_pids(), ...)
    is the gunicorn's.
    """

    def __init__(self, server, proxy: NginxProxy):
        self.server, self.proxy = server, proxy
        self.host, self.port, self.url = proxy.host, proxy.port, proxy.url
        self.request, self.json, self.raw = proxy.request, proxy.json, proxy.raw

    def log(self) -> str:
        logs = self.proxy.prefix / "logs"
        nginx = [logs / "access.log", logs / "error.log"]
        return "\n".join(
            [self.server.log(), *(p.read_text(errors="replace") for p in nginx if p.exists())]
        )

    def __getattr__(self, name):
        return getattr(self.server, name)


@pytest.fixture(scope="module", params=["direct", "nginx"])
def http_server(request, live_server):
    """The module's live gunicorn, once directly and once through deploy/nginx.conf."""
    if request.param == "direct":
        yield live_server
        return
    require_nginx()
    with NginxProxy(live_server.port) as proxy:
        yield Proxied(live_server, proxy)
