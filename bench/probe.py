"""Where a fast request's time goes: the service, the bare reference and variants side by side.

    python -m bench.probe [--rounds N] [--variants nocheck,nolog,...]

Starts, on the bench's data set (bench/data/full, or --data-dir), the service, the bare Flask
reference (bench/bare_app.py) and the service with one known cost taken out at a time (the
variants below, built from the real app after create_app(): measurement only, never served),
then sends the four fast requests to each in turn, request by request over keep-alive
connections, so a load that comes and goes on the shared cores weighs on all of them alike.
Prints p50 and each one's ratio to the bare app. A profiling aid for bench/notes.md; `make bench`
(bench.run) is what measures the goals.
"""

import argparse
import http.client
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from bench import HERE, dataset
from bench.service import JWT_SECRET
from patients.ops.cli import mint_token
from tests.live import LiveServer

RARE = dataset.RARE_SURNAME.lower().replace("ó", "o")
PHONE = "5432-1"


# -- variants: the service with one cost removed ---------------------------------------------


def variant_app(*removed: str):
    """gunicorn target `bench.probe:variant_app('nocheck', 'nolog')`."""
    import app as product

    flask_app = product.create_app()
    for name in removed:
        VARIANTS[name](flask_app)
    return flask_app


def _no_check(flask_app):
    flask_app.extensions["pool"]._check = None  # psycopg_pool's attribute; measurement only


def _no_access_log(flask_app):
    logging.getLogger("patients.access").disabled = True


def _no_hooks(flask_app):
    """The request hooks gone (request id, access log, UTF-8 check, headers)."""
    flask_app.before_request_funcs.clear()
    flask_app.after_request_funcs.clear()


def _no_proxy_fix(flask_app):
    if hasattr(flask_app.wsgi_app, "app"):  # ProxyFix (TRUSTED_PROXIES) wraps Flask's wsgi_app
        flask_app.wsgi_app = flask_app.wsgi_app.app


def _no_log_line(flask_app):
    """The access line's record still made, never written (what writing it costs)."""
    logging.getLogger("patients.access").handle = lambda record: None


VARIANTS = {
    "nowrite": _no_log_line,
    "nocheck": _no_check,
    "nolog": _no_access_log,
    "nohooks": _no_hooks,
    "noproxyfix": _no_proxy_fix,
}


# -- the client ---------------------------------------------------------------------------------


class Client:
    def __init__(self, port: int, headers: dict):
        self.port, self.headers = port, headers
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> bytes:
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path, headers=self.headers)
                response = self.conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{self.port} {path}: {response.status} {body[:200]!r}")
                return body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data" / "full")
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--variants", default="nocheck,nolog,nohooks,noproxyfix")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers of each server")
    args = parser.parse_args(argv)

    cluster, layout = dataset.prepare(args.data_dir, dataset.FULL)
    big, patient = layout["big"], layout["record_patient"]
    env = {**dataset.service_env(cluster.url), "JWT_SECRET": JWT_SECRET}
    log = HERE / ".cache" / "probe.log"
    token = mint_token(JWT_SECRET, big, "admin", "bench", 2.0)
    service_headers = {"Authorization": f"Bearer {token}"}
    bare_headers = {"X-Clinic-Id": big}

    targets = [("service", "app:create_app()", service_headers)]
    targets.append(("bare", "bench.bare_app:create_app()", bare_headers))
    for name in filter(None, args.variants.split(",")):
        targets.append((f"-{name}", f"bench.probe:variant_app({name!r})", service_headers))
    if len(args.variants.split(",")) > 1:
        every = ", ".join(repr(n) for n in args.variants.split(",") if n != "nohooks")
        targets.append(("-all", f"bench.probe:variant_app({every})", service_headers))

    paths = {
        "healthz": "/healthz",
        "rare search": f"/api/patients?search={RARE}",
        "phone search": f"/api/patients?search={PHONE}",
        "admin record": f"/api/patients/{patient}",
    }
    servers = [
        LiveServer(app=target, env=env, workers=args.workers, log_path=log)
        for _, target, _ in targets
    ]
    try:
        for server in servers:
            server.start()
        clients = [
            Client(server.port, headers)
            for server, (_, _, headers) in zip(servers, targets, strict=True)
        ]
        bodies = {}
        for (name, _, _), client in zip(targets, clients, strict=True):
            for what, path in paths.items():
                body = client.get(path)
                bodies.setdefault(what, body)
                if body != bodies[what]:
                    raise RuntimeError(f"{name} answers {what} differently: {body[:300]!r}")
        samples = {(name, what): [] for name, _, _ in targets for what in paths}
        cpu = {}
        for what, path in paths.items():
            for _ in range(20):
                for client in clients:
                    client.get(path)
            before = [cpu_seconds(server) for server in servers]
            for _ in range(args.rounds):
                for (name, _, _), client in zip(targets, clients, strict=True):
                    started = time.perf_counter()
                    client.get(path)
                    samples[(name, what)].append(time.perf_counter() - started)
            for (name, _, _), server, spent in zip(targets, servers, before, strict=True):
                cpu[(name, what)] = (cpu_seconds(server) - spent) / args.rounds
        print(f"p50 in ms over {args.rounds} rounds (ratio to bare); load {load()}")
        header = f"{'':14}" + "".join(f"{name:>17}" for name, _, _ in targets)
        print(header)
        for what in paths:
            bare = statistics.median(samples[("bare", what)])
            cells = []
            for name, _, _ in targets:
                p50 = statistics.median(samples[(name, what)])
                cells.append(f"{p50 * 1000:7.3f} ({p50 / bare:4.2f})")
            print(f"{what:14}" + "".join(f"{c:>17}" for c in cells))
        print("worker CPU per request in ms (user + system, from /proc), ratio to bare")
        for what in paths:
            bare = cpu[("bare", what)]
            cells = [
                f"{cpu[(name, what)] * 1000:7.3f} ({cpu[(name, what)] / bare:4.2f})"
                for name, _, _ in targets
            ]
            print(f"{what:14}" + "".join(f"{c:>17}" for c in cells))
    finally:
        for server in servers:
            server.stop()
    return 0


def cpu_seconds(server) -> float:
    """User + system time of the server's workers so far (clock ticks of /proc/<pid>/stat)."""
    total = 0
    for pid in server.worker_pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
