"""One table of figures and ratios: printed, and written as Markdown (bench/results.md) and JSON."""

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


def verdict(row: Row) -> str:
    if row.ok is None:
        return ""
    return "✅" if row.ok else "❌ (see below)"


def ratio_cell(row: Row) -> str:
    if row.ratio_text:
        return row.ratio_text
    return "—" if row.ratio is None else f"{row.ratio:.2f}"


def table(rows: list[Row], section: str) -> list[str]:
    lines = [
        "| what | ours (the service over HTTP) | plain PostgreSQL, same work | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.section != section:
            continue
        lines.append(
            f"| {row.what} | {row.ours} | {row.plain} | {ratio_cell(row)} | {row.target} | {verdict(row)} |"
        )
    return lines


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
    lines = [
        "# Benchmark: the Patients API against plain PostgreSQL",
        "",
        f"Run {now} with `{context['command']}` ({context['mode']} data set). "
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory']} memory, "
        f"PostgreSQL {context.get('server_version', '?')}, Python {m['python']}. "
        f"Load average before the run: {context.get('load_before', '?')}, after: "
        f"{context.get('load_after', '?')} (other engineers' test suites share these cores).",
        "",
        f"Data set: {context.get('dataset', '?')}. The service runs as in production: gunicorn with "
        f"`gunicorn.conf.py` ({context.get('workers', '?')} workers × {context.get('threads', '?')} "
        "threads, a pool of 4 connections per worker), bound to 127.0.0.1. Plain PostgreSQL runs "
        "the same named query (queries/*.sql) with the same parameters through a psycopg pool with "
        "the same settings; export and import compare with psql. Latencies are one client in "
        "sequence over a keep-alive connection, measured at the client, after a warm-up.",
        "",
        *table(rows, "main"),
        "",
        "## How cost grows with the clinic",
        "",
        *table(rows, "growth"),
        "",
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


def print_table(rows: list[Row]) -> None:
    for section, title in (("main", "Figures"), ("growth", "Growth")):
        print(f"\n{title}")
        for line in table(rows, section):
            print(line)
