"""`python -m bench.index_choice`: the measurements behind the search indexes (README "Scaling").

The same patients in several layouts, in one throwaway cluster: a plain table with the global
trigram indexes (as before issue 20), with clinic-first trigram indexes (btree_gin), with the
indexes keyed by (clinic, trigram) that schema.sql now has (clinic_trigram_keys(), with
schema.sql's matching_patients(); the other two run the LIKE-only one they were made for), and a
table hash-partitioned by clinic_id with each (`--variants` picks the index sets). For each layout it measures, through the
product's own named queries on a pool made like the service's: a 1,000-patient clinic's searches
(a common surname, a rare name, a phone fragment, a short term), the big clinic's, the export's
filter, the build time and size of the search indexes, and the write cost (single-row inserts,
a set insert, a COPY of 70,000 rows, the import's upsert on (clinic_id, phone)).

The rows are made by set-based SQL, deterministic in their serial number, so both databases
hold the same patients; each clinic's patients are spread over the whole table, as patients
registered over the years are. It takes a while (2,000,000 patients: about 15 minutes on two
shared cores); `--patients` sets the size. Not part of `make bench`: run it when the choice is
in question again.
"""

import argparse
import statistics
import time
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from tqdm import tqdm

from bench import HERE, dataset
from bench import bench_queries as bq
from patients import search
from patients.db import SCHEMA, make_pool
from patients.ops import demo_data
from patients.ops.embedded_pg import Cluster
from patients.repository import queries

PARTITIONS = 16
RARE = "Zeledón"
CHUNK = 100_000

GLOBAL = {
    "patients_search_name_trgm": "USING gin (search_name gin_trgm_ops)",
    "patients_phone_trgm": "USING gin (phone gin_trgm_ops)",
}
CLINIC_FIRST = {
    "patients_clinic_search_name_trgm": "USING gin (clinic_id, search_name gin_trgm_ops)",
    "patients_clinic_phone_trgm": "USING gin (clinic_id, phone gin_trgm_ops)",
}
CLINIC_KEYS = {
    "patients_clinic_name_keys": "USING gin (clinic_trigram_keys(clinic_id, search_name))",
    "patients_clinic_phone_keys": "USING gin (clinic_trigram_keys(clinic_id, phone))",
}
VARIANTS = {"global": GLOBAL, "clinic-first": CLINIC_FIRST, "clinic-keys": CLINIC_KEYS}

# matching_patients() before the (clinic, trigram) keys: the LIKE conditions alone, which the
# trigram indexes (global or clinic-first) answer. The clinic-keys variant runs schema.sql's own.
LIKE_ONLY_MATCHING = r"""
CREATE OR REPLACE FUNCTION matching_patients(
        in_clinic uuid, in_blocked boolean, in_term text, in_phone_digits text)
    RETURNS SETOF patients
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT *
      FROM patients p
     WHERE p.clinic_id = in_clinic
       AND (in_blocked IS NULL OR p.is_blocked = in_blocked)
       AND (in_term IS NULL
            OR p.search_name LIKE ('%' || replace(replace(replace(fold_search(in_term),
                                                                  '\', '\\'),
                                                          '%', '\%'),
                                                  '_', '\_') || '%') ESCAPE '\'
            OR (in_phone_digits IS NOT NULL AND p.phone LIKE ('%' || in_phone_digits || '%')))
$$;
"""


def schema_function(name: str) -> str:
    """schema.sql's own CREATE FUNCTION name(...)."""
    text = SCHEMA.read_text()
    start = text.index(f"CREATE OR REPLACE FUNCTION {name}(")
    return text[start : text.index("\n$$;\n", start) + 4]


def partitioned_schema() -> str:
    """schema.sql with patients hash-partitioned by clinic_id (keys and FKs unchanged)."""
    text = SCHEMA.read_text()
    start = text.index("CREATE TABLE IF NOT EXISTS patients (")
    end = text.index("\n);\n", start)
    parts = "".join(
        f"CREATE TABLE IF NOT EXISTS patients_p{r} PARTITION OF patients "
        f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {r});\n"
        for r in range(PARTITIONS)
    )
    return text[:end] + "\n) PARTITION BY HASH (clinic_id);\n" + parts + text[end + 4 :]


def sql_list(values) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


