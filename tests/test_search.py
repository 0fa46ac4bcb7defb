"""GET /api/patients: search semantics, filters, paging, validation, and the plans PostgreSQL picks."""

import json
import unicodedata
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from patients import search
from patients.repository import queries
from tests.helpers import LIST_ITEM_FIELDS, make_token

URL = "/api/patients"


def get(client, clinic, role="staff", **params):
    return client.get(URL, query_string=params, headers=clinic.headers(role))


def names(response):
    assert response.status_code == 200, response.json
    return [p["full_name"] for p in response.json["patients"]]


@pytest.fixture
def people(clinic):
    clinic.add_patient("Juan Pérez", "+50377654321")
    clinic.add_patient("María Núñez", "+50370001111")
    clinic.add_patient("Pedro Alvarado", "+50379998888")
    return clinic


@pytest.mark.parametrize("term", ["perez", "PEREZ", "Pérez", "pÉrEz", "juan pé", "  perez  "])
def test_name_search_ignores_case_and_accents(client, people, term):
    response = get(client, people, search=term)
    assert names(response) == ["Juan Pérez"]
    assert response.json["total"] == 1


@pytest.mark.parametrize("term", ["nunez", "NÚÑEZ", "núñez", "ia nu"])
def test_enye_and_accents_fold(client, people, term):
    assert names(get(client, people, search=term)) == ["María Núñez"]


@pytest.mark.parametrize("term", ["ΣΟΦΊΑΣ", "σοφίας", "Дмитрий", "ДМИТРИЙ", "дмитрий"])
def test_a_name_outside_latin_is_found_as_stored_and_in_any_case(client, clinic, term):
    # The stored search_name and the term are folded under one collation (names_es): before,
    # the term was lowered under the database's own (a final Σ became σ, not ς; under C only
    # ASCII is lowered), and searching a stored name exactly as written found nothing.
    clinic.add_patient("Sofía ΣΟΦΊΑΣ", "+50370000002")
    clinic.add_patient("Дмитрий Иванов", "+50370000003")
    expected = ["Дмитрий Иванов"] if "И" in term.upper() else ["Sofía ΣΟΦΊΑΣ"]
    assert names(get(client, clinic, search=term)) == expected


@pytest.mark.parametrize(
    "term", ["7765-4321", "+503 7765 4321", "(503) 7765.4321", "77654321", "503-7765", "4321"]
)
def test_phone_search_ignores_punctuation(client, people, term):
    assert names(get(client, people, search=term)) == ["Juan Pérez"]


def test_phone_search_needs_the_digits_in_order(client, people):
    assert names(get(client, people, search="7765-4322")) == []
    assert names(get(client, people, search="4321 7765")) == []


def test_wildcards_are_literal(client, clinic):
    clinic.add_patient("Tienda 100% Natural", "+50370000001")
    clinic.add_patient("Ana_Belén Ruiz", "+50370000002")
    clinic.add_patient("Ana Belén Ruiz", "+50370000003")
    clinic.add_patient("Back\\slash Soto", "+50370000004")
    clinic.add_patient("Anabelén Soto", "+50370000005")

    assert names(get(client, clinic, search="%")) == ["Tienda 100% Natural"]
    assert names(get(client, clinic, search="100%")) == ["Tienda 100% Natural"]
    assert names(get(client, clinic, search="_")) == ["Ana_Belén Ruiz"]
    assert names(get(client, clinic, search="ana_belen")) == ["Ana_Belén Ruiz"]
    assert names(get(client, clinic, search="\\")) == ["Back\\slash Soto"]
    assert names(get(client, clinic, search="k\\s")) == ["Back\\slash Soto"]
    assert names(get(client, clinic, search="\\%")) == []
    assert names(get(client, clinic, search="%_%")) == []


