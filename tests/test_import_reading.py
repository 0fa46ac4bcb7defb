"""POST /api/patients/import reads the spreadsheets clinics really have, and says what is wrong with
the ones it cannot read (400 INVALID_CSV, never a 500)."""

import io

import pytest

from tests.helpers import imported, post_csv


def invalid_csv(response):
    assert response.status_code == 400, response.get_json()
    assert response.json["code"] == "INVALID_CSV"
    return response.json


NAME = "José Ñúñez"


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param(f"Nombre,Teléfono\n{NAME},7765-4321\n".encode(), id="utf-8"),
        pytest.param(f"Nombre,Teléfono\n{NAME},7765-4321\n".encode("utf-8-sig"), id="utf-8-bom"),
        pytest.param(f"Nombre;Teléfono\r\n{NAME};7765-4321\r\n".encode("cp1252"), id="cp1252"),
        pytest.param(f"Nombre\tTeléfono\r\n{NAME}\t7765-4321\r\n".encode("utf-16"), id="utf-16"),
    ],
)
def test_encodings_keep_accents(client, clinic, encoded):
    body = imported(post_csv(client, clinic, encoded))
    assert body["created"] == 1
    [patient] = clinic.patients()
    assert patient["full_name"] == NAME
    assert patient["phone"] == "+50377654321"


def test_cp1252_bytes_that_are_not_utf8_are_read_as_windows_1252(client, clinic):
    # 0xE9 alone is invalid UTF-8; in Windows-1252 it is é (and 0x80 is €).
    data = b"nombre,telefono\nRen\xe9 \x80 Garc\xeda,77654321\n"
    imported(post_csv(client, clinic, data))
    assert clinic.patients()[0]["full_name"] == "René € García"


@pytest.mark.parametrize(
    "text",
    [
        "Nombre,Teléfono,Email\nAna,7765-4321,ana@example.com\n",
        "Nombre;Teléfono;Email\nAna;7765-4321;ana@example.com\n",
        "sep=;\nNombre;Teléfono;Email\nAna;7765-4321;ana@example.com\n",
        "sep=,\r\nNombre,Teléfono,Email\r\nAna,7765-4321,ana@example.com\r\n",
        # A semicolon file whose cells contain commas: the header line decides.
        'Nombre;Teléfono;Email\n"Ana, la de Soya";7765-4321;ana@example.com\n',
        # Quoted header cells holding commas do not make it a comma file.
        'Nombre;Teléfono;Email;"Notas, alergias, otros, etc."\nAna;7765-4321;ana@example.com;x\n',
    ],
    ids=[
        "comma",
        "semicolon",
        "sep-semicolon",
        "sep-comma-crlf",
        "semicolon-with-commas",
        "quoted-header",
    ],
)
def test_delimiters(client, clinic, text):
    body = imported(post_csv(client, clinic, text))
    assert body["imported"] == 1
    [patient] = clinic.patients()
    assert patient["full_name"].startswith("Ana")
    assert patient["email"] == "ana@example.com"


@pytest.mark.parametrize(
    "header",
    [
        "Nombre,Teléfono,Email,DUI",
        "  NOMBRE , TELÉFONO ,EMAIL , Dui ",
        "name,phone,email,dui",
        "Full_Name,Telefono,E-mail-ignored,DUI",
        "full_name,PHONE,Email,dui",
        "Nómbre,Téléfono,Émail,DÚI",
    ],
)
def test_header_aliases_ignore_case_accents_and_spaces(client, clinic, header):
    text = f"{header}\nAna López,7765-4321,ana@example.com,12345678-9\n"
    imported(post_csv(client, clinic, text))
    [patient] = clinic.patients()
    assert (patient["full_name"], patient["phone"]) == ("Ana López", "+50377654321")
    assert patient["dui_ciphertext"] is not None
    if "ignored" not in header:
        assert patient["email"] == "ana@example.com"


def test_other_columns_are_ignored_so_the_export_format_imports(client, clinic):
    text = (
        "Nombre,Teléfono,Email,Registrado,Notas\n"
        "Ana López,+50377654321,ana@example.com,2026-05-20,alergia a la penicilina\n"
    )
    imported(post_csv(client, clinic, text))
    [patient] = clinic.patients()
    assert patient["notes"] is None
    assert patient["email"] == "ana@example.com"