# Patient number i (1-based) of `total`: every 2,000th is the small clinic's (1,000 of 2,000,000),
# every 10th the big clinic's, the rest spread over the filler clinics (about 1,000 each).
GENERATE = """
INSERT INTO patients (id, clinic_id, full_name, phone, email, dui_ciphertext, dui_key_id,
                      no_show_count, created_at)
SELECT md5('patient' || i)::uuid,
       CASE WHEN %(only)s::uuid IS NOT NULL THEN %(only)s::uuid
            WHEN i %% %(small_every)s = 1 THEN %(small)s::uuid
            WHEN i %% 10 = 0 THEN %(big)s::uuid
            ELSE (%(fillers)s::uuid[])[1 + i %% %(n_fillers)s] END,
       f || ' ' || CASE WHEN abs(hashint4(i * 7 + 3)) %% 200 = 0 THEN %(rare)s ELSE l1 END || ' ' || l2,
       '+503' || CASE WHEN i %% 3 = 0 THEN '6' ELSE '7' END || lpad((i::bigint * 7919 %% 10000000)::text, 7, '0'),
       CASE WHEN abs(hashint4(i * 7 + 4)) %% 10 < 7
            THEN lower(fold_search(f)) || '.' || lower(fold_search(l1)) || i || '@gmail.com' END,
       substr(uuid_send(md5('dui' || i)::uuid) || uuid_send(md5('nonce' || i)::uuid)
              || uuid_send(md5('tag' || i)::uuid), 1, 38),
       'a1b2c3d4e5f6',
       abs(hashint4(i * 7 + 5)) %% 3,
       now() - make_interval(days => abs(hashint4(i * 7 + 6)) %% 1500)
  FROM (SELECT i,
               (%(first)s::text[])[1 + abs(hashint4(i * 7)) %% %(n_first)s] AS f,
               (%(last)s::text[])[1 + abs(hashint4(i * 7 + 1)) %% %(n_last)s] AS l1,
               (%(last)s::text[])[1 + abs(hashint4(i * 7 + 2)) %% %(n_last)s] AS l2
          FROM generate_series(%(lo)s::int, %(hi)s::int) AS i) g
"""