def test_characters_that_fold_into_wildcards_stay_literal(client, clinic):
    """unaccent turns fullwidth ％ ＿ ＼ into % _ \\: they must still be literal, and never a 500."""
    clinic.add_patient("Tienda 100% Natural", "+50370000001")
    clinic.add_patient("Ana Belén", "+50370000002")
    assert names(get(client, clinic, search="％")) == ["Tienda 100% Natural"]
    assert names(get(client, clinic, search="＿")) == []
    assert names(get(client, clinic, search="＼")) == []
    assert names(get(client, clinic, search="ana＿belén")) == []


def test_blocked_filter(client, clinic):
    clinic.add_patient("Ana Blocked", "+50370000001", is_blocked=True)
    clinic.add_patient("Beto Free", "+50370000002")
    clinic.add_patient("Carla Blocked", "+50370000003", is_blocked=True)

    blocked = get(client, clinic, blocked="true")
    assert names(blocked) == ["Ana Blocked", "Carla Blocked"]
    assert blocked.json["total"] == 2
    assert all(p["is_blocked"] for p in blocked.json["patients"])
    assert names(get(client, clinic, blocked="false")) == ["Beto Free"]
    assert names(get(client, clinic, blocked="true", search="carla")) == ["Carla Blocked"]
    assert names(get(client, clinic, blocked="false", search="carla")) == []
    assert len(names(get(client, clinic))) == 3


def test_order_is_spanish_name_order_then_id_and_pages_never_repeat_or_skip(client, clinic):
    ids = {}
    for n, name in enumerate(
        ["Óscar Díaz", "Ñoño Ríos", "Núñez Paz", "Nora Paz", "Beatriz Luna", "Álvaro Mena"]
    ):
        ids[name] = clinic.add_patient(name, f"+5037000000{n}")
    twins = sorted(clinic.add_patient("Ana López", f"+5037100000{n}") for n in range(3))
    expected = [
        ("Álvaro Mena", ids["Álvaro Mena"]),
        *[("Ana López", twin) for twin in twins],
        ("Beatriz Luna", ids["Beatriz Luna"]),
        ("Nora Paz", ids["Nora Paz"]),
        ("Núñez Paz", ids["Núñez Paz"]),
        ("Ñoño Ríos", ids["Ñoño Ríos"]),
        ("Óscar Díaz", ids["Óscar Díaz"]),
    ]

    seen = []
    for page in (1, 2, 3, 4):
        body = get(client, clinic, page=page, limit=3).json
        assert body["total"] == 9
        assert (body["page"], body["limit"]) == (page, 3)
        seen += [(p["full_name"], p["id"]) for p in body["patients"]]
        assert len(body["patients"]) == (3 if page <= 3 else 0)
    assert seen == expected

    past_the_end = get(client, clinic, page=50, limit=3).json
    assert past_the_end == {"patients": [], "total": 9, "page": 50, "limit": 3}


def test_search_pages_across_the_last_page(client, clinic):
    for n in range(5):
        clinic.add_patient(f"Rosa Cruz {n}", f"+5037000000{n}")
    clinic.add_patient("Otro Nombre", "+50379999999")
    last = get(client, clinic, search="rosa", page=3, limit=2).json
    assert last["total"] == 5
    assert [p["full_name"] for p in last["patients"]] == ["Rosa Cruz 4"]
    beyond = get(client, clinic, search="rosa", page=4, limit=2).json
    assert beyond == {"patients": [], "total": 5, "page": 4, "limit": 2}


