"""Spreadsheets as clinics really save them, through HTTP: the import reads every flavour, the
export survives being opened and saved again, and an unchanged file changes nothing.

The files in tests/fixtures/spreadsheets/ were made by the real programs: LibreOffice 7.4.7.2
(headless) saved an openpyxl 3.1.5 workbook of 297 patients typed the way receptionists type
them, and opened our export and saved it again. manifest.json names the program, version and
filter options of each file; google-sheets.csv is hand-made in the shape of Google Sheets' CSV
download (Google Sheets cannot run here); make_fixtures.py regenerates them all.
"""

import csv
import io
import json
from pathlib import Path

import pytest

from tests.helpers import imported, post_csv

FIXTURES = Path(__file__).parent / "fixtures" / "spreadsheets"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
SPANISH = {"Accept-Language": "es-SV,es;q=0.9,en;q=0.8"}

FLAVOURS = [
    "pacientes-utf8.csv",
    "pacientes-cp1252-semicolon.csv",
    "pacientes-utf16-tab.csv",
    "pacientes-quoted.csv",
    "pacientes-utf8-bom.csv",
    "pacientes-crlf.csv",
    "google-sheets.csv",
]
WORKBOOK_COLUMNS = {
    "name": ["Nombres", "Apellidos"],
    "phone": ["Celular"],
    "email": ["Correo electrónico"],
    "dui": ["DUI"],
    "ignored": ["Notas", "Fecha de nacimiento"],
}


