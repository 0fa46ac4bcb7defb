"""`python -m bench.run [--quick]`: the Patients API against plain PostgreSQL doing the same work.

Builds (or reuses) the data set, starts gunicorn on it, measures each figure on both sides in the
same run, and writes one table to bench/results.md (--quick: a tiny data set, written under
bench/.cache/ unless --out says otherwise; the test suite runs it so the bench never rots).
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

from psycopg_pool import ConnectionPool

from bench import HERE, bench_queries, dataset, load, report, scale
from bench.report import Row, latency_row, latency_text, ms
from bench.service import JWT_SECRET, Gunicorn, LiveServer
from patients import search
from patients.db import make_pool
from patients.ops.cli import mint_token
from patients.repository import queries
from tests.nginx_proxy import NginxProxy, nginx_binary

RARE = dataset.RARE_SURNAME.lower().replace("ó", "o")  # typed without the accent, as people do
COMMON = "mar"
PHONE = "5432-1"  # a phone fragment as people type it; the view searches its digits
LATENCY_TARGET = 1.5
# Against the bare Flask app on the same gunicorn running the same SQL (bench/bare_app.py).
BARE_LATENCY_TARGET = 1.10
BARE_THROUGHPUT_TARGET = 0.9
EXPORT_TARGET = 1.5
IMPORT_TARGET = 1.5
# Memory "flat": the worker's peak grows by less than this while exporting the biggest clinic.
FLAT_EXPORT_MB = 32
BOM = b"\xef\xbb\xbf"


@contextlib.contextmanager
def step(title: str):
    started = time.monotonic()
    print(f"== {title}", flush=True)
    yield
    print(f"   {title}: {time.monotonic() - started:.1f} s", flush=True)


def list_params(clinic_id: str, term: str | None, page: int = 1, limit: int = 50) -> dict:
    """The parameters patients/records.py's list view passes for this request."""
    params = {
        "clinic_id": clinic_id,
        "blocked": None,
        "page": page,
        "limit": limit,
        "offset": (page - 1) * limit,
    }
    if term is not None:
        params.update(search.parameters(term))
    return params


def list_path(term: str | None, page: int = 1) -> str:
    query = {}
    if term is not None:
        query["search"] = term
    if page != 1:
        query["page"] = page
    return "/api/patients" + ("?" + urlencode(query) if query else "")


class Plain:
    """Plain PostgreSQL: the product's named queries on a pool made exactly like the service's."""

    def __init__(self, url: str):
        self.pool: ConnectionPool = make_pool(url, max_size=1)
        self.pool.wait()

    def list_body(self, clinic_id, term, page=1) -> str:
        with self.pool.connection() as conn:
            if term is None:
                row = queries.list_patients(conn, **list_params(clinic_id, term, page))
            elif search.narrowed_by_trigrams(term):
                row = queries.search_patients(conn, **list_params(clinic_id, term, page))
            else:  # as the view: no trigram narrows a short term
                row = queries.search_patients_short_term(conn, **list_params(clinic_id, term, page))
        return row["body"]

    def record(self, clinic_id, patient_id) -> dict:
        """As staff reads it (no reveal, so no audit row): the view's one statement."""
        with self.pool.connection() as conn:
            return queries.get_patient_record(
                conn,
                clinic_id=clinic_id,
                patient_id=patient_id,
                reveal=False,
                actor_id="bench",
                actor_role="staff",
                request_id=None,
                client_ip=None,
            )

    def close(self):
        self.pool.close()


