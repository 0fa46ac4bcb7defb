"""The benchmark's data set: a PostgreSQL cluster in bench/data/ holding a million patients.

Built once with COPY (a few minutes on two cores), then reused: `bench_meta` records which spec
built it and where its parts are (clinic ids by role, the patient with 50 appointments), and a run
whose spec differs starts from a fresh cluster. Every run applies schema.sql again, so an index
another change added is built on the existing rows before anything is measured.
"""

import base64
import dataclasses
import datetime as dt
import io
import json
import random
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from tqdm import tqdm

from bench import bench_queries as bq
from patients.db import apply_schema
from patients.dui import DuiKeys
from patients.ops import demo_data
from patients.ops.embedded_pg import Cluster
from patients.repository import queries

# A fixed key, so the data set is reproducible and the service started on it can open its DUIs.
BENCH_DUI_KEY = base64.urlsafe_b64encode(b"bench-dui-key-not-a-secret-32byt").decode()
RARE_SURNAME = "Zeledón"  # planted in a handful of patients per clinic: the "rare name" search


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    total: int  # patients over all clinics
    clinics: int
    big: int  # the clinic most figures run on
    growth: tuple[int, ...]  # smaller clinics for the growth figures (among `clinics`)
    appointments_per_patient: int = 3  # in the big clinic
    record_appointments: int = 50  # the one patient of the full-record figure
    doctors: int = 5
    rare: int = 5  # patients per clinic with RARE_SURNAME
    seed: int = 8

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def sizes(self) -> list[int]:
        """Patients per clinic: the big one, the growth ones, then the rest shared evenly."""
        fixed = [self.big, *self.growth]
        rest = self.clinics - len(fixed)
        share, extra = divmod(self.total - sum(fixed), rest)
        return fixed + [share + (1 if i < extra else 0) for i in range(rest)]


FULL = Spec("full", total=1_000_000, clinics=100, big=200_000, growth=(1_000, 10_000, 100_000))
QUICK = Spec("quick", total=3_000, clinics=6, big=1_200, growth=(100, 300, 600), rare=3)


def cluster_for(data_dir: Path) -> Cluster:
    data_dir.mkdir(parents=True, exist_ok=True)
    # The server runs as `postgres` when we are root: it must be able to reach its folder.
    data_dir.chmod(0o755)
    return Cluster(data_dir / "pg")


def init_tuned(cluster: Cluster) -> None:
    """A new cluster with the bench's WAL and buffer settings, stopped (they apply at its next
    start)."""
    cluster.init()
    cluster.start()
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        bq.tune_wal(conn)
        bq.tune_buffers(conn)
    cluster.stop()


def prepare(data_dir: Path, spec: Spec) -> tuple[Cluster, dict]:
    """Start the cluster in data_dir and make sure it holds `spec`'s data set; its layout."""
    cluster = cluster_for(data_dir)
    layout = None
    if cluster.initialised():
        try:
            cluster.start()
            layout = existing_layout(cluster.url, spec)
        except (RuntimeError, psycopg.Error) as exc:
            print(f"the cluster in {cluster.datadir} is not usable ({exc}); rebuilding")
        if layout is None:
            cluster.destroy()
    if layout is not None:
        print(f"reusing the {spec.name} data set in {cluster.datadir}")
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            apply_schema(conn)  # a new index in schema.sql is built on the existing rows
        return cluster, layout

    started = time.monotonic()
    init_tuned(cluster)
    cluster.start(fsync=False)  # loading only; restarted with fsync on before measuring
    with psycopg.connect(cluster.url, row_factory=dict_row) as conn:
        apply_schema(conn)
        conn.commit()
        layout = load(conn, spec)
        conn.commit()
    with psycopg.connect(cluster.url, row_factory=dict_row, autocommit=True) as conn:
        build_indexes(conn)
        print("VACUUM ANALYZE ...", flush=True)
        bq.analyze(conn)
        bq.ensure_meta(conn)
        bq.record_layout(conn, spec=spec.key(), layout=json.dumps(layout))
    cluster.stop()
    cluster.start()
    print(f"data set built in {time.monotonic() - started:.0f} s")
    return cluster, layout


def existing_layout(url: str, spec: Spec) -> dict | None:
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        bq.ensure_meta(conn)
        row = bq.dataset_layout(conn)
    if row and row["spec"] == spec.key():
        return row["layout"]
    return None


