"""POST /api/patients/import: row validation (all or nothing), duplicates, and what the upsert may
and may not change."""

import io

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from patients.config import ConfigError
from patients.repository import queries
from tests.helpers import imported, post_csv


def invalid_rows(response):
    assert response.status_code == 400, response.get_json()
    assert response.json["code"] == "INVALID_ROWS"
    return response.json["details"]


def test_response_shape(client, clinic):
    clinic.add_patient("Viejo", "+50377650000")
    text = "Nombre,Teléfono\nAna,7765-4321\nBeto,7765-4322\nViejo Nuevo,+503 7765 0000\n"
    body = imported(post_csv(client, clinic, text))
    assert body == {
        "message": "Successfully imported 3 patients",
        "imported": 3,
        "created": 2,
        "updated": 1,
        "unchanged": 0,
        "columns": {
            "name": ["Nombre"],
            "phone": ["Teléfono"],
            "email": [],
            "dui": [],
            "ignored": [],
        },
        "warnings": [],
        "warning_count": 0,
        "duplicates_merged": 0,
        "dry_run": False,
    }


def test_each_invalid_row_reason_is_listed_with_its_line_and_nothing_is_written(client, clinic):
    clinic.add_patient("Existente", "+50377650000", email="keep@example.com")
    before = clinic.patients()
    text = (
        "Nombre,Teléfono,Email,DUI\n"  # line 1
        "Ana,7765-4321,ana@example.com,12345678-9\n"  # 2: fine
        ",7765-4322,,\n"  # 3: no name
        "Beto,12,,\n"  # 4: not a phone
        "Carla,,,\n"  # 5: no phone
        "Dora,7765-4325,dora@@example,\n"  # 6: bad email
        "Eva,7765-4326,,1234-5\n"  # 7: bad DUI
        "   ,abc,nope,12\n"  # 8: everything wrong at once
        "Existente Cambiado,7765-0000,,\n"  # 9: fine, but must not be applied
    )
    details = invalid_rows(post_csv(client, clinic, text))
    assert [(d["line"], d["column"]) for d in details] == [
        (3, "name"),
        (4, "phone"),
        (5, "phone"),
        (6, "email"),
        (7, "dui"),
        (8, "name"),
        (8, "phone"),
        (8, "email"),
        (8, "dui"),
    ]
    reasons = {(d["line"], d["column"]): d["reason"] for d in details}
    assert reasons[(3, "name")] == "a name is required"
    assert reasons[(4, "phone")] == "not a valid phone number"
    assert reasons[(5, "phone")] == "a phone number is required"
    assert reasons[(6, "email")].startswith("not a valid email address")
    assert reasons[(7, "dui")] == "not a valid DUI (as 12345678-9)"
    assert all(set(d) == {"line", "column", "reason"} for d in details)
    assert clinic.patients() == before


def test_invalid_rows_message_counts_rows(client, clinic):
    response = post_csv(client, clinic, "Nombre,Teléfono\nAna,1\nBeto,2\nCarla,77654321\n")
    assert response.json["message"].startswith("2 of 3 rows cannot be imported")


def test_a_dui_is_never_echoed_in_errors(client, clinic):
    response = post_csv(client, clinic, "Nombre,Teléfono,DUI\nAna,77654321,98765432-10\n")
    assert response.status_code == 400
    assert "98765432" not in response.get_data(as_text=True)


def test_excel_scientific_notation_phone_gets_a_hint(client, clinic):
    details = invalid_rows(post_csv(client, clinic, "Nombre,Teléfono\nAna,5.03777E+10\n"))
    assert "format the column as text" in details[0]["reason"]


def test_name_too_long(client, clinic):
    details = invalid_rows(post_csv(client, clinic, f"Nombre,Teléfono\n{'a' * 201},77654321\n"))
    assert details == [{"line": 2, "column": "name", "reason": "a name has at most 200 characters"}]


def test_phone_formats_of_one_patient_are_merged_later_non_empty_cells_win(client, clinic):
    text = (
        "Nombre,Teléfono,Email,DUI\n"
        "Ana Primera,7765-4321,ana@example.com,12345678-9\n"
        "Ana Segunda,+503 7765 4321,,\n"
        "Ana Tercera,50377654321,ana3@example.com,\n"
        "Beto,(503) 7765-4322,,\n"
    )
    body = imported(post_csv(client, clinic, text))
    assert (body["imported"], body["created"], body["duplicates_merged"]) == (2, 2, 2)
    ana, beto = clinic.patients()
    assert (ana["phone"], ana["full_name"], ana["email"]) == (
        "+50377654321",
        "Ana Tercera",
        "ana3@example.com",
    )
    assert ana["dui_ciphertext"] is not None  # from the first row: later rows left it empty
    assert beto["phone"] == "+50377654322"