def test_defaults_and_exact_total(client, clinic):
    for n in range(55):
        clinic.add_patient(f"Paciente {n:02d}", f"+503700000{n:02d}")
    body = get(client, clinic).json
    assert (body["page"], body["limit"], body["total"]) == (1, 50, 55)
    assert len(body["patients"]) == 50
    assert len(get(client, clinic, page=2).json["patients"]) == 5
    assert get(client, clinic, limit=200).json["total"] == 55


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"blocked": "maybe"}, "blocked"),
        ({"search": "x" * 101}, "search"),
        ({"search": "ana\x00"}, "search"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(client, clinic, params, field):
    response = get(client, clinic, **params)
    assert response.status_code == 400
    assert response.json["code"] == "VALIDATION_ERROR"
    assert response.json["details"]["field"] == field
    assert field in response.json["message"]


def test_list_never_carries_dui_or_notes(client, clinic):
    clinic.add_patient("Juan Pérez", "+50377654321", dui="123456789", notes="alergia a penicilina")
    for params in ({}, {"search": "juan"}, {"search": "7765"}, {"blocked": "false"}):
        response = get(client, clinic, role="admin", **params)
        assert response.status_code == 200
        (item,) = response.json["patients"]
        assert set(item) == LIST_ITEM_FIELDS
        body = response.get_data(as_text=True)
        assert "12345678" not in body and "penicilina" not in body and "dui" not in body
    assert clinic.audit("dui.reveal") == []


def test_list_item_shape(client, clinic):
    clinic.add_patient(
        "Juan Pérez", "+50377654321", email="juan@example.com", no_show_count=2,
        created_at="2026-05-20T00:00:00Z",
    )  # fmt: skip
    (item,) = get(client, clinic).json["patients"]
    assert item == {
        "id": item["id"],
        "full_name": "Juan Pérez",
        "phone": "+50377654321",
        "email": "juan@example.com",
        "no_show_count": 2,
        "is_blocked": False,
        "created_at": "2026-05-20T00:00:00Z",
    }
    uuid.UUID(item["id"])


def test_other_clinics_never_appear(client, make_clinic):
    mine, theirs = make_clinic(), make_clinic()
    mine.add_patient("Juan Pérez", "+50377654321")
    theirs.add_patient("Juana Pérez", "+50377654322")
    for params in ({}, {"search": "pérez"}, {"search": "7765"}):
        assert names(get(client, mine, **params)) == ["Juan Pérez"]


TERMS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(term=TERMS)
@example(term="＼")
@example(term="%_\\")
@example(term="\\")
@example(term="'; DROP TABLE patients; --")
@example(term="%(clinic_id)s")
@example(term="+503 (7765) 43-21")
def test_any_search_term_answers_200(client, people, term):
    response = get(client, people, search=term)
    assert response.status_code == 200, (term, response.json)
    body = response.json
    assert body["total"] == len(body["patients"]) <= 3


# Letters that fold (accents, ñ, case, ß, fullwidth ones that unaccent turns into wildcards),
# LIKE's own wildcards and escape, spaces and digits: what the clinic keys must never lose.
NAME_CHARS = st.sampled_from([*"aAáÁeéiínNñÑoóuúüÜzß %_\\'-.07", "％", "＿", "＼"])
NAMES = st.text(alphabet=NAME_CHARS, min_size=1, max_size=14).filter(lambda n: n.strip())


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    full_names=st.lists(NAMES, min_size=1, max_size=8),
    term=st.one_of(
        st.text(alphabet=NAME_CHARS, max_size=6),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=4,
        ),
    ),
    picks=st.tuples(st.integers(0, 7), st.integers(0, 13), st.integers(1, 6)),
    phone_term=st.booleans(),
)
@example(full_names=["Ana 100% Ñuñoa"], term="0% ñ", picks=(0, 0, 0), phone_term=False)
@example(full_names=["a_b\\c"], term="_b\\", picks=(0, 0, 0), phone_term=False)
def test_the_clinic_keys_never_lose_a_match(
    client, sql, make_clinic, full_names, term, picks, phone_term
):
    """matching_patients() (its clinic keys and the keys' GIN indexes) finds exactly the patients
    whose folded name contains the folded term, or whose phone contains the term's digits, as a
    plain strpos() over the clinic's rows says; another clinic holding the same names and phones
    never shows."""
    mine, theirs = make_clinic(), make_clinic()
    phones = [f"+5037{n:03d}{n * 37 % 1000:04d}" for n in range(len(full_names))]
    for clinic in (mine, theirs):
        for name, phone in zip(full_names, phones, strict=True):
            clinic.add_patient(name, phone)
    which, start, length = picks
    if phone_term:  # a stretch of one patient's phone, as people type it
        digits = phones[which % len(phones)][1:]
        term = digits[start % len(digits) :][: length + 2]
    elif start % 2:  # a stretch of one patient's name, cased differently
        name = full_names[which % len(full_names)]
        term = name[start % len(name) :][:length].swapcase()
    parameters = search.parameters(term)

    expected = {
        row["id"]
        for row in sql.execute(
            "SELECT id::text FROM patients WHERE clinic_id = %(c)s AND ("
            " strpos(search_name, fold_search(%(t)s)) > 0"
            " OR (%(d)s::text IS NOT NULL AND strpos(phone, %(d)s) > 0))",
            {"c": mine.id, "t": term, "d": parameters["phone_digits"]},
        )
    }
    sql.execute("SET enable_seqscan = off")  # the keys' indexes answer, not a scan of the table
    try:
        found = {
            row["id"]
            for row in sql.execute(
                "SELECT id::text FROM matching_patients(%s, NULL, %s, %s)",
                (mine.id, term, parameters["phone_digits"]),
            )
        }
        by_keys = {
            row["id"]
            for row in sql.execute(
                "SELECT id::text FROM patients"
                " WHERE clinic_trigram_keys(clinic_id, search_name)"
                "       @> clinic_trigram_keys(%(c)s, fold_search(%(t)s))"
                "    OR clinic_trigram_keys(clinic_id, phone) @> clinic_trigram_keys(%(c)s, %(d)s)",
                {"c": mine.id, "t": term, "d": parameters["phone_digits"]},
            )
        }
    finally:
        sql.execute("RESET enable_seqscan")
    assert found == expected, (full_names, term)
    assert expected <= by_keys, (full_names, term)
    if term and term == term.strip():  # the API trims the term (patients/api/params.py)
        response = get(client, mine, search=term)
        assert response.status_code == 200, response.json
        assert response.json["total"] == len(expected), (full_names, term)
    sql.execute("DELETE FROM clinics WHERE id IN (%s, %s)", (mine.id, theirs.id))