def test_quoted_cells_with_embedded_newlines_and_quotes(client, clinic):
    text = (
        'Nombre,Teléfono,Email\r\n"Ana ""la Chula""\r\nLópez",7765-4321,\r\n'
        '"Beto, Jr.","7765-4322","beto@example.com"\r\n'
    )
    body = imported(post_csv(client, clinic, text))
    assert body["imported"] == 2
    names = {p["phone"]: p["full_name"] for p in clinic.patients()}
    assert names == {"+50377654321": 'Ana "la Chula"\r\nLópez', "+50377654322": "Beto, Jr."}


def test_blank_rows_are_skipped(client, clinic):
    text = "Nombre;Teléfono;Email\r\nAna;77654321;\r\n;;\r\n\r\n  ;  ;\r\nBeto;77654322;\r\n;;\r\n"
    body = imported(post_csv(client, clinic, text))
    assert body["imported"] == 2


def test_formula_guard_quote_is_removed(client, clinic):
    text = (
        "Nombre,Teléfono,Email\n"
        "'=Ana,'+50377654321,\n"
        "'-Beto,7765-4322,\n"
        "'@Carla,7765-4323,\n"
        "O'Brien,7765-4324,\n"
        "'Quoted',7765-4325,\n"
        "''=Doble,7765-4326,\n"
    )
    imported(post_csv(client, clinic, text))
    names = sorted(p["full_name"] for p in clinic.patients())
    # Only a ' before a formula-like character (or before more ' then one) is the export's
    # guard, and exactly one comes off; other quotes are data.
    assert names == sorted(["=Ana", "-Beto", "@Carla", "O'Brien", "'Quoted'", "'=Doble"])


@pytest.mark.parametrize(
    "data, says",
    [
        (b"", "empty"),
        (b"  \r\n\r\n", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (b"Nombre,Tel\x00efono\n", "NUL"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL"),
        (b"PK\x03\x04\x14\x00\x06\x00", "xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", ".xls"),
        (b"%PDF-1.7\n", "PDF"),
        (b"Nombre,Email\nAna,ana@example.com\n", "no phone column"),
        (b"Telefono\n77654321\n", "no name column"),
        (b"Apellido;Fijo\nAna;77654321\n", "no name and no phone column"),
        (b"Apellido;Celular\nAna;77654321\n", "no name column"),
        (b"\r\nNombre,Telefono\n", "first line is empty"),
        (b"Nombre,Name,Telefono\nAna,Ana,77654321\n", "Two columns mean name"),
        (b"sep=;\n", "no header"),
        (b'Nombre,Telefono\n"Ana,77654321\nBeto,77654322\n', "never closed"),
        (b'Nombre,Telefono\n"Ana" Lopez,77654321\n', "after a closing quote"),
        ("Nombre,Teléfono\nAna,7765\n".encode("utf-16-le"), "NUL"),
    ],
)
def test_unreadable_files_are_invalid_csv_saying_why(client, clinic, data, says):
    body = invalid_csv(post_csv(client, clinic, data))
    assert says.lower() in body["message"].lower()
    assert clinic.patients() == []


def test_missing_column_details_list_what_was_found(client, clinic):
    body = invalid_csv(post_csv(client, clinic, "Nombre;Correo\nAna;a@b.com\n"))
    assert body["details"] == {
        "missing": ["phone"],
        "found": ["Nombre", "Correo"],
        "columns": 2,
        "not_shown": 0,
    }


def test_a_file_without_its_header_line_is_refused_without_repeating_the_first_row(client, clinic):
    # The header row was left out: the first line is a patient, DUI and phone included.
    response = post_csv(client, clinic, "Ana Lopez,77654321,01234567-0\nBeto,77654322,\n")
    body = invalid_csv(response)
    assert body["details"] == {
        "missing": ["name", "phone"],
        "found": [],
        "columns": 3,
        "not_shown": 3,
    }
    assert body["message"] == (
        "The header has no name and no phone column. Expected a header line such as "
        "Nombre,Teléfono,Email,DUI; the first line has 3 cells and none of them is a header name "
        "(they look like a patient's data, so they are not repeated here): the header line "
        "seems to be missing."
    )
    text = response.get_data(as_text=True)
    for cell in ("Ana", "Lopez", "7765", "4321", "01234567", "1234567-0"):
        assert cell not in text
    assert clinic.patients() == []


def test_a_headerless_first_row_of_names_only_is_not_repeated_either(client, clinic):
    # No digit, no @ in it, and still two patients' names: nothing known, nothing repeated.
    body = invalid_csv(post_csv(client, clinic, "Ana López,,Juan Pérez\nBeto,77654322,\n"))
    assert body["details"]["found"] == [] and body["details"]["not_shown"] == 2
    assert "Ana" not in str(body) and "Juan" not in str(body)


def test_a_header_with_a_typo_lists_only_the_cells_that_look_like_header_names(client, clinic):
    text = "Nombre,Celualr,Tel 2,ana@example.com\nAna,77654321,,\n"
    body = invalid_csv(post_csv(client, clinic, text))
    assert body["details"] == {
        "missing": ["phone"],
        "found": ["Nombre", "Celualr"],
        "columns": 4,
        "not_shown": 2,
    }
    assert body["message"] == (
        "The header has no phone column. Expected a header line such as "
        "Nombre,Teléfono,Email,DUI; found: Nombre, Celualr (and 2 of the 4 cells not shown: "
        "they do not look like header names)."
    )
    assert "ana@example.com" not in str(body) and "Tel 2" not in str(body)


def test_no_file_field_is_invalid_csv(client, clinic):
    response = client.post(
        "/api/patients/import",
        headers=clinic.headers(),
        data={"archivo": (io.BytesIO(b"Nombre,Telefono\nAna,77654321\n"), "p.csv")},
        content_type="multipart/form-data",
    )
    assert "field `file`" in invalid_csv(response)["message"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"json": {"file": "Nombre,Telefono\nAna,77654321\n"}},
        {"data": b"Nombre,Telefono\nAna,77654321\n", "content_type": "text/csv"},
        {"data": b"--x\r\ngarbage", "content_type": "multipart/form-data; boundary=x"},
    ],
    ids=["no-body", "json", "raw-csv-body", "broken-multipart"],
)
def test_not_a_multipart_upload_is_invalid_csv(client, clinic, kwargs):
    response = client.post("/api/patients/import", headers=clinic.headers(), **kwargs)
    invalid_csv(response)