def test_blank_cells_keep_stored_values_and_protected_columns_are_untouched(client, clinic):
    patient_id = clinic.add_patient(
        "Ana López",
        "+50377654321",
        dui="12345678-9",
        email="ana@example.com",
        notes="alérgica",
        no_show_count=3,
        is_blocked=True,
    )
    before = clinic.patients()[0]
    text = "Nombre,Teléfono,Email,DUI\nAna María López,7765-4321,,\n"
    body = imported(post_csv(client, clinic, text))
    assert (body["created"], body["updated"]) == (0, 1)
    after = clinic.patients()[0]
    assert str(after["id"]) == patient_id
    assert after["full_name"] == "Ana María López"
    for column in ("email", "dui_ciphertext", "dui_key_id", "notes", "no_show_count", "is_blocked"):
        assert after[column] == before[column], column
    assert after["created_at"] == before["created_at"]


def test_non_empty_cells_update(client, clinic):
    clinic.add_patient("Ana", "+50377654321", dui="11111111-1", email="old@example.com")
    text = "Nombre,Teléfono,Email,DUI\nAna,7765-4321,new@example.com,222222222\n"
    imported(post_csv(client, clinic, text))
    [patient] = clinic.patients()
    assert patient["email"] == "new@example.com"
    admin = client.get(f"/api/patients/{patient['id']}", headers=clinic.headers("admin"))
    assert admin.json["dui"] == "22222222-2"


def test_dui_is_stored_encrypted_and_revealed_only_to_an_admin(client, clinic, sql):
    text = "Nombre,Teléfono,DUI\nAna,7765-4321,123456789\nBeto,7765-4322,\n"
    imported(post_csv(client, clinic, text))
    ana, beto = clinic.patients()
    assert beto["dui_ciphertext"] is None
    assert b"12345678" not in bytes(ana["dui_ciphertext"])
    # The clear DUI is in no column of any table.
    dump = sql.execute(
        "SELECT count(*) AS n FROM patients p WHERE p.clinic_id = %s AND p::text LIKE %s",
        (clinic.id, "%12345678%"),
    ).fetchone()
    assert dump["n"] == 0
    admin = client.get(f"/api/patients/{ana['id']}", headers=clinic.headers("admin"))
    assert admin.json["dui"] == "12345678-9"
    staff = client.get(f"/api/patients/{ana['id']}", headers=clinic.headers("staff"))
    assert staff.json["dui"] is None


def test_tenant_isolation_same_phone_in_another_clinic_is_untouched(client, clinic, make_clinic):
    other = make_clinic()
    other.add_patient("Ana de Otra", "+50377654321", email="otra@example.com", dui="99999999-9")
    before = other.patients()
    text = "Nombre,Teléfono,Email,DUI\nAna,7765-4321,ana@example.com,12345678-9\n"
    body = imported(post_csv(client, clinic, text))
    assert (body["created"], body["updated"]) == (1, 0)
    assert other.patients() == before
    assert clinic.patients()[0]["full_name"] == "Ana"


def test_phones_use_the_clinic_country_as_default_region(client, make_clinic):
    guatemala = make_clinic(country_code="GT")
    imported(post_csv(client, guatemala, "Nombre,Teléfono\nAna,5123-4567\nBeto,+503 7765 4321\n"))
    assert [p["phone"] for p in guatemala.patients()] == ["+50251234567", "+50377654321"]


def test_dry_run_reports_the_same_counts_and_writes_nothing(client, clinic):
    clinic.add_patient("Ana", "+50377654321")
    before = clinic.patients()
    text = "Nombre,Teléfono,DUI\nAna Nueva,7765-4321,123456789\nBeto,7765-4322,\nBeto,77654322,\n"
    dry = imported(post_csv(client, clinic, text, query="?dry_run=true"))
    assert clinic.patients() == before
    assert clinic.audit("patients.import") == []
    assert dry["dry_run"] is True
    assert "nothing was written" in dry["message"]
    real = imported(post_csv(client, clinic, text))
    for key in ("imported", "created", "updated", "duplicates_merged"):
        assert dry[key] == real[key], key
    assert (real["created"], real["updated"], real["duplicates_merged"]) == (1, 1, 1)


