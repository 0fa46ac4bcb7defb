"""`python -m bench.run --quick` end to end on a tiny data set, so the benchmark never rots.

It builds its own small cluster in a temporary folder, starts gunicorn (the product and the
framework floor) on free ports, measures every figure on both sides and writes the report; this
test checks that each figure was really measured, not just that the command exited.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from patients.ops.embedded_pg import Cluster

ROOT = Path(__file__).resolve().parent.parent


def has_route(app, rule: str, method: str) -> bool:
    return any(r.rule == rule and method in r.methods for r in app.url_map.iter_rules())


@pytest.mark.slow
def test_quick_bench_measures_every_figure(app):
    # In /tmp and open to traversal: the cluster runs as `postgres` when the suite runs as root.
    root = Path(tempfile.mkdtemp(prefix="bench-quick-"))
    root.chmod(0o755)
    out = root / "results.md"
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.run",
                "--quick",
                "--data-dir",
                str(root),
                "--out",
                str(out),
                "--seconds",
                "1",
                "--client",
                "python",  # CI has no wrk; the fallback client is the one that must not rot
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

        report = json.loads(out.with_suffix(".json").read_text())
        main = [row for row in report["rows"] if row["section"] == "main"]
        growth = [row for row in report["rows"] if row["section"] == "growth"]

        latencies = [
            row for row in main if row["target"] == "≤ 1.5" and not row["what"].startswith("import")
        ]
        assert len(latencies) == 6  # three searches, two pages, the full record
        (floor,) = [row for row in main if "SELECT 1" in row["what"]]
        # Measured, not judged: speed is the full bench's business, never a test's.
        assert floor["values"]["ours_p50"] > 0 and floor["values"]["plain_p50"] > 0
        for row in latencies:
            assert row["values"]["plain_p50"] > 0, row["what"]
            assert row["values"]["ours_p50"] > 0, row["what"]
            assert row["ratio"] > 0
        rare = next(row for row in latencies if "rare name" in row["what"])
        assert rare["values"]["matches"] == 3  # the planted surname, found without its accent

        bare = [row for row in report["rows"] if row["section"] == "bare"]
        bare_latencies = [row for row in bare if row["target"] == "≤ 1.1"]
        assert len(bare_latencies) == 4  # /healthz, two searches, an admin's full record
        for row in bare_latencies:
            assert row["values"]["ours_p50"] > 0 and row["values"]["bare_p50"] > 0, row["what"]
        (throughput,) = [row for row in bare if row["what"].startswith("list throughput")]
        assert throughput["values"]["ours_errors"] == 0
        assert throughput["values"]["floor_errors"] == 0
        for side in ("ours_rps", "bare_rps", "floor_rps", "plain_rps"):
            assert throughput["values"][side] > 0, side
        assert throughput["values"]["tool"] == "python"
        (search_throughput,) = [row for row in bare if row["what"].startswith("search throughput")]
        assert search_throughput["values"]["ours_rps"] > 0
        assert search_throughput["values"]["bare_rps"] > 0

        workers = [row for row in report["rows"] if row["section"] == "workers"]
        if shutil.which("nginx"):
            assert [row["what"].split(",")[0] for row in workers] == ["`gthread`", "`sync`"]
            for row in workers:
                assert row["values"]["rps"] > 0 and row["values"]["errors"] == 0, row
                assert row["values"]["rps_with_download"] > 0, row
        else:
            assert [row["ours"] for row in workers] == ["not measured: nginx is not installed"]

        (export,) = [row for row in main if row["what"].startswith("export")]
        (imported,) = [row for row in main if row["what"].startswith("import")]
        for row, rule, method in (
            (export, "/api/patients/export", "GET"),
            (imported, "/api/patients/import", "POST"),
        ):
            if has_route(app, rule, method):
                assert row["values"]["ours_s"] > 0 and row["values"]["plain_s"] > 0, row
            else:
                assert row["values"].get("missing"), row

        assert len([row for row in growth if row["what"].startswith("search")]) == 8

        # One clinic as the others grow: four searches at each of the three sizes, each measured
        # on both sides, and one growth ratio per search.
        scale = [row for row in report["rows"] if row["section"] == "scale"]
        measured = [row for row in scale if "total" in row["values"]]
        assert [(row["values"]["total"], row["values"]["kind"]) for row in measured] == [
            (total, kind)
            for total in (1_000, 3_000, 6_000)
            for kind in ("common surname", "rare name", "phone fragment", "short term")
        ]
        for row in measured:
            assert row["values"]["ours_p50"] > 0 and row["values"]["plain_p50"] > 0, row["what"]
            if row["values"]["kind"] != "short term":
                assert row["values"]["matches"] > 0, row["what"]
            if row["values"]["kind"] == "rare name":
                assert row["values"]["matches"] >= 5, row["what"]  # the five planted
        flat = [row for row in scale if "ours_growth" in row["values"]]
        assert len(flat) == 4
        for row in flat:
            assert row["values"]["ours_growth"] > 0 and row["values"]["plain_growth"] > 0
        sizes = [row for row in report["rows"] if row["section"] == "scale-size"]
        assert [row["values"]["patients"] for row in sizes] == [1_000, 3_000, 6_000]
        for row in sizes:
            assert row["values"]["table_bytes"] > 0 and row["values"]["index_bytes"] > 0
            assert {"patients_clinic_name_keys", "patients_clinic_phone_keys"} <= set(
                row["values"]["by_index"]
            )
        assert report["context"]["scale"]["steps"] == [1_000, 3_000, 6_000]

        markdown = out.read_text()
        assert "| search, rare name" in markdown
        assert "## One clinic as the others grow" in markdown
        # a query plan per search and the far page, and what one PostgreSQL holds
        assert markdown.count("\n### ") == 5
        assert "Index" in markdown or "Seq Scan" in markdown
    finally:
        Cluster(root / "quick" / "pg").destroy()
        shutil.rmtree(root, ignore_errors=True)
