"""deploy/citus.sql's part that plain PostgreSQL can check (README "Distributing on Citus").

Citus itself cannot be installed here by the suite (no package in Debian's archive; the README
says how it was built and run by hand, Citus 13.2.2 on PostgreSQL 15, and what passed there).
What these tests hold without it: schema.sql still runs the way apply_schema() sends it to a
Citus coordinator, and every SQL function of schema.sql that reads a tenant table is one that
deploy/citus.sql rewrites, since Citus cannot plan such a function once it is inlined.
"""

import re

import psycopg

from patients.db import CITUS_SCHEMA, SCHEMA, as_one_block

TENANT_TABLES = (
    "patients",
    "doctors",
    "appointments",
    "audit_log",
    "inbound_messages",
    "whatsapp_identities",
    "whatsapp_statuses",
)
TABLE_NAMES = "|".join(TENANT_TABLES)
READS_A_TENANT_TABLE = re.compile(rf"\b(?:FROM|JOIN)\s+(?:{TABLE_NAMES})\b", re.I)


def rewritten_by_citus_sql() -> set[str]:
    """The signatures deploy/citus.sql turns into PL/pgSQL ('name(type,...)'::regprocedure)."""
    text = CITUS_SCHEMA.read_text()
    block = text[text.index("WHERE p.oid IN (") : text.index("AND p.prolang")]
    return set(re.findall(r"'([a-z_]+\([a-z, ]*\))'::regprocedure", block))


def test_schema_runs_as_one_block_as_on_citus(database_url):
    """On Citus, apply_schema() sends schema.sql inside one DO block: every statement in it must
    be one PL/pgSQL can run (no bare SELECT, no CREATE INDEX CONCURRENTLY)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(as_one_block(SCHEMA))
        assert conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname = 'patients' AND relkind = 'r'"
        ).fetchone() == (1,)
        conn.rollback()


def test_every_sql_function_reading_tenant_rows_is_rewritten_for_citus(sql):
    functions = sql.execute(
        "SELECT p.oid::regprocedure::text AS signature, p.prosrc"
        "  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
        " WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'sql'"
    ).fetchall()
    reading = {f["signature"] for f in functions if READS_A_TENANT_TABLE.search(f["prosrc"])}
    citus = sql.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
    if citus.fetchone()["exists"]:
        # A Citus database (TEST_DATABASE_URL): deploy/citus.sql has rewritten every one.
        assert reading == set()
        return
    assert reading == {
        "matching_patients(uuid,boolean,text,text)",
        "whatsapp_sender_patients(uuid,text,text)",
        "whatsapp_known_phone(uuid,text,text)",
        "whatsapp_sender_blocked(uuid,text,text,uuid)",
    }
    assert rewritten_by_citus_sql() == reading
