"""GET /api/patients/export: a CSV that streams, opens cleanly in Excel and cannot carry a formula."""

import csv
import io
import socket
import subprocess
import time
import urllib.parse

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from patients.api.export import CHUNK_BYTES
from patients.phones import international
from tests.live import LiveServer

URL = "/api/patients/export"
BOM = b"\xef\xbb\xbf"
HEADER = "Nombre,Teléfono,Email,Registrado\n".encode()
FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r", "\n"]


def export(client, clinic, query="", role="staff", sub="user-1", **kwargs):
    url = f"{URL}?{query}" if query else URL
    return client.get(url, headers=clinic.headers(role, sub), **kwargs)


def read_rows(body: bytes, delimiter=",") -> list[list[str]]:
    """The file as Excel-like readers see it: BOM first, then UTF-8 CSV; the header row dropped."""
    assert body.startswith(BOM)
    assert body.count(BOM) == 1
    text = body[len(BOM) :].decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    assert rows[0] == ["Nombre", "Teléfono", "Email", "Registrado"]
    return rows[1:]


def add_many(sql, clinic, count, name_width=60):
    """`count` patients in one statement, named so that their order is their number."""
    sql.execute(
        "INSERT INTO patients (clinic_id, full_name, phone, email) "
        "SELECT %s, 'Paciente ' || lpad(i::text, 6, '0') || ' ' || repeat('x', %s), "
        "       '+503' || (60000000 + i)::text, 'p' || i || '@example.com' "
        "  FROM generate_series(1, %s) AS i",
        (clinic.id, name_width, count),
    )


def copy_of_export(sql, clinic_id):
    """The server process running this clinic's COPY right now, if any."""
    return sql.execute(
        "SELECT state FROM pg_stat_activity WHERE query LIKE 'COPY (%%' AND query LIKE %s",
        (f"%{clinic_id}%",),
    ).fetchone()


# -- the file ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_headers_columns_and_bytes(client, clinic, role):
    clinic.add_patient(
        "José Núñez", "+50377654321", email="jose@example.com", created_at="2026-05-20T12:00Z"
    )
    clinic.add_patient("Ana Gómez", "+50377650000", created_at="2025-12-31T23:00Z")

    response = export(client, clinic, role=role)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="pacientes.csv"'
    # Streams behind a buffering reverse proxy too (tests/test_nginx.py shows it through nginx).
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data()
    # The exact bytes: BOM, header, then rows in list order (Ana before José); names and emails
    # quoted, a missing email empty, phones in international format (a spreadsheet keeps
    # `+503 7765 4321` as text, but reads `+50377654321` as a number and drops the +), dates as
    # YYYY-MM-DD.
    assert (
        body
        == BOM
        + HEADER
        + (
            '"Ana Gómez",+503 7765 0000,,2025-12-31\n'
            '"José Núñez",+503 7765 4321,"jose@example.com",2026-05-20\n'
        ).encode()
    )


def test_accents_survive_as_utf8(client, clinic):
    names = ["Ñandú Pérez Ávila", "María José Güell", "Zoë Ångström"]
    for position, name in enumerate(names):
        clinic.add_patient(name, f"+5037000000{position}", email=f"{position}@clínica.example")

    body = export(client, clinic).get_data()

    for name in names:
        assert name.encode("utf-8") in body
    assert sorted(row[0] for row in read_rows(body)) == sorted(names)
    assert {row[2] for row in read_rows(body)} == {f"{i}@clínica.example" for i in range(3)}


def test_an_empty_clinic_is_the_header_alone(client, clinic):
    response = export(client, clinic)
    assert response.status_code == 200
    assert response.get_data() == BOM + HEADER


def test_dates_are_days_in_the_clinics_time_zone(client, make_clinic):
    salvador = make_clinic(timezone="America/El_Salvador")
    tokyo = make_clinic(timezone="Asia/Tokyo")
    for clinic in (salvador, tokyo):
        clinic.add_patient("Antes", "+50370000001", created_at="2026-03-01T03:00:00Z")
        clinic.add_patient("Borde", "+50370000002", created_at="2026-02-28T15:30:00Z")
        clinic.add_patient("Cerca", "+50370000003", created_at="2026-03-01T05:59:59Z")
        clinic.add_patient("Después", "+50370000004", created_at="2026-03-01T06:00:00Z")

    def dates(clinic):
        return {row[0]: row[3] for row in read_rows(export(client, clinic).get_data())}

    # El Salvador is UTC-6 all year; Tokyo UTC+9.
    assert dates(salvador) == {
        "Antes": "2026-02-28",
        "Borde": "2026-02-28",
        "Cerca": "2026-02-28",
        "Después": "2026-03-01",
    }
    assert dates(tokyo) == {
        "Antes": "2026-03-01",
        "Borde": "2026-03-01",
        "Cerca": "2026-03-01",
        "Después": "2026-03-01",
    }