def upload(client, clinic, name, headers=None, query=""):
    data = (FIXTURES / name).read_bytes()
    return client.post(
        f"/api/patients/import{query}",
        headers={**clinic.headers(), **(headers or {})},
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def stored(clinic) -> list[dict]:
    """The clinic's patients as the import must have written them, DUIs opened."""
    rows = []
    for row in clinic.patients():
        dui = None
        if row["dui_ciphertext"] is not None:
            dui = clinic.keys.decrypt(
                clinic.id, row["id"], row["dui_ciphertext"], row["dui_key_id"]
            )
        rows.append(
            {
                "full_name": row["full_name"],
                "phone": row["phone"],
                "email": row["email"],
                "dui": dui,
            }
        )
    return rows


def moments(clinic) -> dict[str, object]:
    return {row["phone"]: row["updated_at"] for row in clinic.patients()}


def test_the_fixtures_say_which_program_made_them():
    assert MANIFEST["libreoffice"].startswith("LibreOffice 7.4")
    for name in FLAVOURS:
        assert name in MANIFEST["files"]
    assert MANIFEST["files"]["google-sheets.csv"]["made_by"].startswith("HAND-MADE")
    assert len(EXPECTED["patients"]) == 297


@pytest.mark.parametrize("name", FLAVOURS)
def test_every_flavour_imports_every_patient_as_typed(client, clinic, name):
    body = imported(upload(client, clinic, name))

    assert (body["imported"], body["created"], body["updated"], body["unchanged"]) == (
        297,
        297,
        0,
        0,
    )
    assert body["columns"] == WORKBOOK_COLUMNS
    # A phone typed with its extension is kept without it, and the answer says so, by line.
    assert body["warnings"] == [
        {
            "line": line,
            "column": "phone",
            "reason": "extension dropped: only the number itself is kept",
        }
        for line in EXPECTED["extension_lines"]
    ]
    expected = sorted(EXPECTED["patients"], key=lambda p: p["phone"])
    assert stored(clinic) == expected
    # What the spreadsheets did to the cells, undone: DUIs typed as numbers lost their leading
    # 0, foreign numbers their +, some phones got a thousands format.
    assert sum(1 for p in expected if p["dui"] and p["dui"].startswith("0")) > 100
    assert sum(1 for p in expected if not p["phone"].startswith("+503")) == 8


@pytest.mark.parametrize("name", ["pacientes-utf8.csv", "pacientes-utf16-tab.csv"])
def test_the_same_file_again_changes_nothing(client, clinic, name):
    imported(upload(client, clinic, name))
    before = moments(clinic)

    body = imported(upload(client, clinic, name))

    assert (body["imported"], body["created"], body["updated"], body["unchanged"]) == (
        297,
        0,
        0,
        297,
    )
    assert moments(clinic) == before
    [_, second] = clinic.audit("patients.import")
    assert (second["details"]["updated"], second["details"]["unchanged"]) == (0, 297)


def test_the_answer_in_spanish(client, clinic):
    body = imported(upload(client, clinic, "pacientes-utf8.csv", SPANISH))

    assert body["message"] == "Se importaron 297 pacientes"
    assert body["warnings"][0]["reason"] == "se quitó la extensión: solo se guarda el número"
    # Codes, field names and column names never change with the language.
    assert body["columns"] == WORKBOOK_COLUMNS
    assert body["warnings"][0]["column"] == "phone"

    dry = imported(upload(client, clinic, "pacientes-utf8.csv", SPANISH, "?dry_run=true"))
    assert dry["message"] == "Simulación: se importarían 297 pacientes; no se guardó nada."


# -- problems -------------------------------------------------------------------------------


def problem_cells() -> list[str]:
    """Every cell of the problem workbook's CSV, as LibreOffice wrote it."""
    text = (FIXTURES / "problemas-utf8.csv").read_text()
    return [cell for row in list(csv.reader(io.StringIO(text)))[1:] for cell in row if cell]


@pytest.mark.parametrize("language", ["en", "es"])
def test_problem_rows_are_listed_by_line_and_never_repeat_a_cell(client, clinic, language):
    headers = SPANISH if language == "es" else {"Accept-Language": "en-US,en;q=0.9"}
    response = upload(client, clinic, "problemas-utf8.csv", headers)

    assert response.status_code == 400
    body = response.json
    assert body["code"] == "INVALID_ROWS"
    assert [{"line": d["line"], "column": d["column"]} for d in body["details"]] == EXPECTED[
        "problems"
    ]
    reasons = {(d["line"], d["column"]): d["reason"] for d in body["details"]}
    if language == "es":
        assert body["message"] == (
            "6 de 8 filas no se pueden importar (7 problemas); no se guardó nada. "
            "Corríjalas y vuelva a subir el archivo."
        )
        assert reasons[(4, "phone")] == (
            "un solo número de teléfono por celda: esta celda tiene más de uno"
        )
        assert reasons[(3, "phone")].startswith(
            "no es un número de teléfono válido: la hoja de cálculo lo convirtió en un número "
            "en notación científica"
        )
        assert reasons[(6, "email")] == "no es un correo electrónico válido"
    else:
        assert body["message"].startswith("6 of 8 rows cannot be imported (7 problems)")
        assert reasons[(4, "phone")] == "one phone number per cell: this cell holds more than one"
        assert reasons[(7, "dui")] == "not a valid DUI (as 12345678-9)"
    # Whatever was in the cells (the scientific-notation phone, the bad email, the DUIs), the
    # answer never repeats it.
    text = json.dumps(body, ensure_ascii=False).replace("12345678-9", "")  # the reasons' example
    for cell in problem_cells():
        if len(cell) >= 4 and not cell.isalpha():
            assert cell not in text, cell
    assert clinic.patients() == []


# -- the export, opened in LibreOffice and saved again ---------------------------------------


def add_export_patients(clinic):
    for patient in EXPECTED["export"]:
        clinic.add_patient(
            patient["full_name"],
            patient["phone"],
            email=patient["email"],
            created_at=f"{patient['created']} 12:00 America/El_Salvador",
        )


def test_our_export_is_byte_for_byte_the_fixture(client, clinic):
    """export.csv is what GET /api/patients/export writes for these patients, so the copies that
    LibreOffice re-saved from it are re-saved exports."""
    add_export_patients(clinic)
    response = client.get("/api/patients/export", headers=clinic.headers())
    assert response.status_code == 200
    assert response.get_data() == (FIXTURES / "export.csv").read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "export-libreoffice.csv",
        "export-libreoffice-special-numbers.csv",
        # The export as it was before phones were spaced: LibreOffice read `+50377654321` as the
        # number 50377654321 and saved it without its +; the foreign numbers still come back.
        "export-e164-libreoffice.csv",
        "export-e164-libreoffice-special-numbers.csv",
        "export.csv",
    ],
)
def test_a_re_saved_export_imports_back_unchanged(client, clinic, name):
    add_export_patients(clinic)
    before, moments_before = stored(clinic), moments(clinic)

    body = imported(upload(client, clinic, name))

    count = len(EXPECTED["export"])
    assert (body["imported"], body["created"], body["updated"], body["unchanged"]) == (
        count,
        0,
        0,
        count,
    )
    assert body["columns"] == {
        "name": ["Nombre"],
        "phone": ["Teléfono"],
        "email": ["Email"],
        "dui": [],
        "ignored": ["Registrado"],
    }
    assert stored(clinic) == before
    assert moments(clinic) == moments_before


def test_fix_a_few_cells_and_only_those_patients_change(client, clinic):
    """Done as the issue says: export, open in a spreadsheet, fix a few cells, save, import."""
    add_export_patients(clinic)
    moments_before = moments(clinic)
    text = (FIXTURES / "export-libreoffice.csv").read_text()
    text = text.replace(
        "Lucía Rivera,+504 9123-4567,,", "Lucía Rivera,+504 9123-4567,lucia@example.com,"
    )
    text = text.replace("Óscar Menjívar,", "Óscar Menjívar Ortiz,")
    text += "Nueva Paciente,7123-4567,,\n"

    body = imported(post_csv(client, clinic, text.encode()))

    assert (body["created"], body["updated"], body["unchanged"]) == (1, 2, 6)
    moments_after = moments(clinic)
    moved = {phone for phone, moment in moments_before.items() if moments_after[phone] != moment}
    assert moved == {"+50491234567", "+50683123456"}
    rows = {row["phone"]: row for row in stored(clinic)}
    assert rows["+50491234567"]["email"] == "lucia@example.com"
    assert rows["+50683123456"]["full_name"] == "Óscar Menjívar Ortiz"
    assert rows["+50371234567"]["full_name"] == "Nueva Paciente"