def seed(conn, total: int, desc: str) -> dict:
    small_every = max(2, total // 1000)
    n_fillers = max(1, (total - total // 10 - total // small_every) // 1000)
    clinics = {}
    for role in ("big", "small"):
        clinics[role] = queries.create_clinic(
            conn, name=role, plan="pro", country_code="SV", timezone="America/El_Salvador"
        )["id"]
    fillers = [
        row["id"]
        for row in conn.execute(
            "INSERT INTO clinics (name, plan) SELECT 'filler ' || n, 'pro' "
            "FROM generate_series(1, %s) n RETURNING id::text",
            (n_fillers,),
        ).fetchall()
    ]
    params = {
        "small_every": small_every,
        "small": clinics["small"],
        "only": None,
        "big": clinics["big"],
        "fillers": fillers,
        "n_fillers": n_fillers,
        "rare": RARE,
        "first": demo_data.FIRST,
        "n_first": len(demo_data.FIRST),
        "last": demo_data.LAST,
        "n_last": len(demo_data.LAST),
    }
    with tqdm(total=total, desc=desc, unit="row", unit_scale=True) as bar:
        for lo in range(1, total + 1, CHUNK):
            hi = min(total, lo + CHUNK - 1)
            conn.execute(GENERATE, {**params, "lo": lo, "hi": hi})
            conn.commit()
            bar.update(hi - lo + 1)
    compact(conn, params, clinics, total)
    return clinics


def compact(conn, params, clinics, total) -> None:
    """A clinic whose 1,000 patients came in one import: one stretch of the table, not spread."""
    clinics["compact"] = queries.create_clinic(
        conn, name="compact", plan="pro", country_code="SV", timezone="America/El_Salvador"
    )["id"]
    conn.execute(
        GENERATE, {**params, "only": clinics["compact"], "lo": total + 1, "hi": total + 1000}
    )
    conn.commit()


def drop_search_indexes(conn) -> None:
    for name in [*GLOBAL, *CLINIC_FIRST, *CLINIC_KEYS]:
        conn.execute(f"DROP INDEX IF EXISTS {name}")


def build(conn, indexes: dict) -> dict:
    """Build `indexes` (name -> definition); their build seconds and sizes."""
    out = {}
    for name, definition in indexes.items():
        started = time.monotonic()
        conn.execute(f"CREATE INDEX {name} ON patients {definition}")
        seconds = time.monotonic() - started
        size = conn.execute(
            "SELECT coalesce(sum(pg_relation_size(i.indexrelid)), pg_relation_size(%(n)s::regclass)) "
            "FROM pg_inherits h JOIN pg_index i ON i.indexrelid = h.inhrelid "
            "WHERE h.inhparent = %(n)s::regclass",
            {"n": name},
        ).fetchone()["coalesce"]
        size = int(size)
        out[name] = {"seconds": seconds, "bytes": size}
        print(f"   {name}: {seconds:.1f} s, {size / 1e6:.0f} MB", flush=True)
    conn.execute("ANALYZE patients")
    return out


def timed(call, runs: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def search_call(pool, clinic_id, term):
    params = {
        "clinic_id": clinic_id,
        "blocked": None,
        "page": 1,
        "limit": 50,
        "offset": 0,
        **search.parameters(term),
    }
    query = (
        queries.search_patients
        if search.narrowed_by_trigrams(term)
        else queries.search_patients_short_term
    )

    def call():
        with pool.connection() as conn:
            return query(conn, **params)

    return call


def export_call(pool, clinic_id, term):
    params = {"clinic_id": clinic_id, "blocked": None, "delimiter": ",", **search.parameters(term)}

    def call():
        with (
            pool.connection() as conn,
            conn.cursor() as cur,
            cur.copy(queries.export_patients(conn), params) as copy,
        ):
            for _ in copy:
                pass

    return call


def phone_fragment(conn, clinic_id) -> str:
    phone = conn.execute(
        "SELECT phone FROM patients WHERE clinic_id = %s ORDER BY id LIMIT 1", (clinic_id,)
    ).fetchone()["phone"]
    digits = phone[-7:-1]
    return f"{digits[:4]}-{digits[4:]}"  # 6 digits as people type them, e.g. 5432-10


def searches(url, clinics, fragment_small, fragment_compact, fragment_big) -> dict:
    pool = make_pool(url, max_size=1)
    pool.wait()
    out = {}
    try:
        for role, fragment in (
            ("small", fragment_small),
            ("compact", fragment_compact),
            ("big", fragment_big),
        ):
            clinic = clinics[role]
            slow = 5 if role == "big" else 30
            for kind, term in (
                ("common surname", "hernández"),
                ("rare name", RARE.lower().replace("ó", "o")),
                ("phone fragment", fragment),
                ("short term", "he"),
            ):
                ms = timed(search_call(pool, clinic, term), slow if kind != "rare name" else 30)
                with pool.connection() as conn:
                    total = conn.execute(
                        "SELECT count(*) FROM matching_patients(%s, NULL, %s, %s)",
                        (clinic, term, search.parameters(term)["phone_digits"]),
                    ).fetchone()["count"]
                out[f"{role}: search {kind} ({term!r}, {total} matches)"] = ms
                print(f"   {role} {kind} {term!r}: {ms:.2f} ms ({total} matches)", flush=True)
            ms = timed(export_call(pool, clinic, "hernández"), 3 if role == "big" else 20)
            out[f"{role}: export filtered by 'hernández'"] = ms
            print(f"   {role} export hernández: {ms:.1f} ms", flush=True)
    finally:
        pool.close()
    return out


def writes(conn, clinics) -> dict:
    """Single-row inserts, a 20,000-row set insert and the import's upsert (into a clinic of
    its own, 1,000 patients), each rolled back; VACUUM after, so no search sees their traces."""
    out = {}
    small = clinics["compact"]
    conn.commit()
    started = time.monotonic()
    for n in range(500):
        conn.execute(
            "INSERT INTO patients (clinic_id, full_name, phone) VALUES (%s, %s, %s)",
            (small, f"Ana Hernández Prueba {n}", f"+5039{n:07d}"),
        )
    out["single-row insert, ms each"] = (time.monotonic() - started) * 1000 / 500
    conn.rollback()
    started = time.monotonic()
    conn.execute(
        "INSERT INTO patients (clinic_id, full_name, phone) "
        "SELECT %s, 'Rosa Hernández López ' || n, '+5038' || lpad(n::text, 7, '0') "
        "FROM generate_series(1, 20000) n",
        (small,),
    )
    out["set insert, 20,000 rows/s"] = 20000 / (time.monotonic() - started)
    conn.rollback()
    # COPY of 70,000 rows, as a bulk load by another service would send them.
    rows = [f"{small}\tMarta Hernández Copia {n}\t+5032{n:07d}\n".encode() for n in range(70_000)]
    started = time.monotonic()
    with (
        conn.cursor() as cur,
        cur.copy("COPY patients (clinic_id, full_name, phone) FROM STDIN") as cp,
    ):
        for row in rows:
            cp.write(row)
    out["COPY, 70,000 rows/s"] = 70_000 / (time.monotonic() - started)
    conn.rollback()
    # The import's upsert: half new phones, half the small clinic's own (names changed).
    started = time.monotonic()
    conn.execute(
        """
        INSERT INTO patients AS p (clinic_id, full_name, phone)
        SELECT %(c)s::uuid, 'Luis Hernández ' || n, '+5038' || lpad(n::text, 7, '0')
          FROM generate_series(1, 1000) n
        UNION ALL
        SELECT %(c)s::uuid, full_name || ' Jr', phone FROM patients WHERE clinic_id = %(c)s
        ON CONFLICT (clinic_id, phone) DO UPDATE SET full_name = EXCLUDED.full_name
        """,
        {"c": small},
    )
    out["upsert, 2,000 rows (half known)/s"] = 2000 / (time.monotonic() - started)
    conn.rollback()
    conn.autocommit = True
    conn.execute("VACUUM patients")
    for what, value in out.items():
        print(f"   {what}: {value:.2f}", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=2_000_000)
    parser.add_argument(
        "--data-dir", type=Path, default=HERE / "data" / "index-choice", help="its cluster"
    )
    parser.add_argument("--only", choices=("flat", "part"), help="one database only")
    parser.add_argument(
        "--variants", default="global,clinic-first,clinic-keys", help="index sets, comma-separated"
    )
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    args.data_dir.chmod(0o755)
    cluster = Cluster(args.data_dir / "pg")
    if not cluster.initialised():
        dataset.init_tuned(cluster)
    cluster.start()
    results = {}
    try:
        base = cluster.url
        for layout in ("flat", "part") if not args.only else (args.only,):
            with psycopg.connect(base, autocommit=True) as admin:
                exists = admin.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (layout,)
                ).fetchone()
                if not exists:
                    admin.execute(f"CREATE DATABASE {layout}")
            url = psycopg.conninfo.make_conninfo(base, dbname=layout)
            with psycopg.connect(url, row_factory=dict_row) as conn:
                fresh = not conn.execute("SELECT to_regclass('patients') AS t").fetchone()["t"]
                if fresh:
                    bq.loading_session(conn)
                    conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
                    conn.execute(partitioned_schema() if layout == "part" else SCHEMA.read_text())
                    drop_search_indexes(conn)
                    conn.commit()
                    clinics = seed(conn, args.patients, f"{layout} patients")
                    conn.execute("CREATE TABLE IF NOT EXISTS trial_meta (clinics jsonb)")
                    conn.execute(
                        "INSERT INTO trial_meta VALUES (%s)", (psycopg.types.json.Jsonb(clinics),)
                    )
                    conn.commit()
                clinics = conn.execute("SELECT clinics FROM trial_meta").fetchone()["clinics"]
            with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE patients")
                fragments = [phone_fragment(conn, clinics[r]) for r in ("small", "compact", "big")]
                for variant in args.variants.split(","):
                    indexes = VARIANTS[variant]
                    name = f"{layout}, {variant}"
                    print(f"== {name}", flush=True)
                    bq.loading_session(conn)
                    drop_search_indexes(conn)
                    if variant == "clinic-keys":  # its indexes are gone: the keys may change
                        conn.execute(schema_function("clinic_trigram_keys"))
                        conn.execute(schema_function("matching_patients"))
                    else:
                        conn.execute(LIKE_ONLY_MATCHING)
                    built = build(conn, indexes)
                    figures = searches(url, clinics, *fragments)
                    with psycopg.connect(url, row_factory=dict_row) as wconn:
                        figures.update(writes(wconn, clinics))
                    results[name] = {"indexes": built, "figures": figures}
                sizes = conn.execute(
                    "SELECT sum(pg_relation_size(c.oid)) AS heap, sum(pg_indexes_size(c.oid)) AS idx "
                    "FROM pg_class c WHERE c.relname ~ '^patients(_p[0-9]+)?$'"
                ).fetchone()
                print(
                    f"   {layout}: table {int(sizes['heap']) / 1e6:.0f} MB, "
                    f"indexes {int(sizes['idx']) / 1e6:.0f} MB",
                    flush=True,
                )
    finally:
        cluster.stop()
    print()
    names = list(results)
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in results[names[0]]["figures"]:
        print(
            f"| {key} | "
            + " | ".join(f"{results[n]['figures'].get(key, float('nan')):.2f}" for n in names)
            + " |"
        )
    for n in names:
        for index, info in results[n]["indexes"].items():
            print(f"{n}: {index} {info['seconds']:.1f} s {info['bytes'] / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
