"""schema.sql applies again and again; rows with only the contract's columns insert."""

import psycopg
import pytest

from patients.db import apply_schema


def table_shapes(conn):
    return conn.execute(
        "SELECT table_name, column_name, data_type, column_default FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY 1, 2"
    ).fetchall()


def test_schema_applies_twice_without_change(database_url):
    with psycopg.connect(database_url) as conn:
        before = table_shapes(conn)
        apply_schema(conn)
        apply_schema(conn)
        assert table_shapes(conn) == before
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchone()
        apply_schema(conn)
        assert (
            conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'").fetchone()
            == indexes
        )


def test_init_db_command(runner):
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "Schema applied" in result.output


def test_contract_columns_are_enough(sql):
    """Other services insert with only the contract's columns: everything we add has a default."""
    clinic = sql.execute(
        "INSERT INTO clinics (name, plan) VALUES ('Solo contrato', 'basic') RETURNING *"
    ).fetchone()
    assert clinic["country_code"] == "SV" and clinic["timezone"] == "America/El_Salvador"
    doctor = sql.execute(
        "INSERT INTO doctors (clinic_id, full_name, specialty) VALUES (%s, 'Dr. X', 'General') RETURNING id",
        (clinic["id"],),
    ).fetchone()
    patient = sql.execute(
        "INSERT INTO patients (clinic_id, full_name, phone) VALUES (%s, 'Ana', '+50370000000') RETURNING *",
        (clinic["id"],),
    ).fetchone()
    assert patient["no_show_count"] == 0 and patient["is_blocked"] is False
    sql.execute(
        "INSERT INTO appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time, status) "
        "VALUES (%s, %s, %s, '2026-01-01', '09:00', 'pending')",
        (clinic["id"], patient["id"], doctor["id"]),
    )
    message = sql.execute(
        "INSERT INTO inbound_messages (clinic_id, message_id, processed_at) "
        "VALUES (%s, 'wamid.solo', NULL) RETURNING *",
        (clinic["id"],),
    ).fetchone()
    assert message["sender_phone"] is None and message["claim_count"] == 0
    assert message["claimed_until"] is None and message["received_at"] is not None


# Tables that hold no tenant's data: the tenants themselves, and WhatsApp notifications for a
# number no clinic has (so no clinic to key them by).
NOT_TENANT_DATA = ["clinics", "whatsapp_unrouted"]


def test_phone_unique_per_clinic_and_tenant_keys(sql):
    keys = sql.execute(
        "SELECT conrelid::regclass::text AS tab, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE contype IN ('p', 'u') AND connamespace = 'public'::regnamespace "
        "AND conrelid::regclass::text <> ALL (%s)",
        (NOT_TENANT_DATA,),
    ).fetchall()
    assert keys
    for key in keys:
        assert "clinic_id" in key["def"], key


CLINIC_KEYS = {
    "patients_clinic_name_keys": "(clinic_trigram_keys(clinic_id, search_name))",
    "patients_clinic_phone_keys": "(clinic_trigram_keys(clinic_id, phone))",
}
SUPERSEDED = {
    "patients_search_name_trgm": "(search_name gin_trgm_ops)",
    "patients_phone_trgm": "(phone gin_trgm_ops)",
    "patients_clinic_search_name_trgm": "(clinic_id, search_name gin_trgm_ops)",
    "patients_clinic_phone_trgm": "(clinic_id, phone gin_trgm_ops)",
}


def patient_indexes(conn) -> dict:
    """name -> whether it is valid, for the patients table's indexes."""
    rows = conn.execute(
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
        "WHERE indrelid = 'patients'::regclass"
    ).fetchall()
    return dict(rows)


def test_a_database_with_the_older_trigram_indexes_gets_the_clinic_keys_ones(database_url):
    """A database made before the (clinic, trigram) keys, with the global trigram indexes or the
    clinic-first btree_gin ones: applying the schema builds the keys' indexes and drops the older
    ones, which no query reads any more and every write would still pay for."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP INDEX patients_clinic_name_keys, patients_clinic_phone_keys")
        for name, columns in SUPERSEDED.items():
            conn.execute(f"CREATE INDEX {name} ON patients USING gin {columns}")
        apply_schema(conn)
        indexes = patient_indexes(conn)
        assert {name: indexes.get(name) for name in CLINIC_KEYS} == dict.fromkeys(CLINIC_KEYS, True)
        assert not set(indexes) & set(SUPERSEDED), indexes
        for name, expression in CLINIC_KEYS.items():
            definition = conn.execute("SELECT pg_get_indexdef(%s::regclass)", (name,)).fetchone()
            assert definition[0].endswith(f"USING gin {expression}"), definition


def test_an_index_a_failed_concurrent_build_left_invalid_is_built_again(database_url):
    """CREATE INDEX CONCURRENTLY that fails (here: it cannot wait out a writer within its
    lock_timeout) leaves an INVALID index behind, which CREATE INDEX IF NOT EXISTS would skip:
    applying the schema drops it and builds it again."""
    with (
        psycopg.connect(database_url) as writer,
        psycopg.connect(database_url, autocommit=True) as conn,
    ):
        conn.execute("DROP INDEX patients_clinic_phone_keys")
        writer.execute("LOCK TABLE patients IN ROW EXCLUSIVE MODE")  # a write in progress
        conn.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute(
                "CREATE INDEX CONCURRENTLY patients_clinic_phone_keys "
                "ON patients USING gin (clinic_trigram_keys(clinic_id, phone))"
            )
        writer.rollback()
        conn.execute("RESET lock_timeout")
        assert patient_indexes(conn)["patients_clinic_phone_keys"] is False
        apply_schema(conn)
        assert patient_indexes(conn)["patients_clinic_phone_keys"] is True
        apply_schema(conn)  # and again: nothing left to do
        assert patient_indexes(conn)["patients_clinic_phone_keys"] is True