def test_dry_run_still_reports_invalid_rows(client, clinic):
    details = invalid_rows(
        post_csv(client, clinic, "Nombre,Teléfono\nAna,1\n", query="?dry_run=true")
    )
    assert details[0]["line"] == 2


def test_bad_dry_run_value_is_a_validation_error(client, clinic):
    response = post_csv(client, clinic, "Nombre,Teléfono\nAna,77654321\n", query="?dry_run=maybe")
    assert response.status_code == 400
    assert response.json["details"]["field"] == "dry_run"


def test_basic_plan_is_refused_for_any_role(client, make_clinic):
    basic = make_clinic(plan="basic")
    for role in ("admin", "staff"):
        response = post_csv(client, basic, "Nombre,Teléfono\nAna,77654321\n", role=role)
        assert response.status_code == 403
        assert response.json == {
            "code": "PLAN_UPGRADE_REQUIRED",
            "message": "Importing patients requires the Pro plan.",
            "details": None,
        }
    assert basic.patients() == []


def test_any_role_of_a_pro_clinic_may_import(client, clinic):
    imported(post_csv(client, clinic, "Nombre,Teléfono\nAna,77654321\n", role="admin"))
    imported(post_csv(client, clinic, "Nombre,Teléfono\nBeto,77654322\n", role="staff"))
    assert len(clinic.patients()) == 2


def test_no_token_is_401(client):
    response = client.post("/api/patients/import", data={"file": (io.BytesIO(b"x"), "p.csv")})
    assert response.status_code == 401


def test_each_import_writes_an_audit_row(client, clinic):
    clinic.add_patient("Ana", "+50377654321")
    text = "Nombre,Teléfono\nAna,7765-4321\nBeto,7765-4322\nBeto B,77654322\n"
    response = client.post(
        "/api/patients/import",
        headers=clinic.headers("admin", sub="user-42"),
        data={"file": (io.BytesIO(text.encode()), "enero.csv")},
        content_type="multipart/form-data",
    )
    imported(response)
    [row] = clinic.audit("patients.import")
    assert (row["actor_id"], row["actor_role"], row["patient_id"]) == ("user-42", "admin", None)
    assert row["details"] == {
        "file_name": "enero.csv",
        "rows": 3,
        "imported": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 1,
        "duplicates_merged": 1,
    }
    assert row["created_at"] is not None
    # A refused import leaves no audit row.
    invalid_rows(post_csv(client, clinic, "Nombre,Teléfono\nAna,1\n"))
    assert len(clinic.audit("patients.import")) == 1


def test_dui_for_a_phone_another_service_created_meanwhile_reaches_the_real_patient(
    client, clinic, monkeypatch
):
    # As if the chatbot created Ana after the import looked up the known phones: her DUI was
    # encrypted for an id she does not have, so the import encrypts it again for hers.
    ana = clinic.add_patient("Ana", "+50377654321")
    monkeypatch.setattr(queries, "lock_known_phones_with_dui", lambda conn, **params: [])
    text = "Nombre,Teléfono,DUI\nAna,7765-4321,123456789\nBeto,7765-4322,22222222-2\n"
    body = imported(post_csv(client, clinic, text))
    assert (body["created"], body["updated"]) == (1, 1)
    duis = {}
    for patient in clinic.patients():
        record = client.get(f"/api/patients/{patient['id']}", headers=clinic.headers("admin"))
        duis[record.json["full_name"]] = record.json["dui"]
    assert duis == {"Ana": "12345678-9", "Beto": "22222222-2"}
    assert str(clinic.patients()[0]["id"]) == ana


def test_waiting_too_long_for_another_import_is_a_503_not_a_500(config, make_clinic, database_url):
    clinic = make_clinic()
    app = create_app({**config, "IMPORT_LOCK_WAIT_SECONDS": 0.3, "POOL_MAX_SIZE": 1})
    try:
        client = app.test_client()
        text = "Nombre,Teléfono\nAna,7765-4321\n"
        with psycopg.connect(database_url) as other:
            queries.lock_clinic_imports(other, clinic_id=clinic.id)  # an import in progress
            response = post_csv(client, clinic, text)
            assert response.status_code == 503
            assert response.json["code"] == "SERVICE_UNAVAILABLE"
            assert response.headers["Retry-After"]
            assert clinic.patients() == []
        assert imported(post_csv(client, clinic, text))["created"] == 1
    finally:
        app.extensions["pool"].close()