def test_head_sends_the_headers_and_no_data(client, clinic):
    clinic.add_patient()

    response = client.head(URL, headers=clinic.headers())

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="pacientes.csv"'
    assert response.get_data() == b""
    assert "Content-Length" not in response.headers
    assert clinic.audit("patients.export") == []


# -- formulas ------------------------------------------------------------------------------


def test_formula_cells_get_a_quote_and_phones_are_spaced(client, clinic):
    names = [f"{start}SUM(1+1)*cmd|' /C calc'!A0" for start in FORMULA_STARTS]
    emails = [f"{start}evil{i}@example.com" for i, start in enumerate(FORMULA_STARTS)]
    for i, (name, email) in enumerate(zip(names, emails, strict=True)):
        clinic.add_patient(name, f"+5037100000{i}", email=email)
    clinic.add_patient("Ana =B1", "+50377654321", email="ana+news@example.com")
    clinic.add_patient("'=ya escapada", "+50377654322", email="'o'neil@example.com")

    body = export(client, clinic).get_data()
    rows = {row[1]: row for row in read_rows(body)}

    for i, (name, email) in enumerate(zip(names, emails, strict=True)):
        assert rows[f"+503 7100 000{i}"][0] == "'" + name
        assert rows[f"+503 7100 000{i}"][2] == "'" + email
    # Only a first character counts. The phone is not free text (digits the table's CHECK holds,
    # spaced by phone_international()): it is never guarded, and spreadsheets keep it as text.
    assert rows["+503 7765 4321"][:3] == ["Ana =B1", "+503 7765 4321", "ana+news@example.com"]
    # A stored ' before a formula character gets one more, so the import's rule (take one ' off
    # a cell of ' characters then a formula character) gives back exactly what was stored.
    assert rows["+503 7765 4322"][0] == "''=ya escapada"
    assert rows["+503 7765 4322"][2] == "'o'neil@example.com"
    text = body.decode("utf-8-sig")
    assert ',+503 7765 4321,"ana+news@example.com",' in text
    # Every neutralised cell is quoted, so no delimiter, quote or line break escapes from it.
    assert "\n\"'=SUM(1+1)*cmd|' /C calc'!A0\",+503 7100 0000," in text
    assert '"\'@evil3@example.com"' in text
    for line in text.split("\n")[1:]:
        assert not line or line[0] == '"' or line[0] not in "=+-@\t\r"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        min_size=1,
        max_size=20,
    ).filter(str.strip),
    email=st.none()
    | st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=20,
    ),
)
@example(name="'=x", email="''+y")
@example(name="'Ana", email="\n")
def test_no_cell_can_start_a_formula(client, make_clinic, name, email):
    clinic = make_clinic()
    clinic.add_patient(name, "+50377654321", email=email)

    for delimiter, query in ((",", ""), (";", "delimiter=semicolon")):
        [row] = read_rows(export(client, clinic, query).get_data(), delimiter)

        for stored, cell in ((name, row[0]), (email or "", row[2])):
            assert not cell.startswith(tuple(FORMULA_STARTS))
            # The quote is added only where needed, and is the import's to take off again: also
            # before a stored ' that precedes a formula character, so the rule stays reversible.
            if stored.lstrip("'").startswith(tuple(FORMULA_STARTS)):
                assert cell == "'" + stored
            else:
                assert cell == stored
        assert row[1] == "+503 7765 4321"


# -- who may export what -------------------------------------------------------------------


def test_basic_plan_is_refused(client, make_clinic):
    basic = make_clinic(plan="basic")
    basic.add_patient()

    response = export(client, basic)

    assert response.status_code == 403
    assert response.json == {
        "code": "PLAN_UPGRADE_REQUIRED",
        "message": "Exporting patients requires the Pro plan.",
        "details": None,
    }
    assert basic.audit("patients.export") == []


def test_without_a_token_is_401(client, clinic):
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json["code"] == "UNAUTHORIZED"


def test_another_clinics_patients_never_appear(client, make_clinic):
    mine, theirs = make_clinic(), make_clinic()
    mine.add_patient("Mía Pérez", "+50377654321")
    theirs.add_patient("Ajena Pérez", "+50377654321")
    theirs.add_patient("Otra Ajena", "+50370000000")

    body = export(client, mine, "search=p%C3%A9rez").get_data()

    assert [row[0] for row in read_rows(body)] == ["Mía Pérez"]
    assert b"Ajena" not in export(client, mine).get_data()