# -- what staff write, cell by cell ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "columns"),
    [
        ("Nombre,Teléfono", {"name": ["Nombre"], "phone": ["Teléfono"]}),
        (" NOMBRE COMPLETO ;  teléfono ", {"name": ["NOMBRE COMPLETO"], "phone": ["teléfono"]}),
        ("Paciente,Móvil,E-mail", {"name": ["Paciente"], "phone": ["Móvil"], "email": ["E-mail"]}),
        (
            "full_name,WhatsApp,Mail",
            {"name": ["full_name"], "phone": ["WhatsApp"], "email": ["Mail"]},
        ),
        ("Name,Tel.,Correo", {"name": ["Name"], "phone": ["Tel."], "email": ["Correo"]}),
        ("First name,Last name,Phone", {"name": ["First name", "Last name"], "phone": ["Phone"]}),
        ("Apellido,Nombre,Celular", {"name": ["Nombre", "Apellido"], "phone": ["Celular"]}),
        ("Nombres,Celular", {"name": ["Nombres"], "phone": ["Celular"]}),
    ],
)
def test_headers_match_ignoring_case_accents_punctuation_and_spaces(
    client, clinic, header, columns
):
    delimiter = ";" if ";" in header else ","
    cells = {"name": "Ana", "phone": "7765-4321", "email": "ana@example.com"}
    row = []
    for cell in header.split(delimiter):
        key = next(field for field, used in columns.items() if cell.strip() in used)
        row.append("López" if cell.strip() in ("Apellido", "Last name") else cells[key])
    body = imported(post_csv(client, clinic, f"{header}\n{delimiter.join(row)}\n"))
    assert (
        body["columns"]
        == {"name": [], "phone": [], "email": [], "dui": [], "ignored": []} | columns
    )
    [patient] = stored(clinic)
    joined = len(columns["name"]) == 2
    assert patient["full_name"] == ("Ana López" if joined else "Ana")
    assert patient["phone"] == "+50377654321"


def test_first_names_and_surnames_are_joined_by_one_space(client, clinic):
    text = "Nombres,Apellidos,Celular\n  Ana  María ,López,77654321\n,Solo Apellido,77654322\nSolo,,77654323\n"
    imported(post_csv(client, clinic, text))
    assert [p["full_name"] for p in stored(clinic)] == ["Ana  María López", "Solo Apellido", "Solo"]


@pytest.mark.parametrize(
    ("cell", "e164"),
    [
        ("12133734253", "+12133734253"),  # US, its + dropped by a spreadsheet
        ("50255123456", "+50255123456"),  # Guatemala, the same
        ("50377654321", "+50377654321"),
        ("78,553,400", "+50378553400"),  # a number cell with a thousands format
        ("78.553.400", "+50378553400"),
        ("12,133,734,253", "+12133734253"),
        ("'+503 7765 4321", "+50377654321"),
    ],
)
def test_phones_as_spreadsheets_save_them(client, clinic, cell, e164):
    body = imported(post_csv(client, clinic, f'Nombre,Celular\nAna,"{cell}"\n'))
    assert body["warnings"] == []
    assert stored(clinic)[0]["phone"] == e164


def test_an_extension_is_dropped_and_said(client, clinic):
    body = imported(post_csv(client, clinic, "Nombre,Tel\nAna,2222-3333 ext. 12\nBeto,7765-4321\n"))
    assert body["warnings"] == [
        {
            "line": 2,
            "column": "phone",
            "reason": "extension dropped: only the number itself is kept",
        }
    ]
    assert body["warning_count"] == 1
    assert [p["phone"] for p in stored(clinic)] == ["+50322223333", "+50377654321"]


@pytest.mark.parametrize(
    "cell", ["7765-4321 / 2222-3333", "7765-4321, 2222-3333", "77654321 y 22223333"]
)
def test_one_phone_per_cell(client, clinic, cell):
    response = post_csv(client, clinic, f'Nombre,Celular\nAna,"{cell}"\n')
    assert response.status_code == 400
    assert response.json["details"] == [
        {
            "line": 2,
            "column": "phone",
            "reason": "one phone number per cell: this cell holds more than one",
        }
    ]


def test_an_eight_digit_dui_lost_its_leading_zero(client, clinic):
    imported(
        post_csv(
            client, clinic, "Nombre,Celular,DUI\nAna,77654321,12345670\nBeto,77654322,012345679\n"
        )
    )
    assert [p["dui"] for p in stored(clinic)] == ["01234567-0", "01234567-9"]
    # The same DUI again, typed either way, is nothing new.
    again = imported(post_csv(client, clinic, "Nombre,Celular,DUI\nAna,77654321,01234567-0\n"))
    assert (again["updated"], again["unchanged"]) == (0, 1)
    changed = imported(post_csv(client, clinic, "Nombre,Celular,DUI\nAna,77654321,01234567-1\n"))
    assert (changed["updated"], changed["unchanged"]) == (1, 0)
    assert stored(clinic)[0]["dui"] == "01234567-1"