# Cells people type: names with accents and punctuation, phones in many shapes, odd emails and
# DUIs, and the characters that break naive CSV handling.
cell = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(
    ["7765-4321", "+503 7765 4321", "50377654321", "12345678-9", "a@b.co", "=1+1", "'-x", '"', ""]
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(st.lists(cell, min_size=0, max_size=5), max_size=6),
    delimiter=st.sampled_from([",", ";"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
)
def test_generated_rows_never_cause_a_500(client, clinic, rows, delimiter, encoding):
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["Nombre", "Teléfono", "Email", "DUI"])
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding, errors="replace")
    response = post_csv(client, clinic, data, query="?dry_run=true")
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert response.json["code"] in ("INVALID_ROWS", "INVALID_CSV")
        if response.json["code"] == "INVALID_ROWS":
            assert all(d["line"] >= 2 for d in response.json["details"])
    else:
        assert response.json["imported"] <= len(rows)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_cause_a_500(client, clinic, data):
    response = post_csv(client, clinic, b"Nombre,Telefono\n" + data, query="?dry_run=true")
    assert response.status_code in (200, 400), response.get_data(as_text=True)


def export_then_import(client, clinic, query=""):
    """(import answer, rows before, rows after) for GET /api/patients/export fed back to the import."""
    before = clinic.patients()
    export = client.get(f"/api/patients/export{query}", headers=clinic.headers())
    assert export.status_code == 200, "GET /api/patients/export (issue 5) must be there"
    body = imported(post_csv(client, clinic, export.data, filename="pacientes.csv"))
    return body, before, clinic.patients()


def assert_unchanged(before, after):
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        # Nothing new, so nothing written: not even updated_at moves.
        for column in (
            "id",
            "full_name",
            "phone",
            "email",
            "dui_ciphertext",
            "notes",
            "updated_at",
        ):
            assert new[column] == old[column], (column, old[column], new[column])


@pytest.mark.parametrize("query", ["", "?delimiter=semicolon"])
def test_round_trip_export_then_import_changes_nothing(client, clinic, query):
    names = [
        "Ana Pérez",
        "=SUM(A1:A2)",
        "+Plus",
        "-Minus",
        "@At",
        "\tTabulada",
        "\rRetorno",
        "O'Brien",
        "'=ya protegido",
        "''+dos comillas",
        "'sin fórmula",
        'Luis "Lucho"; Jr, II',
        "Línea\nDoble",
    ]
    for number, name in enumerate(names):
        clinic.add_patient(name, f"+503776543{number:02d}", email=f"p{number}@example.com")
    clinic.add_patient("Sin Email", "+50322221111", email="=cmd@example.com", dui="12345678-9")
    body, before, after = export_then_import(client, clinic, query)
    assert (body["imported"], body["created"], body["updated"], body["unchanged"]) == (
        len(before),
        0,
        0,
        len(before),
    )
    assert_unchanged(before, after)


safe_text = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"))
# What other services may store, as the schema's CHECKs allow it: names with spaces around them
# (the import trims cells) and some longer than the import's 200 characters; any phone the
# patients.phone CHECK takes, most of which libphonenumber calls invalid (`+50312345678`).
stored_names = st.text(alphabet=safe_text, min_size=1, max_size=15) | st.builds(
    lambda word, pad: pad + word * 30 + pad,
    st.text(alphabet=safe_text, min_size=7, max_size=9),
    st.sampled_from(["", " ", "\u00a0"]),
)
stored_phones = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True) | st.sampled_from(
    ["+50377654321", "+50322221111", "+50312345678", "+12133734253"]
)
stored_emails = st.none() | st.sampled_from(
    ["ana@example.com", "Ana@Example.COM", " ana@example.com", "ana@localhost", "a..b@example.com"]
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    patients=st.lists(
        st.tuples(stored_names.filter(lambda name: name.strip(" ")), stored_phones, stored_emails),
        min_size=1,
        max_size=5,
        unique_by=lambda patient: patient[1],
    )
)
def test_generated_stored_rows_round_trip(client, make_clinic, patients):
    # The names as the patients.full_name CHECK takes them (not blank once spaces are trimmed).
    clinic = make_clinic()
    for name, phone, email in patients:
        clinic.add_patient(name, phone, email=email)
    body, before, after = export_then_import(client, clinic)
    assert (body["updated"], body["unchanged"]) == (0, len(patients))
    assert_unchanged(before, after)