# -- narrowing like the list ----------------------------------------------------------------

NARROWING_PATIENTS = [
    ("Juan Pérez", "+50377654321", False),
    ("JUANA PEREZ", "+50377650001", True),
    ("María 100% Ñúñez", "+50371112222", False),
    ("Ana_Gómez", "+50377654000", True),
    ("Back\\slash Ortiz", "+50360001111", False),
    ("Luis Ｏrtiz", "+50361234567", False),
    ("Ña Pérez", "+50377650002", False),
]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "search=perez",
        "search=P%C3%89REZ",
        "search=7765-4321",
        "search=%2B503+7765",
        "search=%25",
        "search=_",
        "search=%5C",
        "search=%EF%BC%85",
        "search=ortiz",
        "search=%20%20",
        "blocked=true",
        "blocked=false",
        "search=perez&blocked=false",
        "search=7765&blocked=true",
        "search=nadie",
    ],
)
def test_search_and_blocked_narrow_exactly_as_the_list(client, clinic, query):
    for name, phone, blocked in NARROWING_PATIENTS:
        clinic.add_patient(name, phone, is_blocked=blocked)

    listed = client.get(f"/api/patients?limit=200&{query}", headers=clinic.headers())
    assert listed.status_code == 200
    exported = export(client, clinic, query)
    assert exported.status_code == 200

    expected = [[p["full_name"], international(p["phone"])] for p in listed.json["patients"]]
    assert [row[:2] for row in read_rows(exported.get_data())] == expected
    assert listed.json["total"] == len(expected)


def test_narrowing_is_not_vacuous(client, clinic):
    """The comparison above would pass with two empty lists: here the counts are known."""
    for name, phone, blocked in NARROWING_PATIENTS:
        clinic.add_patient(name, phone, is_blocked=blocked)

    def names(query):
        return [row[0] for row in read_rows(export(client, clinic, query).get_data())]

    assert names("search=perez") == ["Juan Pérez", "JUANA PEREZ", "Ña Pérez"]
    assert names("search=7765-4321") == ["Juan Pérez"]
    assert names("search=%25") == ["María 100% Ñúñez"]
    assert names("blocked=true") == ["Ana_Gómez", "JUANA PEREZ"]
    assert len(names("")) == len(NARROWING_PATIENTS)


# -- delimiter ------------------------------------------------------------------------------


def test_semicolon_delimiter(client, clinic):
    clinic.add_patient("Pérez; Juan, hijo", "+50377654321", email="juan@example.com")

    body = export(client, clinic, "delimiter=semicolon").get_data()

    assert body.startswith(BOM + "Nombre;Teléfono;Email;Registrado\n".encode())
    assert '"Pérez; Juan, hijo";+503 7765 4321;"juan@example.com";' in body.decode("utf-8")
    assert read_rows(body, ";")[0][:3] == [
        "Pérez; Juan, hijo",
        "+503 7765 4321",
        "juan@example.com",
    ]
    assert export(client, clinic, "delimiter=comma").get_data().startswith(BOM + HEADER)


@pytest.mark.parametrize(
    "query, field",
    [
        ("delimiter=tab", "delimiter"),
        ("delimiter=%3B", "delimiter"),
        ("delimiter=pipe", "delimiter"),
        ("delimiter=Semicolon", "delimiter"),
        ("blocked=maybe", "blocked"),
        ("search=a%00b", "search"),
        ("search=" + "a" * 101, "search"),
    ],
)
def test_bad_parameters_are_400_and_leave_no_trace(client, clinic, query, field):
    clinic.add_patient()

    response = export(client, clinic, query)

    assert response.status_code == 400
    assert response.json["code"] == "VALIDATION_ERROR"
    assert response.json["details"]["field"] == field
    assert clinic.audit("patients.export") == []


# -- audit ----------------------------------------------------------------------------------


def test_each_export_writes_an_audit_row(client, clinic):
    for i in range(3):
        clinic.add_patient(f"Pérez {i}", f"+5037000000{i}")
    clinic.add_patient("Otro", "+50370000009")

    export(
        client, clinic, "search=p%C3%A9rez&delimiter=semicolon", role="admin", sub="u-9"
    ).get_data()
    export(client, clinic).get_data()

    first, second = clinic.audit("patients.export")
    assert first["actor_id"] == "u-9" and first["actor_role"] == "admin"
    assert first["patient_id"] is None
    assert first["details"] == {
        "rows": 3,
        "complete": True,
        "search": {"kind": "name", "length": 5},  # never the term (tests/test_hostile.py)
        "blocked": None,
        "delimiter": "semicolon",
    }
    assert second["details"]["rows"] == 4
    assert second["actor_role"] == "staff"