def test_line_numbers_are_spreadsheet_rows(client, clinic):
    # Excel hides the sep= line and shows a multi-line cell as one row: the bad phone is on
    # spreadsheet row 4 (header 1, Ana 2, Beto 3), though it is physical line 6 of the file.
    text = 'sep=;\nNombre;Teléfono\n"Ana\nMaría";77654321\nBeto;77654322\nCarla;123\n'
    response = post_csv(client, clinic, text)
    assert response.status_code == 400
    assert response.json["details"] == [
        {"line": 4, "column": "phone", "reason": "not a valid phone number"}
    ]


def test_template(client, clinic, make_clinic):
    basic = make_clinic(plan="basic")
    for who in (clinic, basic):
        response = client.get("/api/patients/import/template", headers=who.headers())
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        assert response.data.decode("utf-8-sig") == "Nombre,Teléfono,Email,DUI\r\n"
    # The template itself imports (as zero patients), and filled in it imports its rows.
    template = client.get("/api/patients/import/template", headers=clinic.headers()).data
    assert imported(post_csv(client, clinic, template))["imported"] == 0
    filled = template + "Ana López,7765-4321,ana@example.com,12345678-9\r\n".encode()
    assert imported(post_csv(client, clinic, filled))["created"] == 1


def test_template_needs_a_token(client):
    assert client.get("/api/patients/import/template").status_code == 401


def test_oversized_body_is_413_and_discarding_it_is_bounded(client, clinic, monkeypatch):
    from patients.api import middleware

    too_big = b"x" * (client.application.config["MAX_CONTENT_LENGTH"] + 1)
    response = post_csv(client, clinic, too_big)
    assert response.status_code == 413
    assert response.json["code"] == "FILE_TOO_LARGE"
    assert "Connection" not in response.headers  # all of it was read: the connection can go on
    # Past the discard budget the answer still goes out, and the connection is given up.
    monkeypatch.setattr(middleware, "DRAIN_MAX_BYTES", 1024)
    response = post_csv(client, clinic, too_big)
    assert (response.status_code, response.json["code"]) == (413, "FILE_TOO_LARGE")
    assert response.headers["Connection"] == "close"