def test_a_stored_phone_libphonenumber_does_not_know_round_trips(client, clinic):
    # +503 then 1: the patients.phone CHECK takes it (another service wrote it), libphonenumber
    # does not know the number; the export writes it as `+503 12345678`.
    clinic.add_patient("Ana", "+50312345678")
    clinic.add_patient("Beto", "+50377654321")
    export = client.get("/api/patients/export", headers=clinic.headers())
    assert '"Ana",+503 12345678,' in export.get_data(as_text=True)
    body, before, after = export_then_import(client, clinic)
    assert (body["imported"], body["created"], body["updated"], body["unchanged"]) == (2, 0, 0, 2)
    assert body["warning_count"] == 1
    assert body["warnings"] == [
        {
            "line": 2,
            "column": "phone",
            "reason": "not a number known for its country code: kept as written, with its +",
        }
    ]
    assert_unchanged(before, after)


def test_a_stored_number_libphonenumber_reads_as_another_round_trips(client, clinic):
    """+1 then 1: libphonenumber drops the 1 as a trunk prefix and reads +12012000000. The clinic
    has +112012000000 (another service wrote it, with a name over the import's 200 characters):
    the export's `+1 12012000000` is that patient, not a new one (hypothesis found this)."""
    long_name = "Ana " + "María " * 40 + "López"
    clinic.add_patient(long_name, "+112012000000")
    body, before, after = export_then_import(client, clinic)
    assert (body["imported"], body["created"], body["updated"], body["unchanged"]) == (1, 0, 0, 1)
    assert_unchanged(before, after)
    # Written so for a number the clinic does not have, it is libphonenumber's reading.
    body = imported(post_csv(client, clinic, "Nombre,Teléfono\nBeto,+1 1201 200 0001\n"))
    assert (body["created"], body["unchanged"]) == (1, 0)
    assert sorted(p["phone"] for p in clinic.patients()) == ["+112012000000", "+12012000001"]


def test_an_unknown_number_is_taken_as_written_only_when_the_clinic_has_it(client, clinic):
    """A `+` number libphonenumber does not know round-trips when it is already stored (another
    service wrote it, our export wrote it out); a new one is a typo, refused like any other."""
    not_stored = "Nombre,Teléfono\nAna,+503 1234-5678\nBeto,+503 7765 432\nCarla,+999 1234567\n"
    assert invalid_rows(post_csv(client, clinic, not_stored)) == [
        {"line": line, "column": "phone", "reason": "not a valid phone number"}
        for line in (2, 3, 4)
    ]
    assert clinic.patients() == []

    clinic.add_patient("Ana", "+50312345678")
    clinic.add_patient("Beto", "+50312345679")
    text = "Nombre,Teléfono\nAna,+503 1234-5678\nBeto,(+503) 1234 5679\n"
    body = imported(post_csv(client, clinic, text))
    assert (body["unchanged"], body["warning_count"]) == (2, 2)
    assert [p["phone"] for p in clinic.patients()] == ["+50312345678", "+50312345679"]
    # Without the +, a number the clinic's country does not have is still a typo; and a + with
    # anything but digits and spacing after it, or too few digits, is not taken either.
    for cell in ("1234-5678", "503 1234 5678", "+503 1234 5678 ext 9", "+503 12", "+0 1234567"):
        details = invalid_rows(post_csv(client, clinic, f"Nombre,Teléfono\nCarla,{cell}\n"))
        assert details == [{"line": 2, "column": "phone", "reason": "not a valid phone number"}]
    assert len(clinic.patients()) == 2


