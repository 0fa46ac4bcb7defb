"""Peak memory of one gunicorn worker while it imports a 5 MB file (`python -m bench.import_memory`).

Two files of just under 5 MB, each sent to a fresh single-worker gunicorn on a throwaway
PostgreSQL:

- valid:   70,000 patients as operators send them (local phone formats, most with an email and a
           DUI), imported for real;
- garbage: a header, then 1-character rows (`x`), about 2.6 million of them, each one a problem;
           the answer must stay a small 400 INVALID_ROWS (the first 1,000 problems, the total in
           the message).

The figure is the worker's peak resident memory (VmHWM) during the import, after the kernel's
peak counter was reset (`/proc/<pid>/clear_refs` = 5) just before it, next to the worker's
resident memory before and after. Linux only; run as the user that owns the worker (or root).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jwt
import psycopg

from bench import dataset, load
from bench.service import JWT_SECRET
from patients.db import apply_schema
from patients.ops.embedded_pg import throwaway_cluster
from tests.live import LiveServer, status_kb

ROOT = Path(__file__).resolve().parent.parent
LIMIT = dataset.IMPORT_FILE_LIMIT
ROWS = 70_000
DUI_KEY = "YmVuY2gtZHVpLWtleS1ub3QtYS1zZWNyZXQtMzJieXQ="  # fixed, throwaway: the data is too


def valid_file(rows: int = ROWS) -> tuple[bytes, int]:
    return dataset.import_csv(rows)


def garbage_file() -> tuple[bytes, int]:
    header = b"nombre,telefono\n"
    rows = (LIMIT - len(header)) // 2
    return header + b"x\n" * rows, rows


def bench_token(clinic_id: str) -> str:
    now = int(time.time())
    claims = {"sub": "bench", "iat": now, "exp": now + 3600}
    claims["app_metadata"] = {"clinic_id": clinic_id, "role": "staff"}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def measure(url: str, token: str, name: str, data: bytes, log_dir: Path) -> dict:
    env = {
        "DATABASE_URL": url,
        "DUI_KEYS": DUI_KEY,
        "JWT_SECRET": JWT_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    log_path = log_dir / f"import-memory-{name}.log"
    with LiveServer(env=env, workers=1, log_path=log_path) as server:
        (worker,) = server.worker_pids()
        # One small request first, so the figure is the import's, not the first request's imports.
        load.post_file(server.port, "/api/patients/import?dry_run=true", token, "w.csv", b"a,b\n")
        before = status_kb(worker, "VmRSS")
        Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM := VmRSS
        transfer = load.post_file(server.port, "/api/patients/import", token, f"{name}.csv", data)
        peak, after = status_kb(worker, "VmHWM"), status_kb(worker, "VmRSS")
    answer = json.loads(transfer.body)
    return {
        "file": name,
        "file_mb": round(len(data) / 1e6, 2),
        "status": transfer.status,
        "answer_bytes": len(transfer.body),
        "seconds": round(transfer.seconds, 2),
        "rss_before_mb": round(before / 1024, 1),
        "peak_mb": round(peak / 1024, 1),
        "peak_over_before_mb": round((peak - before) / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
        "message": answer.get("message"),
        "details": len(answer["details"]) if isinstance(answer.get("details"), list) else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    cluster = throwaway_cluster("pgbench-mem-")
    try:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            apply_schema(conn)
            clinic_id = conn.execute(
                "INSERT INTO clinics (name, plan) VALUES ('Bench memory', 'pro') RETURNING id::text"
            ).fetchone()[0]
        token = bench_token(clinic_id)
        log_dir = ROOT / "bench" / ".cache"
        results = []
        for name, (data, rows) in (("valid", valid_file()), ("garbage", garbage_file())):
            started = time.perf_counter()
            result = measure(cluster.url, token, name, data, log_dir)
            result["rows"] = rows
            results.append(result)
            print(
                f"{name:8} {result['file_mb']:.2f} MB, {rows:,} rows: {result['status']} in "
                f"{result['seconds']:.1f} s, answer {result['answer_bytes']:,} bytes; worker RSS "
                f"{result['rss_before_mb']:.0f} MB before, peak {result['peak_mb']:.0f} MB "
                f"(+{result['peak_over_before_mb']:.0f} MB), {result['rss_after_mb']:.0f} MB after"
                f"  [{time.perf_counter() - started:.0f} s]",
                flush=True,
            )
            print(f"         {result['message']}", flush=True)
    finally:
        cluster.destroy()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
