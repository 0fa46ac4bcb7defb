"""nginx in front of a bench gunicorn, for the worker-model figures (sync vs gthread).

It runs the deployment's own `deploy/nginx.conf` when the repository has it, with only the
upstream, the listening port, the user and the host paths (pid, logs, temp folders) replaced, as
tests/nginx_proxy.py does; without it, MINIMAL below, which keeps the settings that matter to the
worker model: request and response buffering on (the defaults), keep-alive connections to
gunicorn, and the export streamed unbuffered (so a slow download holds a gunicorn worker or
thread for as long as the client takes, exactly as in production).
"""

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.live import ROOT, free_port

DEPLOY_CONFIG = ROOT / "deploy" / "nginx.conf"

MINIMAL = """
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path /var/lib/nginx/body;
    proxy_temp_path /var/lib/nginx/proxy;
    fastcgi_temp_path /var/lib/nginx/fastcgi;
    uwsgi_temp_path /var/lib/nginx/uwsgi;
    scgi_temp_path /var/lib/nginx/scgi;
    log_format patients '$remote_addr "$request_method $uri" $status $request_time';
    access_log /var/log/nginx/patients-access.log patients;
    keepalive_timeout 15s;
    client_max_body_size 6m;
    upstream patients_api {
        server 127.0.0.1:8000;
        keepalive 16;
        keepalive_timeout 4s;
    }
    server {
        listen 8080;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        location / { proxy_pass http://patients_api; }
        location = /api/patients/export {
            proxy_pass http://patients_api;
            proxy_buffering off;
            proxy_read_timeout 600s;
        }
    }
}
"""


def substitutions(upstream: str, listen: str, user: str | None) -> list[tuple[str, str]]:
    paths = [
        (r"^(\s*)pid\s+\S+;.*$", r"\1pid nginx.pid;"),
        (r"^(\s*)error_log\s+\S+(\s+\w+;).*$", r"\1error_log logs/error.log\2"),
        (r"^(\s*)access_log\s+\S+\s+patients;.*$", r"\1access_log logs/access.log patients;"),
    ] + [
        (rf"^(\s*){kind}_temp_path\s+\S+;.*$", rf"\1{kind}_temp_path temp/{kind};")
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    return [
        (r"^(\s*)server 127\.0\.0\.1:8000;", rf"\1server {upstream};"),
        (r"^(\s*)listen 8080;", rf"\1listen {listen};"),
        (r"^(\s*)user\s+\S+;.*$", rf"\1user {user};" if user else ""),
        *paths,
    ]


class Nginx:
    def __init__(self, upstream_port: int, source: str | None = None):
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if source is not None:
            self.which = "a given config"
        elif DEPLOY_CONFIG.exists():
            source, self.which = DEPLOY_CONFIG.read_text(), "deploy/nginx.conf"
        else:
            source, self.which = MINIMAL, "bench/proxy.py's minimal config (no deploy/nginx.conf)"
        self.source = source
        self.upstream = f"127.0.0.1:{upstream_port}"
        self.port = free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.process = None

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK))

    def config(self) -> str:
        text = self.source
        user = getpass.getuser() if os.geteuid() == 0 else None
        for pattern, replacement in substitutions(self.upstream, f"127.0.0.1:{self.port}", user):
            text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
            if count != 1:
                raise RuntimeError(f"nginx config: {pattern!r} matched {count} times, not once")
        return "daemon off;\n" + text

    def __enter__(self):
        for folder in ("logs", "temp"):
            (self.prefix / folder).mkdir(exist_ok=True)
        path = self.prefix / "nginx.conf"
        path.write_text(self.config())
        command = [self.binary, "-p", f"{self.prefix}/", "-c", str(path)]
        with open(self.prefix / "logs" / "stderr.log", "ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited early; see {self.prefix}/logs")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("nginx did not start listening")

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        shutil.rmtree(self.prefix, ignore_errors=True)