# --- the plans PostgreSQL chooses, on a clinic large enough for the planner to care -----------

BIG = 20_000
RARE_EVERY = 4_000  # every 4,000th patient carries a rare surname: 5 of 20,000


@pytest.fixture(scope="module")
def big_clinic(sql):
    clinic_id = sql.execute(
        "INSERT INTO clinics (name) VALUES ('Clínica Grande') RETURNING id::text"
    ).fetchone()["id"]
    sql.execute(
        """
        INSERT INTO patients (clinic_id, full_name, phone)
        SELECT %(clinic)s,
               (ARRAY['María','José','Juan','Ana','Luis','Carmen','Carlos','Rosa','Jorge','Sofía',
                      'Óscar','Ángel','Lucía','Pedro','Marta'])[1 + i %% 15]
               || ' ' || (ARRAY['Pérez','López','Hernández','Martínez','García','Rodríguez',
                                'González','Ramírez','Flores','Rivera','Núñez','Mejía'])[1 + (i / 15) %% 12]
               || ' ' || (ARRAY['Argueta','Portillo','Bonilla','Cañas','Escobar','Fuentes',
                                'Henríquez','Lemus','Orellana','Umaña'])[1 + (i / 180) %% 10]
               || CASE WHEN i %% %(rare)s = 0 THEN ' Xiomara' ELSE '' END,
               '+5036' || lpad(i::text, 7, '0')
          FROM generate_series(1, %(n)s) AS i
        """,
        {"clinic": clinic_id, "n": BIG, "rare": RARE_EVERY},
    )
    sql.execute("ANALYZE patients")
    yield clinic_id
    sql.execute("DELETE FROM clinics WHERE id = %s", (clinic_id,))


def plan_of(app, query, **params):
    """EXPLAIN of a named query exactly as the app runs it (the app's pool, its settings)."""
    with app.extensions["pool"].connection() as conn:
        row = conn.execute("EXPLAIN (FORMAT JSON) " + query.sql, params).fetchone()
    return row["QUERY PLAN"][0]["Plan"]


def walk(node):
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


def page_and_count(plan):
    """The statement's two InitPlans, in the order the SQL names them: the page, then the count."""
    page, count = (node for node in plan["Plans"] if node["Parent Relationship"] == "InitPlan")
    return page, count


