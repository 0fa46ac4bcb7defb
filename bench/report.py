"""One table of figures and ratios: printed, and written as Markdown (bench/results.md) and JSON."""

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import platform
from pathlib import Path


@dataclasses.dataclass
class Row:
    section: str  # "main" (the table) or "growth"
    what: str
    ours: str = "—"
    plain: str = "—"
    ratio: float | None = None
    ratio_text: str = ""  # how the ratio reads when it is not a plain number
    target: str = ""
    ok: bool | None = None
    note: str = ""
    values: dict = dataclasses.field(default_factory=dict)  # raw numbers, for the JSON and tests


def ms(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def latency_text(timing, count: int) -> str:
    return f"p50 {ms(timing.p50)} · p99 {ms(timing.p99)} (n={count})"


def latency_row(
    section: str,
    what: str,
    ours,
    theirs,
    count: int,
    target: float,
    *,
    other: str = "plain",
    judged: bool = True,
    **values,
) -> Row:
    """A row of two latency samples side by side: the p50 ratio against `target` (not judged in
    a section that only reports), the p99 ratio beside it, and the raw figures for the JSON
    (`other` names the second side's keys: `plain_p50` or `bare_p50`)."""
    ratio = ours.p50 / theirs.p50
    return Row(
        section,
        what,
        latency_text(ours, count),
        latency_text(theirs, count),
        ratio,
        ratio_text=f"{ratio:.2f} (p99 {ours.p99 / theirs.p99:.2f})",
        target=f"≤ {target}",
        ok=ratio <= target if judged else None,
        values={
            "ours_p50": ours.p50,
            "ours_p99": ours.p99,
            f"{other}_p50": theirs.p50,
            f"{other}_p99": theirs.p99,
            "n": count,
            **values,
        },
    )


def verdict(row: Row) -> str:
    if row.ok is None:
        return ""
    return "✅" if row.ok else "❌ (see below)"


def ratio_cell(row: Row) -> str:
    if row.ratio_text:
        return row.ratio_text
    return "—" if row.ratio is None else f"{row.ratio:.2f}"


HEADERS = {
    "main": ("ours (the service over HTTP)", "plain PostgreSQL, same work", "ratio"),
    "growth": ("ours (the service over HTTP)", "plain PostgreSQL, same work", "ratio"),
    "bare": ("ours (the service over HTTP)", "the bare Flask app, same SQL", "ratio"),
    "workers": ("latency, 1 client", "16 clients", "16 clients with a slow export download"),
    "scale": ("ours (the service over HTTP)", "plain PostgreSQL, same work", "ratio"),
    "scale-size": ("table", "indexes (each index)", "in all"),
}


def table(rows: list[Row], section: str, previous: dict | None = None) -> list[str]:
    """`previous`: the last run's rows by `what`; their figures go in a column of their own."""
    ours, theirs, ratio = HEADERS[section]
    extra = " previous run (ours · ratio) |" if previous is not None else ""
    lines = [
        f"| what | {ours} | {theirs} | {ratio} | target | |{extra}",
        "|---|---|---|---|---|---|" + ("---|" if previous is not None else ""),
    ]
    for row in rows:
        if row.section != section:
            continue
        line = (
            f"| {row.what} | {row.ours} | {row.plain} | {ratio_cell(row)} | {row.target} "
            f"| {verdict(row)} |"
        )
        if previous is not None:
            before = previous.get(row.what)
            line += f" {before['ours']} · {ratio_cell(Row(**before))} |" if before else " (new) |"
        lines.append(line)
    return lines


def contention_note(context: dict) -> str:
    """A sentence saying the figures were taken under contention, when the load says so."""
    loads = []
    for key in ("load_before", "load_after"):
        with contextlib.suppress(ValueError, IndexError):
            loads.append(float(str(context.get(key, "")).split()[0]))
    if not loads or max(loads) <= 1.5:
        return ""
    return (
        " **These figures were taken under contention**: other work shared the two cores during "
        "the run. Each ratio is measured side by side in the same run (the two sides in turn), so "
        "it stays meaningful; the absolute times are higher than a quiet machine's."
    )


def previous_rows(path: Path) -> dict | None:
    """The rows of the run whose JSON is at `path` (the one about to be replaced), by `what`."""
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return None
    fields = {f.name for f in dataclasses.fields(Row)}
    return {row["what"]: {k: v for k, v in row.items() if k in fields} for row in rows}


def machine() -> dict:
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory": memory,
        "cpu": cpu,
        "python": platform.python_version(),
    }