# -- streaming ------------------------------------------------------------------------------


def test_it_streams_from_one_snapshot(client, sql, clinic):
    count = 30_000
    add_many(sql, clinic, count)

    response = export(client, clinic, buffered=False)
    chunks = response.iter_encoded()
    first, second = next(chunks), next(chunks)

    assert first == BOM + HEADER
    assert second.startswith(b'"Paciente 000001 ')
    # The response has begun and PostgreSQL is still sending rows: nothing waits for the last one.
    assert copy_of_export(sql, clinic.id) == {"state": "active"}
    # A patient added now is not in this file: one COPY is one snapshot.
    clinic.add_patient("Paciente 000000 nuevo", "+50377654321")

    rest = list(chunks)
    response.close()
    assert copy_of_export(sql, clinic.id) is None
    # Memory per download is one chunk, not the file.
    assert len(rest) > 30
    assert max(len(chunk) for chunk in [second, *rest]) < CHUNK_BYTES + 200
    rows = read_rows(b"".join([first, second, *rest]))
    assert len(rows) == count
    assert rows[0][0].startswith("Paciente 000001") and rows[-1][0].startswith("Paciente 030000")
    assert clinic.audit("patients.export")[0]["details"]["rows"] == count


def test_a_client_that_leaves_is_audited_and_the_copy_ends(client, sql, clinic):
    add_many(sql, clinic, 20_000)

    response = export(client, clinic, buffered=False)
    chunks = response.iter_encoded()
    received = [next(chunks) for _ in range(4)]
    response.close()

    # The rows of every chunk the server asked past; the last one handed over may not have gone.
    handed = sum(chunk.count(b"\n") for chunk in received[1:3])
    assert handed > 0
    [row] = clinic.audit("patients.export")
    assert row["details"] == {
        "rows": handed,
        "complete": False,
        "search": None,
        "blocked": None,
        "delimiter": "comma",
    }
    assert copy_of_export(sql, clinic.id) is None
    # The connection went back to the pool in a usable state.
    assert export(client, clinic, "search=nadie").get_data() == BOM + HEADER


def test_a_failure_mid_download_breaks_the_transfer_and_is_audited(client, sql, clinic):
    add_many(sql, clinic, 20_000)

    response = export(client, clinic, buffered=False)
    chunks = response.iter_encoded()
    received = [next(chunks) for _ in range(3)]
    sql.execute(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE %s",
        (f"COPY (%{clinic.id}%",),
    )

    # The body does not end as if it were whole: the server is told, and drops the connection.
    # A cancelled statement is not a lost database: it surfaces as what it is, not as a 503.
    with pytest.raises(psycopg.errors.QueryCanceled):
        received.extend(chunks)
    response.close()
    assert sum(chunk.count(b"\n") for chunk in received) < 20_001
    [row] = clinic.audit("patients.export")
    assert row["details"]["complete"] is False
    assert 0 < row["details"]["rows"] < 20_000
    assert export(client, clinic, "search=nadie").get_data() == BOM + HEADER


@pytest.mark.slow
def test_live_server_streams_the_same_bytes_as_curl_gets(config, sql, clinic, tmp_path):
    add_many(sql, clinic, 20_000)
    clinic.add_patient("=Núñez", "+50377654321", email="@x.example")
    token = clinic.headers()["Authorization"]

    with LiveServer(config, workers=1, threads=2) as server:
        out = tmp_path / "pacientes.csv"
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "-D",
                "-",
                "-o",
                str(out),
                "-H",
                f"Authorization: {token}",
                f"{server.url}{URL}?{urllib.parse.urlencode({'delimiter': 'comma'})}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        headers = curl.stdout.lower()
        assert "transfer-encoding: chunked" in headers
        assert "content-length" not in headers
        assert 'content-disposition: attachment; filename="pacientes.csv"' in headers
        body = out.read_bytes()
        rows = read_rows(body)
        assert len(rows) == 20_001
        assert rows[0][:3] == ["'=Núñez", "+503 7765 4321", "'@x.example"]

        # A client that hangs up mid-download: the worker ends the COPY and records it.
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                f"GET {URL} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n".encode()
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(clinic.audit("patients.export")) < 2:
            time.sleep(0.1)
    complete, interrupted = clinic.audit("patients.export")
    assert complete["details"]["rows"] == 20_001 and complete["details"]["complete"] is True
    assert interrupted["details"]["complete"] is False
    assert interrupted["details"]["rows"] < 20_001