def test_stored_values_the_import_would_refuse_round_trip_when_the_file_repeats_them(
    client, clinic
):
    long_name = "Ana " + "María " * 40 + "López"  # 249 characters, written by another service
    assert len(long_name) > 200
    clinic.add_patient(long_name, "+50377654321", email="ana@localhost")
    clinic.add_patient("Beto", "+50377654322", email="beto..perez@example.com")
    body, before, after = export_then_import(client, clinic)
    assert (body["imported"], body["updated"], body["unchanged"]) == (2, 0, 2)
    assert_unchanged(before, after)

    # Anything else is still refused: a long name or a bad email the clinic does not have
    # stored for that phone, or for a phone it does not have at all.
    text = (
        "Nombre,Teléfono,Email\n"
        f"{long_name} II,7765-4321,\n"
        "Beto,7765-4322,beto...perez@example.com\n"
        f"{long_name},7765-4323,\n"
        "Carla,7765-4324,ana@localhost\n"
        f"{long_name},7765-4321,ana@localhost\n"
    )
    details = invalid_rows(post_csv(client, clinic, text))
    assert details == [
        {"line": 2, "column": "name", "reason": "a name has at most 200 characters"},
        {"line": 3, "column": "email", "reason": "not a valid email address"},
        {"line": 4, "column": "name", "reason": "a name has at most 200 characters"},
        {"line": 5, "column": "email", "reason": "not a valid email address"},
    ]
    response = post_csv(client, clinic, text)
    assert response.json["message"] == (
        "4 of 5 rows cannot be imported (4 problems); nothing was written. Fix them and upload "
        "the file again."
    )
    assert clinic.patients() == after


def test_a_row_equal_to_the_stored_one_but_for_spaces_and_case_is_unchanged(client, clinic):
    # Another service stored these unnormalised; the export brings them back trimmed and with
    # the email's domain lower-cased, which is no change at all.
    clinic.add_patient(" Ana ", "+50377654321", email="Ana@Example.COM")
    clinic.add_patient("Beto\u00a0", "+50377654322", email=" beto@example.com")
    body, before, after = export_then_import(client, clinic)
    assert (body["imported"], body["updated"], body["unchanged"]) == (2, 0, 2)
    assert_unchanged(before, after)
    assert [(p["full_name"], p["email"]) for p in after] == [
        (" Ana ", "Ana@Example.COM"),
        ("Beto\u00a0", " beto@example.com"),
    ]
    # A real change is still one, and the unchanged field keeps its stored spelling.
    text = "Nombre,Teléfono,Email\nAna,7765-4321,ana@example.org\n"
    assert imported(post_csv(client, clinic, text))["updated"] == 1
    ana = clinic.patients()[0]
    assert (ana["full_name"], ana["email"]) == (" Ana ", "ana@example.org")


@pytest.mark.timeout(30)
def test_a_lock_wait_below_a_millisecond_still_gives_up(config, make_clinic, database_url):
    # 0.0004 s used to become lock_timeout '0ms', which PostgreSQL reads as "wait forever".
    clinic = make_clinic()
    app = create_app({**config, "IMPORT_LOCK_WAIT_SECONDS": 0.0004, "POOL_MAX_SIZE": 1})
    try:
        client = app.test_client()
        with psycopg.connect(database_url) as other:
            queries.lock_clinic_imports(other, clinic_id=clinic.id)  # an import in progress
            response = post_csv(client, clinic, "Nombre,Teléfono\nAna,7765-4321\n")
            assert response.status_code == 503, response.get_json()
            assert response.json["code"] == "SERVICE_UNAVAILABLE"
        assert clinic.patients() == []
    finally:
        app.extensions["pool"].close()


@pytest.mark.parametrize("wait", [0, 0.0, -1, -0.5, float("nan"), float("inf"), "20"])
def test_a_lock_wait_that_cannot_work_is_a_config_error(config, wait):
    with pytest.raises(ConfigError) as raised:
        create_app({**config, "IMPORT_LOCK_WAIT_SECONDS": wait})
    assert str(raised.value) == (
        f"IMPORT_LOCK_WAIT_SECONDS must be a number of seconds above 0 and at most 3600, "
        f"not {wait!r}"
    )


def test_thousands_of_refusals_waiting_for_the_stored_values_are_counted_exactly(client, clinic):
    # More rows than one look-up batch and than the answer lists: the stored row is accepted
    # wherever it is, every other bad email is listed in line order and counted.
    clinic.add_patient("Ana", "+50377654321", email="ana@localhost")
    lines = [f"P{n},7{n:07d},p{n}@localhost" for n in range(1, 2501)]
    lines.insert(1500, "Ana,7765-4321,ana@localhost")
    text = "Nombre,Teléfono,Email\n" + "\n".join(lines) + "\n"
    response = post_csv(client, clinic, text, query="?dry_run=true")
    details = invalid_rows(response)
    assert len(details) == 1000
    assert [d["line"] for d in details] == list(range(2, 1002))
    assert {(d["column"], d["reason"]) for d in details} == {("email", "not a valid email address")}
    assert response.json["message"] == (
        "2500 of 2501 rows cannot be imported (2500 problems; the first 1000 are listed); "
        "nothing was written. Fix them and upload the file again."
    )
