"""A small clinic in a crowded table: its searches go through the (clinic, trigram) keys' indexes.

The clinic's 300 patients are spread among 60,000 of other clinics (as patients registered over
the years are), so the planner weighs real statistics. Each plan is EXPLAIN (FORMAT JSON) of the
app's own named query (queries/*.sql, through the app's pool and its settings), for each kind of
search the list answers and for the export's filter.
"""

import json
import re

import pytest

from patients import search
from patients.repository import queries
from tests.helpers import make_token

OTHERS = 60_000
CLINICS = 60  # other clinics, 1,000 patients each
SMALL_EVERY = 60  # every 60th row is the small clinic's: 1,000 patients spread over the table
CLINIC_KEYS = {"patients_clinic_name_keys", "patients_clinic_phone_keys"}
SUPERSEDED = {
    "patients_search_name_trgm",
    "patients_phone_trgm",
    "patients_clinic_search_name_trgm",
    "patients_clinic_phone_trgm",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crowded(sql):
    """(the small clinic's id, a phone fragment of one of its patients as people type it)."""
    small = sql.execute(
        "INSERT INTO clinics (name) VALUES ('Clínica Pequeña') RETURNING id::text"
    ).fetchone()["id"]
    others = [
        row["id"]
        for row in sql.execute(
            "INSERT INTO clinics (name) SELECT 'Otra clínica ' || n FROM generate_series(1, %s) n "
            "RETURNING id::text",
            (CLINICS,),
        ).fetchall()
    ]
    sql.execute(
        """
        INSERT INTO patients (clinic_id, full_name, phone)
        SELECT CASE WHEN i %% %(every)s = 0 THEN %(small)s::uuid
                    ELSE (%(others)s::uuid[])[1 + i %% %(n)s] END,
               (ARRAY['María','José','Juan','Ana','Luis','Carmen','Carlos','Rosa','Jorge','Sofía',
                      'Óscar','Ángel','Lucía','Pedro','Marta'])[1 + abs(hashint4(i)) %% 15]
               || ' ' || CASE WHEN i %% 6000 = 0 THEN 'Zeledón'
                              ELSE (ARRAY['Pérez','López','Hernández','Martínez','García',
                                          'Rodríguez','González','Ramírez','Flores','Rivera',
                                          'Núñez','Mejía'])[1 + abs(hashint4(i + 1)) %% 12] END
               || ' ' || (ARRAY['Argueta','Portillo','Bonilla','Cañas','Escobar','Fuentes',
                                'Henríquez','Lemus','Orellana','Umaña'])[1 + abs(hashint4(i + 2)) %% 10],
               '+5037' || lpad((i::bigint * 7919 %% 10000000)::text, 7, '0')
          FROM generate_series(1, %(total)s) AS i
        """,
        {
            "every": SMALL_EVERY,
            "small": small,
            "others": others,
            "n": CLINICS,
            "total": OTHERS + OTHERS // SMALL_EVERY,
        },
    )
    # As autovacuum keeps a live table: the GIN indexes' pending lists merged (every scan reads
    # a pending list whole, so the planner rightly shuns an index with a long one), statistics fresh.
    sql.execute("VACUUM ANALYZE patients")
    phone = sql.execute(
        "SELECT phone FROM patients WHERE clinic_id = %s ORDER BY phone LIMIT 1", (small,)
    ).fetchone()["phone"]
    yield small, f"{phone[-7:-3]}-{phone[-3:-1]}"
    sql.execute("DELETE FROM clinics WHERE id = ANY(%s::uuid[])", ([small, *others],))


def plan_of(app, sql_text, params):
    with app.extensions["pool"].connection() as conn:
        row = conn.execute("EXPLAIN (FORMAT JSON) " + sql_text, params).fetchone()
    return row["QUERY PLAN"][0]["Plan"]


def walk(node):
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


def patient_scans(plan):
    """Every node that reads the patients table or one of its indexes."""
    return [
        n
        for n in walk(plan)
        if n.get("Relation Name") == "patients"
        or str(n.get("Index Name", "")).startswith("patients")
    ]


def search_params(clinic_id, term):
    return {
        "clinic_id": clinic_id,
        "blocked": None,
        "page": 1,
        "limit": 50,
        "offset": 0,
        **search.parameters(term),
    }


def list_query(term):
    """The statement GET /api/patients runs for this term (patients/api/patients.py)."""
    if search.narrowed_by_trigrams(term):
        return queries.search_patients
    return queries.search_patients_short_term


def export_select():
    """The SELECT inside the export's COPY (EXPLAIN cannot take a COPY), as queries/export.sql has it."""
    text = queries.export_patients.sql
    found = re.search(r"COPY \((.*)\) TO STDOUT", text, re.S)
    assert found, "queries/export.sql no longer reads COPY (SELECT ...) TO STDOUT"
    return found.group(1)


def assert_clinic_keys(plan, expected):
    """The matches are found through `expected`, each scan asking for the clinic's keys of the
    term; nothing else reads the table in bulk (no sequential scan, no older trigram index). A
    name-or-phone search reads both indexes under one BitmapOr."""
    scans = patient_scans(plan)
    shown = json.dumps(plan, indent=1)
    used = {n.get("Index Name") for n in scans} - {None}
    assert expected <= used, shown
    assert not any(n["Node Type"] == "Seq Scan" for n in scans), shown
    for node in scans:
        if node.get("Index Name") in CLINIC_KEYS:
            assert node["Index Cond"].startswith("(clinic_trigram_keys(clinic_id, "), shown
            assert "@>" in node["Index Cond"], shown
    assert not used & SUPERSEDED, shown
    if expected == CLINIC_KEYS:
        assert any(n["Node Type"] == "BitmapOr" for n in walk(plan)), shown


@pytest.mark.parametrize(
    "kind, term, expected",
    [
        ("common surname", "hernández", {"patients_clinic_name_keys"}),
        ("rare name", "zeledon", {"patients_clinic_name_keys"}),
        ("phone fragment", None, CLINIC_KEYS),
    ],
)
def test_the_list_search_goes_through_the_clinic_keys_indexes(
    app, client, sql, crowded, kind, term, expected
):
    small, fragment = crowded
    term = term or fragment
    query = list_query(term)
    assert query is queries.search_patients
    assert_clinic_keys(plan_of(app, query.sql, search_params(small, term)), expected)

    # The same statement answers the request, with the count the table holds.
    digits = search.parameters(term)["phone_digits"]
    expected_total = sql.execute(
        "SELECT count(*) FROM matching_patients(%s, NULL, %s, %s)", (small, term, digits)
    ).fetchone()["count"]
    assert expected_total > 0
    response = client.get(
        "/api/patients",
        query_string={"search": term},
        headers={"Authorization": f"Bearer {make_token(small, 'staff')}"},
    )
    assert response.status_code == 200
    assert response.json["total"] == expected_total


def test_the_export_filter_goes_through_the_clinic_keys_indexes(app, crowded):
    small, fragment = crowded
    for term, expected in (
        ("hernández", {"patients_clinic_name_keys"}),
        (fragment, CLINIC_KEYS),
    ):
        params = {"clinic_id": small, "blocked": None, **search.parameters(term)}
        assert_clinic_keys(plan_of(app, export_select(), params), expected)


def test_a_short_term_reads_only_the_clinic(app, crowded):
    """Under three characters no trigram narrows the term: the page walks the clinic's name
    index and stops, and the exact count reads the clinic's rows through an index led by
    clinic_id, never the table."""
    small, _ = crowded
    query = list_query("he")
    assert query is queries.search_patients_short_term
    plan = plan_of(app, query.sql, search_params(small, "he"))
    scans = patient_scans(plan)
    shown = json.dumps(plan, indent=1)
    assert scans and not any(n["Node Type"] == "Seq Scan" for n in scans), shown
    for node in scans:
        if "Index Name" in node:
            assert "clinic_id =" in node["Index Cond"], shown


def test_the_older_trigram_indexes_are_gone(sql):
    names = {
        row["indexname"]
        for row in sql.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'patients'")
    }
    assert names >= CLINIC_KEYS
    assert not names & SUPERSEDED