def indexes(node):
    return {n.get("Index Name") for n in walk(node)} - {None}


def search_params(big_clinic, term, **extra):
    return {
        "clinic_id": big_clinic,
        "blocked": None,
        "page": 1,
        "limit": 50,
        "offset": 0,
        "term": term,
        "phone_digits": None,
        **extra,
    }


@pytest.mark.slow
def test_selective_search_uses_the_trigram_index(app, client, sql, big_clinic):
    """Matches are found through the trigram index, never by walking the clinic in name order."""
    plan = plan_of(app, queries.search_patients, **search_params(big_clinic, "XIOMARA"))
    assert "patients_clinic_name_keys" in indexes(plan), json.dumps(plan, indent=1)
    assert "patients_clinic_name_idx" not in indexes(plan), json.dumps(plan, indent=1)
    assert not any(n["Node Type"] == "Seq Scan" for n in walk(plan))

    response = client.get(URL, query_string={"search": "xiomara"}, headers=_headers(big_clinic))
    assert response.json["total"] == BIG // RARE_EVERY


def test_term_length_picks_the_query():
    assert search.narrowed_by_trigrams("mar") and search.narrowed_by_trigrams("77 6")
    assert not search.narrowed_by_trigrams("ma") and not search.narrowed_by_trigrams("7")


@pytest.mark.parametrize("term", ["a", "7", "mar", "xio", "Núñez", "nunez bon", "6000", "zzz"])
@pytest.mark.parametrize("page", [1, 2])
def test_both_search_queries_answer_the_same(app, big_clinic, term, page):
    """The two search queries differ in plan only: same rows, same order, same total."""
    params = {**search_params(big_clinic, term, page=page, offset=(page - 1) * 50)}
    params.update(search.parameters(term))
    with app.extensions["pool"].connection() as conn:
        short = json.loads(queries.search_patients_short_term(conn, **params)["body"])
        long_ = json.loads(queries.search_patients(conn, **params)["body"])
    assert short == long_
    if term != "zzz":
        assert short["total"] > 0


@pytest.mark.slow
def test_list_walks_the_name_index_and_stops_early(app, client, big_clinic):
    params = search_params(big_clinic, None)
    del params["term"], params["phone_digits"]
    page, _ = page_and_count(plan_of(app, queries.list_patients, **params))
    scans = [n for n in walk(page) if n.get("Relation Name") == "patients"]
    assert [n.get("Index Name") for n in scans] == ["patients_clinic_name_idx"]
    node_types = {n["Node Type"] for n in walk(page)}
    assert "Limit" in node_types and "Sort" not in node_types

    body = client.get(URL, query_string={"limit": 200}, headers=_headers(big_clinic)).json
    assert body["total"] == BIG and len(body["patients"]) == 200


@pytest.mark.slow
def test_broad_search_pages_early_and_counts_exactly(app, client, sql, big_clinic):
    """A term most names contain: the page stops after 50 rows in name order, the count sees all."""
    page, count = page_and_count(
        plan_of(app, queries.search_patients_short_term, **search_params(big_clinic, "a"))
    )
    assert "patients_clinic_name_idx" in indexes(page)
    assert not any(n["Node Type"] == "Sort" for n in walk(page))
    assert not any(n["Node Type"] == "Limit" for n in walk(count))  # exact: it sees every match

    rows = sql.execute("SELECT full_name FROM patients WHERE clinic_id = %s", (big_clinic,))
    expected = sum("a" in fold(row["full_name"]) for row in rows)
    assert 0 < expected < BIG
    body = client.get(
        URL, query_string={"search": "a", "page": 3}, headers=_headers(big_clinic)
    ).json
    assert body["total"] == expected
    assert len(body["patients"]) == 50


def fold(text):
    """Python's own accent and case folding, to check PostgreSQL's against."""
    return "".join(
        c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)
    ).lower()


def _headers(clinic_id, role="staff"):
    return {"Authorization": f"Bearer {make_token(clinic_id, role)}"}
