"""The growth table the other way round (issue 20): one clinic's searches while the others grow.

One database of its own (its own cluster beside the main data set's), grown in steps: first the
measured clinic's 1,000 patients among 9,000 of other clinics (10,000 in all), then other clinics'
patients added by set-based SQL up to 1,000,000 and 5,000,000. The measured clinic stays spread
over the whole table, as a clinic registering patients over the years is: at each step a share of
its patients (as many as the new stretch's share of the table) moves into the new stretch, one
every `total / 1,000` rows, so it keeps 1,000 patients at an even density. At each size the same four
searches of the measured clinic (a common surname, a rare name, a phone fragment, a term too
short for trigrams) are measured over HTTP against plain PostgreSQL running the same named query,
with the same indexes; and what one PostgreSQL holds: table and index bytes per patient.

Before each step's rows go in, the secondary indexes are dropped, and schema.sql builds them
again after (timed), as the main data set is loaded; then VACUUM ANALYZE. The cluster is
rebuilt every run (growing it is the measurement) and removed at the end.
"""

import dataclasses
import time
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from tqdm import tqdm

from bench import bench_queries as bq
from bench import dataset, load
from bench.report import Row
from patients.db import apply_schema
from patients.ops import demo_data
from patients.ops.embedded_pg import Cluster
from patients.repository import queries

FLAT_TARGET = 1.5
CHUNK = 250_000
RARE = "Zeledón"  # planted in 5 of the measured clinic's patients (and 1 in 200 of everyone's)


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    steps: tuple[int, ...]  # patients in the whole table at each measurement
    clinic: int  # the measured clinic's patients; every other clinic holds as many


FULL = ScaleSpec(steps=(10_000, 1_000_000, 5_000_000), clinic=1_000)
QUICK = ScaleSpec(steps=(1_000, 3_000, 6_000), clinic=100)

# Patient number i (1-based) of the table. Its clinic is clinics[1 + i % n]: the clinics of one
# step take turns, so each clinic's patients are spread over that step's stretch of the table;
# with `every`, each every-th patient is followed by one of the measured clinic's (`m`: its
# share of the stretch, in the place of the ones move_out() took; phones +5032…, its own).
# Names as bench/dataset.py's (demo_data's lists, uniform); phones unique over the table
# (i * 7919 mod 10^7 is a permutation); 70% with an email; a DUI-sized ciphertext (38 bytes:
# nonce, ten characters, tag), so the bytes per patient are a real row's.
PATIENTS_SQL = """
INSERT INTO patients (clinic_id, full_name, phone, email, dui_ciphertext, dui_key_id,
                      no_show_count, created_at)
SELECT CASE WHEN m THEN %(measured)s::uuid ELSE (%(clinics)s::uuid[])[1 + i %% %(n_clinics)s] END,
       f || ' ' || CASE WHEN abs(hashint4(i * 7 + 3)) %% 200 = 0 THEN %(rare)s ELSE l1 END
         || ' ' || l2,
       '+503' || CASE WHEN m THEN '2' WHEN i %% 3 = 0 THEN '6' ELSE '7' END
         || lpad((i::bigint * 7919 %% 10000000)::text, 7, '0'),
       CASE WHEN abs(hashint4(i * 7 + 4)) %% 10 < 7
            THEN fold_search(f) || '.' || fold_search(l1) || i || '@gmail.com' END,
       substr(uuid_send(md5('dui' || i)::uuid) || uuid_send(md5('nonce' || i)::uuid)
              || uuid_send(md5('tag' || i)::uuid), 1, 38),
       'a1b2c3d4e5f6',
       abs(hashint4(i * 7 + 5)) %% 3,
       now() - make_interval(days => abs(hashint4(i * 7 + 6)) %% 1500)
  FROM (SELECT i, m,
               (%(first)s::text[])[1 + abs(hashint4(i * 7)) %% %(n_first)s] AS f,
               (%(last)s::text[])[1 + abs(hashint4(i * 7 + 1)) %% %(n_last)s] AS l1,
               (%(last)s::text[])[1 + abs(hashint4(i * 7 + 2)) %% %(n_last)s] AS l2
          FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
               CROSS JOIN LATERAL (SELECT false AS m
                                   UNION ALL
                                   SELECT true WHERE i %% nullif(%(every)s::int, 0) = 0) x
         ORDER BY i, m) g
"""