def load(conn: psycopg.Connection, spec: Spec) -> dict:
    rng = random.Random(spec.seed)
    keys = DuiKeys(BENCH_DUI_KEY)
    bq.loading_session(conn)
    bq.drop_secondary_indexes(conn)

    sizes = spec.sizes()
    clinic_ids = []
    for number, size in enumerate(sizes):
        clinic = queries.create_clinic(
            conn,
            name=f"Bench {number:03d} ({size} pacientes)",
            plan="pro",
            country_code="SV",
            timezone="America/El_Salvador",
        )
        clinic_ids.append(clinic["id"])
    import_clinic = queries.create_clinic(
        conn, name="Bench import", plan="pro", country_code="SV", timezone="America/El_Salvador"
    )["id"]
    big_id = clinic_ids[0]
    doctor_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(spec.doctors)]
    for doctor_id in doctor_ids:
        queries.create_doctor(conn, id=doctor_id, clinic_id=big_id, **demo_data.doctor(rng))

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    big_patients = []
    serial = 0  # global, so phones (and emails) are unique per clinic and across clinics
    with (
        conn.cursor() as cur,
        cur.copy(queries.copy_patients_in.sql) as copy,
        tqdm(total=spec.total, desc="patients", unit="row", unit_scale=True) as bar,
    ):
        for clinic_id, size in zip(clinic_ids, sizes, strict=True):
            for index in range(size):
                p = demo_data.patient(rng, serial)
                serial += 1
                if index < spec.rare:
                    first, *_ = p["full_name"].split(" ")
                    p["full_name"] = f"{first} {RARE_SURNAME} {rng.choice(demo_data.LAST)}"
                patient_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                created = now - dt.timedelta(days=rng.randrange(1500), seconds=rng.randrange(86400))
                copy.write_row(
                    demo_data.patient_copy_row(rng, keys, clinic_id, patient_id, p, created)
                )
                if clinic_id == big_id:
                    big_patients.append(patient_id)
                if index % 5000 == 4999:
                    bar.update(5000)
            bar.update(size % 5000)

    record_patient = big_patients[len(big_patients) // 2]
    today = now.date()
    appointments = (
        spec.appointments_per_patient * (len(big_patients) - 1) + spec.record_appointments
    )
    with (
        conn.cursor() as cur,
        cur.copy(queries.copy_appointments_in.sql) as copy,
        tqdm(total=appointments, desc="appointments", unit="row", unit_scale=True) as bar,
    ):
        for number, patient_id in enumerate(big_patients):
            count = (
                spec.record_appointments
                if patient_id == record_patient
                else spec.appointments_per_patient
            )
            for _ in range(count):
                day = today + dt.timedelta(days=rng.randrange(-700, 60))
                start = dt.time(rng.randrange(7, 17), rng.choice((0, 20, 40)))
                copy.write_row(
                    (
                        big_id,
                        patient_id,
                        rng.choice(doctor_ids),
                        day,
                        start,
                        rng.choice(demo_data.STATUSES),
                    )
                )
            if number % 5000 == 4999:
                bar.update(5000 * spec.appointments_per_patient)
        bar.update(appointments - bar.n)

    return {
        "big": big_id,
        "by_size": {str(size): cid for size, cid in zip(sizes, clinic_ids, strict=True)},
        "typical": clinic_ids[len(spec.growth) + 1],
        "typical_size": sizes[len(spec.growth) + 1],
        "import": import_clinic,
        "record_patient": record_patient,
        "record_appointments": spec.record_appointments,
        "sizes": sizes,
    }


def build_indexes(conn: psycopg.Connection) -> None:
    """schema.sql again rebuilds the dropped indexes; the bar follows pg_stat_progress_create_index."""
    bq.loading_session(conn)
    done = threading.Event()
    failure = []

    def build():
        try:
            with psycopg.connect(conn.info.dsn, autocommit=True) as builder:
                bq.loading_session(builder)
                apply_schema(builder)
        except Exception as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=build, name="index-build")
    worker.start()
    with tqdm(desc="indexes", unit="s", bar_format="{desc}: {elapsed} {postfix}") as bar:
        while not done.wait(1.0):
            row = bq.index_build_progress(conn)
            if row:
                bar.set_postfix_str(f"{row['index']} {row['phase']}", refresh=False)
            bar.update(1)
    worker.join()
    if failure:
        raise failure[0]


def service_env(url: str) -> dict:
    return {"DATABASE_URL": url, "DUI_KEYS": BENCH_DUI_KEY}


if __name__ == "__main__":  # build (or check) the data set alone
    import sys

    chosen = QUICK if "--quick" in sys.argv else FULL
    from patients.config import bench_settings

    root = Path(bench_settings()["data_dir"] or Path(__file__).resolve().parent / "data")
    built_cluster, built_layout = prepare(root / chosen.name, chosen)
    print(json.dumps({k: v for k, v in built_layout.items() if k != "sizes"}, indent=2))


# An import file under the 5 MB cap, with room for the multipart envelope.
IMPORT_FILE_LIMIT = 5 * 1024 * 1024 - 16 * 1024


def import_csv(rows: int) -> tuple[bytes, int]:
    """A spreadsheet export as operators send it (local phone formats, some rows without an
    email), of `rows` new patients or as many as fit IMPORT_FILE_LIMIT bytes; and how many."""
    rng = random.Random(5)
    out = io.StringIO()
    out.write("Nombre,Teléfono,Email,DUI\n")
    size = len(out.getvalue().encode())
    written = 0
    for serial in range(5_000_000, 5_000_000 + rows):
        p = demo_data.patient(rng, serial)
        local = p["phone"][4:]
        phone = rng.choice((f"{local[:4]}-{local[4:]}", f"+503 {local[:4]} {local[4:]}", local))
        line = f"{p['full_name']},{phone},{p['email'] or ''},{p['dui']}\n"
        size += len(line.encode())
        if size > IMPORT_FILE_LIMIT:
            break
        out.write(line)
        written += 1
    return out.getvalue().encode(), written