def write(
    rows: list[Row], context: dict, explains: list[tuple[str, str]], notes: list[str], out: Path
) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    m = machine()
    previous = previous_rows(out.with_suffix(".json"))
    if previous is not None:
        context["previous_run"] = json.loads(out.with_suffix(".json").read_text())["context"]
    lines = [
        "# Benchmark: the Patients API against plain PostgreSQL",
        "",
        f"Run {now} with `{context['command']}` ({context['mode']} data set). "
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory']} memory, "
        f"PostgreSQL {context.get('server_version', '?')}, Python {m['python']}. "
        f"Load average before the run: {context.get('load_before', '?')}, after: "
        f"{context.get('load_after', '?')} (other engineers' test suites share these cores)."
        + contention_note(context),
        "",
        f"Data set: {context.get('dataset', '?')}. The service runs as in production: gunicorn with "
        f"`gunicorn.conf.py` ({context.get('workers', '?')} workers × {context.get('threads', '?')} "
        "threads, a pool of 4 connections per worker), bound to 127.0.0.1. Plain PostgreSQL runs "
        "the same named query (queries/*.sql) with the same parameters through a psycopg pool with "
        "the same settings; export and import compare with psql. Latencies are one client in "
        "sequence over a keep-alive connection, measured at the client, after a warm-up.",
        "",
        *table(rows, "main", previous),
        "",
        "## The service's own cost: against a bare Flask app on the same gunicorn, same SQL",
        "",
        "bench/bare_app.py: Flask and a psycopg_pool pool on the same gunicorn.conf.py, answering "
        "the same named queries with the same parameters (and the same bodies, checked before "
        "measuring), with nothing else: no token, no access log, no request hooks, no input "
        "checks. Both in turn, request by request (latency) or round by round (throughput).",
        "",
        *table(rows, "bare", previous),
        "",
        "## Worker model: sync against gthread, behind nginx",
        "",
        f"The service behind nginx ({context.get('proxy_config') or 'not run'}), one worker "
        "model at a time. Latency: one client in sequence. Throughput: 16 clients (wrk) on the "
        "list, then again while one slow client downloads the big clinic's export (about "
        "0.5 MB/s; the export is streamed unbuffered, so it holds a worker or a thread).",
        "",
        *table(rows, "workers", previous),
        "",
        "## How cost grows with the clinic",
        "",
        *table(rows, "growth", previous),
        "",
        *scale_section(rows, context, previous),
    ]
    if notes:
        lines += ["## Reading the figures", "", *notes, ""]
    if explains:
        lines += [
            "## Query plans on the big clinic",
            "",
            "EXPLAIN (ANALYZE, BUFFERS) of the product's own statements with the view's parameters "
            "(captured with auto_explain, as the service's connections plan them: custom plans).",
            "",
        ]
        for title, plan in explains:
            lines += [f"### {title}", "", "```", plan.strip(), "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "context": context,
                "machine": m,
                "rows": [dataclasses.asdict(r) for r in rows],
            },
            indent=2,
            ensure_ascii=False,
            default=str,
        )
    )


def scale_section(rows: list[Row], context: dict, previous: dict | None) -> list[str]:
    grown = context.get("scale")
    if not grown:
        return []
    steps = " → ".join(f"{n:,}" for n in grown["steps"])
    return [
        "## One clinic as the others grow",
        "",
        f"A database of its own, grown in steps ({steps} patients in the whole table, "
        f"{grown['clinics']:,} clinics of {grown['clinic']:,} patients at the end): other clinics' "
        "patients added at each step (set-based SQL; the secondary indexes dropped and built again "
        "by schema.sql, then VACUUM ANALYZE), and the measured clinic kept spread over the whole "
        f"table at its {grown['clinic']:,} patients, as a clinic registering patients over the "
        "years is (at each step a share of its patients moves into the new stretch). At each size the clinic's searches, the service over HTTP against "
        "plain PostgreSQL running the same named query with the same indexes; then each search's "
        "p50 at the largest size over its p50 at the smallest (target: flat within 1.5×).",
        "",
        *table(rows, "scale", previous),
        "",
        "### What one PostgreSQL holds",
        "",
        "The patients table at each size: `pg_table_size` (heap, TOAST, free space map) and "
        "`pg_indexes_size`, per patient, with each index's bytes per patient "
        "(`pg_relation_size`), and how long schema.sql took to build the secondary indexes.",
        "",
        *table(rows, "scale-size", previous),
        "",
    ]


def print_table(rows: list[Row]) -> None:
    for section, title in (
        ("main", "Figures"),
        ("bare", "Against the bare Flask app"),
        ("workers", "Worker model"),
        ("growth", "Growth"),
        ("scale", "One clinic as the others grow"),
        ("scale-size", "What one PostgreSQL holds"),
    ):
        print(f"\n{title}")
        for line in table(rows, section):
            print(line)