def grow(conn, lo: int, hi: int, clinics: list[str], bar, measured=None, every=0) -> None:
    """Patients lo..hi, taking turns among `clinics`; after every `every`-th one, one more of
    `measured`'s."""
    params = {
        "measured": measured,
        "every": every,
        "clinics": clinics,
        "n_clinics": len(clinics),
        "rare": RARE,
        "first": demo_data.FIRST,
        "n_first": len(demo_data.FIRST),
        "last": demo_data.LAST,
        "n_last": len(demo_data.LAST),
    }
    for start in range(lo, hi + 1, CHUNK):
        end = min(hi, start + CHUNK - 1)
        conn.execute(PATIENTS_SQL, {**params, "lo": start, "hi": end})
        conn.commit()
        bar.update(end - start + 1)


def new_clinics(conn, count: int, first: int) -> list[str]:
    return [
        row["id"]
        for row in conn.execute(
            "INSERT INTO clinics (name, plan) SELECT 'Otra clínica ' || n, 'pro' "
            "FROM generate_series(%s::int, %s::int) n RETURNING id::text",
            (first, first + count - 1),
        ).fetchall()
    ]


def sizes(conn) -> dict:
    row = conn.execute(
        "SELECT count(*) AS patients, pg_relation_size('patients') AS heap,"
        "       pg_table_size('patients') AS table_bytes, pg_indexes_size('patients') AS indexes"
        "  FROM patients"
    ).fetchone()
    row["by_index"] = {
        r["name"]: r["bytes"]
        for r in conn.execute(
            "SELECT indexrelid::regclass::text AS name, pg_relation_size(indexrelid) AS bytes "
            "FROM pg_index WHERE indrelid = 'patients'::regclass ORDER BY 2 DESC"
        )
    }
    return row


class Scale:
    def __init__(self, bench, data_dir: Path, spec: ScaleSpec):
        self.bench, self.spec = bench, spec
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o755)  # the server runs as `postgres` when we are root
        self.cluster = Cluster(data_dir / "pg")
        self.figures: dict[str, list[Row]] = {}

    def run(self, gunicorn, service_env, log) -> dict:
        """Grow, measure at each step; the rows go to bench.rows. Returns the run's context."""
        if self.cluster.initialised():
            self.cluster.destroy()
        dataset.init_tuned(self.cluster)
        self.cluster.start()
        try:
            return self.grow_and_measure(gunicorn, service_env, log)
        finally:
            self.cluster.destroy()

    def grow_and_measure(self, gunicorn, service_env, log) -> dict:
        from bench.run import Plain  # the same plain side as the main figures

        url = self.cluster.url
        spec = self.spec
        with psycopg.connect(url, row_factory=dict_row) as conn:
            apply_schema(conn)
            measured = queries.create_clinic(
                conn, name="Medida", plan="pro", country_code="SV", timezone="America/El_Salvador"
            )["id"]
            conn.commit()
        built = []
        with (
            gunicorn("app:create_app()", service_env(url), log) as server,
            tqdm(total=spec.steps[-1], desc="scale: patients", unit="row", unit_scale=True) as bar,
        ):
            plain = Plain(url)
            try:
                done = 0
                for step, total in enumerate(spec.steps):
                    with psycopg.connect(url, row_factory=dict_row) as conn:
                        bq.loading_session(conn)
                        bq.drop_secondary_indexes(conn)
                        conn.commit()
                        others = new_clinics(
                            conn, (total - done) // spec.clinic - (step == 0), len(built) + 1
                        )
                        conn.commit()
                        built.extend(others)
                        if step == 0:
                            grow(conn, done + 1, total, [measured, *others], bar)
                        else:
                            every = total // spec.clinic
                            moved = total // every - done // every
                            move_out(conn, measured, moved)
                            grow(conn, done + 1, total, others, bar, measured, every)
                        queries_plant_rare(conn, measured)
                    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
                        bq.loading_session(conn)
                        started = time.monotonic()
                        apply_schema(conn)  # builds the indexes dropped above
                        build_s = time.monotonic() - started
                        bq.analyze(conn)
                        size = sizes(conn)
                        fragment = phone_fragment(conn, measured)
                    done = total
                    bar.clear()
                    print(f"   {total:,} patients: indexes built in {build_s:.1f} s", flush=True)
                    self.size_row(total, size, build_s)
                    self.measure(server.port, plain, measured, total, fragment)
                    bar.refresh()
            finally:
                plain.close()
        self.flat_rows()
        return {"steps": list(spec.steps), "clinic": spec.clinic, "clinics": len(built) + 1}

    def measure(self, port, plain, clinic_id, total, fragment) -> None:
        bench = self.bench
        client = load.HttpClient(port, bench.token(clinic_id))
        try:
            for kind, term in kinds(fragment):
                row = bench.latency_pair(
                    f"{kind} (`{term}`), {total:,} patients in the table",
                    "scale",
                    clinic_id,
                    term,
                    1,
                    bench.n(300),
                    client,
                    plain,
                )
                row.what += f" — {row.values['matches']:,} matches"
                row.target = ""
                row.values["total"] = total
                row.values["kind"] = kind
                bench.rows.append(row)
                self.figures.setdefault(kind, []).append(row)
        finally:
            client.close()

    def size_row(self, total: int, size: dict, build_s: float) -> None:
        patients = size["patients"]
        table, indexes = size["table_bytes"], size["indexes"]
        each = ", ".join(
            f"{name.removeprefix('patients_')} {b / patients:.0f}"
            for name, b in size["by_index"].items()
        )
        self.bench.rows.append(
            Row(
                "scale-size",
                f"{total:,} patients",
                f"{table / patients:.0f} B/patient ({table / 1e6:,.0f} MB)",
                f"{indexes / patients:.0f} B/patient ({indexes / 1e6:,.0f} MB): {each}",
                ratio_text=f"{(table + indexes) / patients:.0f} B/patient; indexes built in "
                f"{build_s:.1f} s",
                values={
                    "patients": patients,
                    "table_bytes": table,
                    "heap_bytes": size["heap"],
                    "index_bytes": indexes,
                    "by_index": size["by_index"],
                    "build_s": build_s,
                },
            )
        )

    def flat_rows(self) -> None:
        """Per search: the largest table's p50 over the smallest's, both sides."""
        first, last = self.spec.steps[0], self.spec.steps[-1]
        for kind, rows in self.figures.items():
            small, large = rows[0].values, rows[-1].values
            ours = large["ours_p50"] / small["ours_p50"]
            plain = large["plain_p50"] / small["plain_p50"]
            self.bench.rows.append(
                Row(
                    "scale",
                    f"{kind}: {first:,} → {last:,} patients in the table",
                    f"{latency_text_ms(small['ours_p50'])} → {latency_text_ms(large['ours_p50'])}",
                    f"{latency_text_ms(small['plain_p50'])} → "
                    f"{latency_text_ms(large['plain_p50'])} ({plain:.2f}×)",
                    ours,
                    ratio_text=f"{ours:.2f}×",
                    target=f"≤ {FLAT_TARGET}×",
                    ok=ours <= FLAT_TARGET,
                    values={"ours_growth": ours, "plain_growth": plain, "kind": kind},
                )
            )