class Bench:
    def __init__(self, args, cluster, layout):
        self.args, self.cluster, self.layout = args, cluster, layout
        self.quick = args.quick
        self.rows: list[Row] = []
        self.explains: list[tuple[str, str]] = []
        self.url = cluster.url
        # Quick runs keep everything beside their own cluster (a test's temporary folder).
        self.cache = args.data_dir if self.quick else HERE / ".cache"
        self.log = self.cache / "gunicorn.log"
        self.tokens = {}

    def token(self, clinic_id: str, role: str = "staff") -> str:
        if (clinic_id, role) not in self.tokens:
            self.tokens[(clinic_id, role)] = mint_token(JWT_SECRET, clinic_id, role, "bench", 2.0)
        return self.tokens[(clinic_id, role)]

    def n(self, full: int) -> int:
        return max(5, full // 20) if self.quick else full

    # -- latency figures ---------------------------------------------------------------------
    def latency_pair(self, what, section, clinic_id, term, page, count, client, plain) -> Row:
        path = list_path(term, page)
        expected = json.loads(plain.list_body(clinic_id, term, page))
        status, body = client.get(path)
        if status != 200 or json.loads(body) != expected:
            raise RuntimeError(
                f"{what}: the service and plain PostgreSQL disagree (status {status}); "
                "bench/run.py list_params() no longer mirrors the view?"
            )
        ours, theirs = load.latency_pair(
            load.http_call(client, path),
            lambda: plain.list_body(clinic_id, term, page),
            count,
            warmup=5,
            desc=what,
        )
        return latency_row(
            section,
            what,
            ours,
            theirs,
            count,
            LATENCY_TARGET,
            judged=section == "main",
            matches=expected["total"],
        )

    def latencies(self, port: int, plain: Plain) -> None:
        big = self.layout["big"]
        client = load.HttpClient(port, self.token(big))
        figures = [
            (f"search, rare name (`{RARE}`), big clinic", RARE, 1, self.n(300)),
            (f"search, common fragment (`{COMMON}`), big clinic", COMMON, 1, self.n(60)),
            (f"search, phone fragment (`{PHONE}`), big clinic", PHONE, 1, self.n(300)),
            ("first page, no search, big clinic", None, 1, self.n(100)),
            ("page 1,000, no search, big clinic", None, self.page_far(), self.n(60)),
        ]
        for what, term, page, count in figures:
            row = self.latency_pair(what, "main", big, term, page, count, client, plain)
            row.what += f" — {row.values['matches']:,} matches" if term is not None else ""
            self.rows.append(row)
        self.rows.append(self.record_latency(client, plain))
        client.close()

    def page_far(self) -> int:
        return 1000 if not self.quick else 20

    def record_latency(self, client, plain) -> Row:
        big, patient = self.layout["big"], self.layout["record_patient"]
        count = self.n(300)
        path = f"/api/patients/{patient}"

        def check(body):
            if len(json.loads(body)["appointments"]) != self.layout["record_appointments"]:
                raise RuntimeError("the full record lacks appointments")

        ours, theirs = load.latency_pair(
            load.http_call(client, path, check),
            lambda: plain.record(big, patient),
            count,
            5,
            "full record",
        )
        return latency_row(
            "main",
            f"full record with {self.layout['record_appointments']} appointments (staff)",
            ours,
            theirs,
            count,
            LATENCY_TARGET,
        )

    def growth_search(self, port: int, plain: Plain) -> None:
        for size, clinic_id in self.growth_clinics():
            client = load.HttpClient(port, self.token(clinic_id))
            for term, count in ((RARE, self.n(100)), (COMMON, self.n(30))):
                row = self.latency_pair(
                    f"search `{term}`, {size:,} patients",
                    "growth",
                    clinic_id,
                    term,
                    1,
                    count,
                    client,
                    plain,
                )
                row.what += f" — {row.values['matches']:,} matches"
                row.target = ""
                self.rows.append(row)
            client.close()

    def growth_clinics(self) -> list[tuple[int, str]]:
        sizes = self.layout["sizes"]
        big, growth = sizes[0], sizes[1 : 1 + len(self.spec().growth)]
        by_size = self.layout["by_size"]
        return [(size, by_size[str(size)]) for size in sorted([*growth, big])]

    def spec(self) -> dataset.Spec:
        return dataset.QUICK if self.quick else dataset.FULL

    # -- export ------------------------------------------------------------------------------
    def exports(self, server: Gunicorn) -> None:
        probe = load.stream_get(
            server.port, "/api/patients/export", self.token(self.layout["import"])
        )
        if probe.status in (404, 405):
            self.rows.append(
                self.missing("export of the big clinic", "GET /api/patients/export", probe)
            )
            return
        runs = 1 if self.quick else 3
        peak_before = server.peak_rss_mb()
        biggest = None
        for size, clinic_id in self.growth_clinics():
            ours, theirs = [], []
            for _ in range(runs):
                transfer = load.stream_get(
                    server.port, "/api/patients/export", self.token(clinic_id)
                )
                if transfer.status != 200 or transfer.lines < size + 1:
                    raise RuntimeError(
                        f"export of {size} patients: status {transfer.status}, {transfer.lines} lines"
                    )
                ours.append(transfer)
                theirs.append(load.psql(self.url, "export.sql", {"clinic_id": clinic_id}))
            ours_s = statistics.median(t.seconds for t in ours)
            plain_s = statistics.median(t.seconds for t in theirs)
            peak = server.peak_rss_mb()
            psql_peak = max(t.peak_rss_mb for t in theirs)
            ratio = ours_s / plain_s
            self.rows.append(
                Row(
                    "growth",
                    f"export, {size:,} patients",
                    f"{ours_s:.2f} s, worker peak RSS {peak:.0f} MB",
                    f"{plain_s:.2f} s, psql peak RSS {psql_peak:.0f} MB",
                    ratio,
                    values={"ours_s": ours_s, "plain_s": plain_s, "peak_mb": peak},
                )
            )
            # Same work: the same file, byte for byte, but for the BOM the service puts first.
            difference = ours[0].body_bytes - len(BOM) - theirs[0].out_bytes
            if difference:
                self.rows[-1].ours += f" (its file differs from psql's by {difference:+,} bytes)"
            self.rows[-1].values["bytes_difference"] = difference
            biggest = (size, ours_s, plain_s, peak, psql_peak, ours[0].body_bytes)
        size, ours_s, plain_s, peak, psql_peak, body_bytes = biggest
        growth_mb = peak - peak_before
        ratio = ours_s / plain_s
        flat = growth_mb < FLAT_EXPORT_MB
        self.rows.append(
            Row(
                "main",
                f"export of {size:,} patients ({body_bytes / 1e6:.1f} MB CSV)",
                f"{ours_s:.2f} s; worker peak RSS {peak:.0f} MB (+{growth_mb:.0f} MB over all exports)",
                f"{plain_s:.2f} s; psql peak RSS {psql_peak:.0f} MB",
                ratio,
                ratio_text=f"{ratio:.2f}; memory {'flat' if flat else 'grows'}",
                target=f"time ≤ {EXPORT_TARGET}, memory flat",
                ok=ratio <= EXPORT_TARGET and flat,
                values={
                    "ours_s": ours_s,
                    "plain_s": plain_s,
                    "peak_mb": peak,
                    "growth_mb": growth_mb,
                },
            )
        )

    def missing(self, what: str, endpoint: str, probe) -> Row:
        return Row(
            "main",
            what,
            "missing",
            "",
            note=f"{endpoint} answered {probe.status}",
            ratio_text=f"not measured: {endpoint} answered {probe.status} (not there yet)",
            values={"missing": True},
        )

    # -- import ------------------------------------------------------------------------------
    def import_file(self) -> tuple[Path, int]:
        """A spreadsheet export as operators send it: local phone formats, some without email."""
        rows = 500 if self.quick else 70_000
        path = self.cache / f"import-{rows}.csv"
        if path.exists():
            return path, sum(1 for _ in path.open(encoding="utf-8")) - 1
        data, written = dataset.import_csv(rows)
        self.cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path, written

    def imports(self, server: Gunicorn, plain: Plain) -> None:
        clinic_id = self.layout["import"]
        token = self.token(clinic_id)
        path, rows = self.import_file()
        data = path.read_bytes()
        runs = 1 if self.quick else 3
        ours, theirs = [], []
        peak_before = server.peak_rss_mb()
        for _ in range(runs):
            self.clear_import_clinic(plain)
            transfer = load.post_file(server.port, "/api/patients/import", token, path.name, data)
            if transfer.status in (404, 405):
                self.rows.append(
                    self.missing(
                        f"import of a {len(data) / 1e6:.1f} MB file",
                        "POST /api/patients/import",
                        transfer,
                    )
                )
                return
            answer = json.loads(transfer.body or b"{}")
            if transfer.status != 200 or answer.get("imported") != rows:
                raise RuntimeError(f"import answered {transfer.status}: {transfer.body[:300]!r}")
            ours.append(transfer.seconds)
            self.clear_import_clinic(plain)
            run = load.psql(self.url, "import.sql", {"clinic_id": clinic_id}, stdin=path)
            if self.count(plain, clinic_id) != rows:
                raise RuntimeError("plain import did not load every row")
            theirs.append(run)
        self.clear_import_clinic(plain)
        ours_s = statistics.median(ours)
        plain_s = statistics.median(r.seconds for r in theirs)
        peak = server.peak_rss_mb()
        ratio = ours_s / plain_s
        self.rows.append(
            Row(
                "main",
                f"import of a {len(data) / 1e6:.1f} MB file ({rows:,} rows, all new)",
                f"{ours_s:.2f} s; worker peak RSS {peak:.0f} MB (+{peak - peak_before:.0f} MB)",
                f"{plain_s:.2f} s; psql peak RSS {max(r.peak_rss_mb for r in theirs):.0f} MB",
                ratio,
                target=f"≤ {IMPORT_TARGET}",
                ok=ratio <= IMPORT_TARGET,
                values={"ours_s": ours_s, "plain_s": plain_s, "peak_mb": peak, "rows": rows},
            )
        )

    def clear_import_clinic(self, plain: Plain) -> None:
        with plain.pool.connection() as conn:
            bench_queries.clear_clinic_patients(conn, clinic_id=self.layout["import"])

    def count(self, plain: Plain, clinic_id: str) -> int:
        with plain.pool.connection() as conn:
            return bench_queries.count_clinic_patients(conn, clinic_id=clinic_id)

    # -- throughput --------------------------------------------------------------------------
    def throughputs(self, port: int, bare_port: int, floor_port: int):
        """The four in turn, in rounds, so a load that comes and goes weighs on each alike."""
        rounds = 1 if self.quick else 3
        seconds = self.args.seconds / rounds
        ours, bare, floor, alone = [], [], [], []
        for _ in range(rounds):
            ours.append(self.throughput(port, "product", seconds))
            bare.append(self.throughput(bare_port, "bare", seconds))
            floor.append(self.throughput(floor_port, "floor", seconds))
            alone.append(self.plain_throughput(seconds))
        return tuple(load.Throughput.combined(r) for r in (ours, bare, floor, alone))

    def search_throughput(self, port: int, bare_port: int) -> Row:
        """The rare-name search at the same concurrency, against the bare app's."""
        clinic_id = self.layout["typical"]
        path = list_path(RARE)
        rounds = 1 if self.quick else 3
        seconds = self.args.seconds / rounds / 2
        ours, bare = [], []
        for _ in range(rounds):
            ours.append(
                load.throughput(
                    port, path, self.token(clinic_id), self.args.clients, seconds, self.args.client
                )
            )
            bare.append(
                load.throughput(
                    bare_port,
                    path,
                    "",
                    self.args.clients,
                    seconds,
                    self.args.client,
                    headers={"X-Clinic-Id": clinic_id},
                )
            )
        ours_t, bare_t = load.Throughput.combined(ours), load.Throughput.combined(bare)
        print(f"   search: service {ours_t.rps:.0f} req/s, bare {bare_t.rps:.0f} req/s")
        ratio = ours_t.rps / bare_t.rps
        return Row(
            "bare",
            f"search throughput (`{RARE}`), {self.args.clients} concurrent clients, "
            f"{self.layout['typical_size']:,}-patient clinic",
            f"{ours_t.rps:.0f} req/s, {ours_t.errors} errors (p50 {ms(ours_t.p50)}, "
            f"p99 {ms(ours_t.p99)})",
            f"{bare_t.rps:.0f} req/s, {bare_t.errors} errors (p50 {ms(bare_t.p50)}, "
            f"p99 {ms(bare_t.p99)})",
            ratio,
            target=f"≥ {BARE_THROUGHPUT_TARGET}, 0 errors",
            ok=ratio >= BARE_THROUGHPUT_TARGET and ours_t.errors == 0,
            values={"ours_rps": ours_t.rps, "bare_rps": bare_t.rps, "ours_errors": ours_t.errors},
        )

    # -- against the bare Flask app ------------------------------------------------------------
    def bare_latencies(self, port: int, bare_port: int) -> None:
        """The fast endpoints, request by request against the bare app answering the same SQL."""
        big, patient = self.layout["big"], self.layout["record_patient"]
        ours = load.RawClient(port, {"Authorization": f"Bearer {self.token(big, 'admin')}"})
        bare = load.RawClient(bare_port, {"X-Clinic-Id": big})
        figures = [
            (f"search, rare name (`{RARE}`), big clinic", list_path(RARE)),
            (f"search, phone fragment (`{PHONE}`), big clinic", list_path(PHONE)),
            (
                f"full record with {self.layout['record_appointments']} appointments, as an "
                "admin (DUI revealed, reveal audited)",
                f"/api/patients/{patient}",
            ),
            ("GET /healthz (SELECT 1)", "/healthz"),
        ]
        count = self.n(400)
        for what, path in figures:
            (ours_status, ours_body), (bare_status, bare_body) = ours.get(path), bare.get(path)
            if (ours_status, bare_status) != (200, 200) or json.loads(ours_body) != json.loads(
                bare_body
            ):
                raise RuntimeError(f"{what}: the service and the bare app answer differently")
            a, b = load.latency_pair(
                load.http_call(ours, path), load.http_call(bare, path), count, 50, what
            )
            self.rows.append(
                latency_row("bare", what, a, b, count, BARE_LATENCY_TARGET, other="bare")
            )
        ours.close()
        bare.close()

    # -- the worker model behind nginx -----------------------------------------------------------
    def worker_models(self, env: dict) -> None:
        """sync against gthread behind nginx: one client's latency, 16 clients' throughput and
        p99, and the same while a slow client downloads the big clinic's export."""
        if nginx_binary() is None:
            self.rows.append(Row("workers", "worker model", "not measured: nginx is not installed"))
            return
        cores = os.cpu_count() or 2
        current = (self.args.workers, self.args.threads)
        models = [
            ("gthread", *current),
            ("sync", current[0], 1),
            ("sync", 2 * cores + 1, 1),  # gunicorn's docs' (2 x cores) + 1
        ]
        if self.quick:
            models = models[:2]  # the test suite's run only proves the figures are made
        big, typical = self.layout["big"], self.layout["typical"]
        seconds = 1.0 if self.quick else 10.0
        for kind, workers, threads in models:
            server = LiveServer(
                app="app:create_app()",
                env={
                    **env,
                    "JWT_SECRET": JWT_SECRET,
                    "GUNICORN_CMD_ARGS": f"--worker-class {kind}",
                },
                workers=workers,
                threads=threads,
                log_path=self.log,
            )
            with server, NginxProxy(server.port) as proxy:
                self.proxy_config = "deploy/nginx.conf"
                health = load.HttpClient(proxy.port, "")
                quiet = load.latency(load.http_call(health, "/healthz"), self.n(200), 20, kind)
                searcher = load.HttpClient(proxy.port, self.token(big))
                search_t = load.latency(
                    load.http_call(searcher, list_path(RARE)), self.n(200), 10, kind
                )
                health.close()
                searcher.close()
                token = self.token(typical)
                busy = load.throughput(
                    proxy.port, "/api/patients", token, 16, seconds, self.args.client
                )
                with load.SlowDownload(
                    proxy.port, "/api/patients/export", self.token(big)
                ) as download:
                    slowed = load.throughput(
                        proxy.port, "/api/patients", token, 16, seconds, self.args.client
                    )
            print(
                f"   {kind} {workers}x{threads}: {busy.rps:.0f} req/s, with a slow download "
                f"{slowed.rps:.0f} req/s"
            )
            self.rows.append(
                Row(
                    "workers",
                    f"`{kind}`, {workers} workers × {threads} thread{'s' if threads > 1 else ''}",
                    f"1 client: /healthz p50 {ms(quiet.p50)}, search p50 {ms(search_t.p50)}",
                    f"16 clients: {busy.rps:.0f} req/s, p99 {ms(busy.p99)}, {busy.errors} errors",
                    slowed.rps / busy.rps if busy.rps else None,
                    ratio_text=(
                        f"{slowed.rps:.0f} req/s, p99 {ms(slowed.p99)}, {slowed.errors} errors "
                        f"(the download read {download.received / 1e6:.1f} MB meanwhile)"
                    ),
                    values={
                        "healthz_p50": quiet.p50,
                        "search_p50": search_t.p50,
                        "rps": busy.rps,
                        "p99": busy.p99,
                        "errors": busy.errors,
                        "rps_with_download": slowed.rps,
                        "p99_with_download": slowed.p99,
                        "errors_with_download": slowed.errors,
                    },
                )
            )

    def throughput(self, port: int, app: str, seconds: float) -> load.Throughput:
        clinic_id = self.layout["typical"]
        path = "/" if app == "floor" else "/api/patients"
        result = load.throughput(
            port,
            path,
            self.token(clinic_id) if app == "product" else "",
            self.args.clients,
            seconds,
            self.args.client,
            headers={"X-Clinic-Id": clinic_id} if app == "bare" else None,
        )
        print(f"   {app}: {result.rps:.0f} req/s, {result.errors} errors ({result.tool})")
        return result

    def plain_throughput(self, seconds: float) -> load.Throughput:
        """The same list SQL alone, from as many threads as the service has connections."""
        clinic_id = self.layout["typical"]
        pool = make_pool(self.url, max_size=self.args.clients)
        pool.wait()
        deadline = time.monotonic() + seconds
        done, errors = [0] * self.args.clients, [0]

        def worker(index):
            while time.monotonic() < deadline:
                try:
                    with pool.connection() as conn:
                        queries.list_patients(conn, **list_params(clinic_id, None))
                    done[index] += 1
                except Exception:
                    errors[0] += 1

        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        pool.close()
        result = load.Throughput(sum(done) + errors[0], errors[0], elapsed, "psycopg threads")
        print(f"   plain: {result.rps:.0f} req/s, {result.errors} errors")
        return result

    def floor_latency(self, port: int) -> None:
        """What a request costs bare gunicorn answering SELECT 1 from the pool, without Flask."""
        count = self.n(300)
        client = load.HttpClient(port, "")
        bare = load.latency(load.http_call(client, "/"), count, 20, "floor /")
        client.close()
        self.floor_timing = bare

    def floor_row(self, port: int, plain: Plain) -> Row:
        count = self.n(300)
        client = load.HttpClient(port, "")

        def ping():
            with plain.pool.connection() as conn:
                queries.ping(conn)

        flask, alone = load.latency_pair(
            load.http_call(client, "/healthz"), ping, count, 20, "SELECT 1"
        )
        client.close()
        self.floor_ping = (flask, alone)
        return Row(
            "main",
            "a request that only runs SELECT 1 (what every request pays)",
            f"GET /healthz (Flask, logging): {latency_text(flask, count)}",
            f"SELECT 1 through the pool: {latency_text(alone, count)}",
            flask.p50 / alone.p50,
            target="(context)",
            values={"ours_p50": flask.p50, "plain_p50": alone.p50, "n": count},
        )

    def throughput_row(
        self,
        ours: load.Throughput,
        bare: load.Throughput,
        floor: load.Throughput,
        plain: load.Throughput,
    ) -> Row:
        ratio = ours.rps / bare.rps
        return Row(
            "bare",
            f"list throughput, {self.args.clients} concurrent clients, "
            f"{self.layout['typical_size']:,}-patient clinic, first page",
            f"{ours.rps:.0f} req/s over {ours.seconds:.0f} s, {ours.errors} errors "
            f"(p50 {ms(ours.p50)}, p99 {ms(ours.p99)})",
            f"{bare.rps:.0f} req/s, {bare.errors} errors (p50 {ms(bare.p50)}, p99 "
            f"{ms(bare.p99)}). For context: gunicorn + pool answering SELECT 1 without Flask "
            f"(bench/floor.py) {floor.rps:.0f} req/s, {floor.errors} errors, p50 "
            f"{ms(self.floor_timing.p50)} sequential; the list SQL alone through psycopg, "
            f"{self.args.clients} threads: {plain.rps:.0f} req/s",
            ratio,
            ratio_text=(
                f"{ratio:.2f} (vs SELECT 1 without Flask: {ours.rps / floor.rps:.2f}; "
                f"vs the SQL alone: {ours.rps / plain.rps:.2f})"
            ),
            target=f"≥ {BARE_THROUGHPUT_TARGET}, 0 errors",
            ok=ratio >= BARE_THROUGHPUT_TARGET and ours.errors == 0,
            values={
                "ours_rps": ours.rps,
                "bare_rps": bare.rps,
                "floor_rps": floor.rps,
                "ours_errors": ours.errors,
                "floor_errors": floor.errors,
                "plain_rps": plain.rps,
                "tool": ours.tool,
            },
        )

    # -- plans -------------------------------------------------------------------------------
    def explain(self, plain: Plain) -> None:
        big = self.layout["big"]
        cases = [
            (f"search `{RARE}` (rare name)", RARE, 1),
            (f"search `{COMMON}` (common fragment)", COMMON, 1),
            (f"search `{PHONE}` (phone fragment)", PHONE, 1),
            ("list, page 1,000", None, self.page_far()),
        ]
        with plain.pool.connection() as conn:
            notices = []

            def collect(diag):
                notices.append(diag.message_primary or "")

            conn.add_notice_handler(collect)
            bench_queries.explain_to_client(conn)
            try:
                for title, term, page in cases:
                    notices.clear()
                    params = list_params(big, term, page)
                    if term is None:
                        queries.list_patients(conn, **params)
                    else:
                        queries.search_patients(conn, **params)
                    queries.ping(conn)  # a notice can trail its result; this flushes it
                    # fold_search() is planned and run as a statement of its own (short plans)
                    plan = max(notices, key=len, default="(no plan captured)")
                    self.explains.append((title, strip_query_text(plan)))
            finally:
                bench_queries.explain_off(conn)
                conn.remove_notice_handler(collect)


def strip_query_text(plan: str) -> str:
    """auto_explain repeats the statement before the plan; the plan is what matters here."""
    lines = plan.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^\S.*\(cost=", line)]
    return "\n".join(lines[starts[0] :] if starts else lines)


# -- the run ----------------------------------------------------------------------------------


def wait_for_quiet(max_wait: float, threshold: float) -> str:
    """Other engineers' test suites share the cores: wait (bounded) for the load to drop."""
    deadline = time.monotonic() + max_wait
    load1 = os.getloadavg()[0]
    while load1 > threshold and time.monotonic() < deadline:
        print(
            f"   load average {load1:.2f} > {threshold}: waiting (at most {max_wait:.0f} s)",
            flush=True,
        )
        time.sleep(15)
        load1 = os.getloadavg()[0]
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def install_hint() -> None:
    if not shutil.which("wrk"):
        print("   wrk is not installed: throughput uses the Python client (`apt-get install wrk`)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny data set, seconds not minutes")
    parser.add_argument(
        "--data-dir", type=Path, help="where the cluster lives (default bench/data/)"
    )
    parser.add_argument("--out", type=Path, help="the Markdown report (default bench/results.md)")
    parser.add_argument("--seconds", type=float, help="throughput duration (30; --quick 2)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for throughput")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="throughput client: wrk when installed (auto), or Python threads",
    )
    parser.add_argument("--max-wait", type=float, help="wait this long at most for a quiet machine")
    parser.add_argument(
        "--only-scale",
        action="store_true",
        help="only the scale part (its own cluster; the report to --out, default bench/.cache/)",
    )
    args = parser.parse_args(argv)
    if args.only_scale:
        return only_scale(args)
    spec = dataset.QUICK if args.quick else dataset.FULL
    args.data_dir = (args.data_dir or HERE / "data") / spec.name
    args.out = args.out or (
        HERE / ".cache" / "results-quick.md" if args.quick else HERE / "results.md"
    )
    args.seconds = args.seconds or (2.0 if args.quick else 30.0)

    started = time.monotonic()
    # A cluster this run starts, it stops again (the data stays for the next run).
    was_running = dataset.cluster_for(args.data_dir).running()
    with step("data set"):
        cluster, layout = dataset.prepare(args.data_dir, spec)
    try:
        return measure(args, spec, cluster, layout, started)
    finally:
        if not was_running:
            cluster.stop()


def only_scale(args) -> int:
    """The growth table alone: no main data set, its report to a file of its own (copy its
    table into results.md by hand)."""
    spec = dataset.QUICK if args.quick else dataset.FULL
    args.data_dir = (args.data_dir or HERE / "data") / spec.name
    args.out = args.out or HERE / ".cache" / f"results-scale{'-quick' if args.quick else ''}.md"
    started = time.monotonic()
    bench = Bench(args, SimpleNamespace(url=None), None)
    bench.cache.mkdir(parents=True, exist_ok=True)
    context = {
        "command": "python -m bench.run --only-scale" + (" --quick" if args.quick else ""),
        "mode": "no main",
    }
    context["load_before"] = wait_for_quiet(args.max_wait or 0, threshold=1.0)
    with step("scale: a 1,000-patient clinic's searches as the other clinics grow"):
        growth = scale.QUICK if args.quick else scale.FULL
        context["scale"] = scale.Scale(bench, args.data_dir / "scale", growth).run(
            Gunicorn, dataset.service_env, bench.log
        )
    context["load_after"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    context["seconds"] = round(time.monotonic() - started)
    report.print_table(bench.rows)
    report.write(bench.rows, context, [], [], args.out)
    print(f"\nwritten to {args.out} ({context['seconds']} s in all)")
    return 0


def measure(args, spec, cluster, layout, started) -> int:
    max_wait = args.max_wait if args.max_wait is not None else (0 if args.quick else 600)
    bench = Bench(args, cluster, layout)
    install_hint()
    load_before = wait_for_quiet(max_wait, threshold=1.0)
    context = {
        "command": "python -m bench.run" + (" --quick" if args.quick else ""),
        "mode": spec.name,
        "load_before": load_before,
    }
    plain = Plain(cluster.url)
    try:
        with plain.pool.connection() as conn:
            counts = bench_queries.dataset_counts(conn)
            context["server_version"] = bench_queries.server_version(conn)
        context["dataset"] = (
            f"{counts['patients']:,} patients in {counts['clinics'] - 1} clinics "
            f"(the big one {layout['sizes'][0]:,}; growth clinics "
            f"{', '.join(f'{s:,}' for s in layout['sizes'][1 : 1 + len(spec.growth)])}; "
            f"the rest about {layout['typical_size']:,} each), {counts['appointments']:,} "
            f"appointments, {counts['size']} on disk"
        )
        env = dataset.service_env(cluster.url)
        with (
            Gunicorn("app:create_app()", env, bench.log) as server,
            Gunicorn("bench.bare_app:create_app()", env, bench.log) as bare_server,
        ):
            context["workers"] = len(server.worker_pids())
            context["threads"] = server.threads
            args.workers, args.threads = server.workers, server.threads
            with step("the service against the bare Flask app: latency"):
                bench.bare_latencies(server.port, bare_server.port)
            with step("latency: search, pages, full record"):
                bench.latencies(server.port, plain)
                bench.rows.append(bench.floor_row(server.port, plain))
            with step("growth: search at each clinic size"):
                bench.growth_search(server.port, plain)
            with step("export"):
                bench.exports(server)
            with step("import"):
                bench.imports(server, plain)
            with (
                Gunicorn("bench.floor:create_app()", env, bench.log) as floor_server,
                step(
                    "throughput: service, bare app, floor and SQL alone in turn, "
                    f"{args.seconds:.0f} s each"
                ),
            ):
                ours, bare, floor, alone = bench.throughputs(
                    server.port, bare_server.port, floor_server.port
                )
                bench.floor_latency(floor_server.port)
                bench.rows.append(bench.throughput_row(ours, bare, floor, alone))
                bench.rows.append(bench.search_throughput(server.port, bare_server.port))
        with step("worker model: sync and gthread behind nginx"):
            bench.worker_models(env)
            context["proxy_config"] = getattr(bench, "proxy_config", None)
        with plain.pool.connection() as conn:
            bench_queries.clear_bench_audit(conn)  # the admin records' reveals, both sides
        with step("query plans"):
            bench.explain(plain)
    finally:
        plain.close()
    with step("scale: a 1,000-patient clinic's searches as the other clinics grow"):
        growth = scale.QUICK if args.quick else scale.FULL
        context["scale"] = scale.Scale(bench, args.data_dir / "scale", growth).run(
            Gunicorn, dataset.service_env, bench.log
        )
    context["load_after"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    context["seconds"] = round(time.monotonic() - started)
    report.print_table(bench.rows)
    notes_file = HERE / "notes.md"
    notes = [notes_file.read_text().strip()] if notes_file.exists() and not args.quick else []
    report.write(bench.rows, context, bench.explains, notes, args.out)
    print(f"\nwritten to {args.out} ({context['seconds']} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