def latency_text_ms(seconds: float) -> str:
    return f"p50 {seconds * 1000:.2f} ms"


def kinds(fragment: str) -> list[tuple[str, str]]:
    rare = demo_data.ascii_fold(RARE)  # typed without the accent, as people do
    return [
        ("common surname", "hernández"),
        ("rare name", rare),
        ("phone fragment", fragment),
        ("short term", "he"),
    ]


def move_out(conn, clinic_id: str, count: int) -> None:
    """Take `count` of the clinic's patients out, evenly over its rows in table order, so the
    ones left stay spread and the next stretch's share of the clinic keeps it at its size."""
    conn.execute(
        "DELETE FROM patients WHERE clinic_id = %(clinic)s AND id IN ("
        "  SELECT id FROM (SELECT id, row_number() OVER (ORDER BY ctid) AS n,"
        "                         count(*) OVER () AS size"
        "                    FROM patients WHERE clinic_id = %(clinic)s) t"
        "   WHERE (n * %(count)s) / size <> ((n - 1) * %(count)s) / size)",
        {"clinic": clinic_id, "count": count},
    )
    conn.commit()


def queries_plant_rare(conn, clinic_id: str) -> None:
    conn.execute(
        "UPDATE patients SET full_name = split_part(full_name, ' ', 1) || ' ' || %(rare)s || ' '"
        "       || split_part(full_name, ' ', 3)"
        " WHERE clinic_id = %(clinic)s"
        "   AND id IN (SELECT id FROM patients WHERE clinic_id = %(clinic)s ORDER BY id LIMIT 5)",
        {"rare": RARE, "clinic": clinic_id},
    )
    conn.commit()


def phone_fragment(conn, clinic_id: str) -> str:
    """Six digits of one of the clinic's phones, as people type them (`4031-91`)."""
    phone = conn.execute(
        "SELECT phone FROM patients WHERE clinic_id = %s ORDER BY phone LIMIT 1", (clinic_id,)
    ).fetchone()["phone"]
    digits = phone[-7:-1]
    return f"{digits[:4]}-{digits[4:]}"
