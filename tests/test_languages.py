"""Every message a person reads, in Spanish when Accept-Language prefers `es`, English otherwise
(Flask-Babel, the catalog in translations/es/LC_MESSAGES/messages.po).

The catalog test fails as soon as a message in the code has no Spanish: run `make messages`,
translate the new `msgstr ""` lines, and it passes again.
"""

import io
import os
import shutil
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from babel.support import Translations

from patients.api.i18n import compile_catalogs
from tests.helpers import post_csv

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "translations" / "es" / "LC_MESSAGES" / "messages.po"
SPANISH = {"Accept-Language": "es-SV,es;q=0.9,en;q=0.8"}


def messages_in_the_code() -> dict[str, str]:
    """msgid -> where, for every string marked N_ / gettext / ngettext (as `make messages` finds
    them, with babel.cfg)."""
    with (ROOT / "babel.cfg").open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found.setdefault(msgid, f"{filename}:{line}")
    return found


def spanish_catalog():
    with CATALOG.open("rb") as source:
        return read_po(source, locale="es")


def test_every_message_in_the_code_has_its_spanish():
    catalog = spanish_catalog()
    translated = {}
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        ok = all(strings) and "fuzzy" not in message.flags
        for msgid in message.id if isinstance(message.id, tuple) else (message.id,):
            translated[msgid] = ok
    code = messages_in_the_code()
    assert len(code) > 60  # the extraction found the app's messages, not nothing
    missing = {msgid: where for msgid, where in code.items() if msgid not in translated}
    untranslated = {msgid: where for msgid, where in code.items() if translated.get(msgid) is False}
    assert not missing, f"not in the catalog (run `make messages`): {missing}"
    assert not untranslated, f"no Spanish yet (or fuzzy) in {CATALOG.name}: {untranslated}"


def test_every_translation_keeps_its_placeholders():
    problems = [
        (message.id, [str(error) for error in errors])
        for message, errors in spanish_catalog().check()
    ]
    assert problems == []


def test_a_missing_or_stale_compiled_catalog_is_compiled_at_start(tmp_path):
    folder = tmp_path / "es" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    shutil.copy(CATALOG, folder / "messages.po")

    assert compile_catalogs(tmp_path) == [folder / "messages.mo"]
    assert compile_catalogs(tmp_path) == []  # up to date: left alone
    spanish = Translations.load(str(tmp_path), ["es"])
    assert spanish.gettext("The file is empty.") == "El archivo está vacío."
    assert spanish.ngettext(
        "Successfully imported %(num)d patient", "Successfully imported %(num)d patients", 42
    ) == ("Se importaron %(num)d pacientes")
    assert spanish.ngettext(
        "Successfully imported %(num)d patient", "Successfully imported %(num)d patients", 1
    ) == ("Se importó %(num)d paciente")

    # An edited catalog is newer than its .mo: compiled again.
    po = folder / "messages.po"
    po.write_text(po.read_text().replace("El archivo está vacío.", "Archivo vacío."))
    mo = folder / "messages.mo"
    stat = mo.stat()
    os.utime(mo, (stat.st_atime - 10, stat.st_mtime - 10))
    assert compile_catalogs(tmp_path) == [mo]
    assert Translations.load(str(tmp_path), ["es"]).gettext("The file is empty.") == (
        "Archivo vacío."
    )


# -- through HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "language"),
    [
        (None, "en"),
        ("es", "es"),
        ("es-SV", "es"),
        ("es-SV,es;q=0.9,en;q=0.8", "es"),
        ("en-US,en;q=0.9,es;q=0.8", "en"),
        ("en;q=0.5, es", "es"),
        ("fr-FR,fr;q=0.9", "en"),
        ("*", "en"),
    ],
)
def test_accept_language_chooses(client, accept, language):
    headers = {"Accept-Language": accept} if accept else {}
    response = client.get("/api/patients", headers=headers)
    assert response.status_code == 401
    assert response.json == {
        "code": "UNAUTHORIZED",
        "message": {
            "en": "A valid bearer token is required.",
            "es": "Se necesita un token de acceso (bearer) válido.",
        }[language],
        "details": None,
    }


def test_errors_raised_anywhere_are_spanish(client, clinic, make_clinic):
    def get(url, **kwargs):
        return client.get(url, headers={**clinic.headers(), **SPANISH}, **kwargs).json

    assert get("/api/patients?limit=500") == {
        "code": "VALIDATION_ERROR",
        "message": "Valor no válido en limit: debe estar entre 1 y 200",
        "details": {"field": "limit", "reason": "debe estar entre 1 y 200"},
    }
    assert get("/api/patients/00000000-0000-0000-0000-000000000000")["message"] == (
        "No existe ese paciente en esta clínica."
    )
    assert get("/api/no-such-route")["message"] == "No encontrado."
    basic = make_clinic(plan="basic")
    refused = client.get("/api/patients/export", headers={**basic.headers(), **SPANISH})
    assert (refused.status_code, refused.json["code"], refused.json["message"]) == (
        403,
        "PLAN_UPGRADE_REQUIRED",
        "Exportar pacientes requiere el plan Pro.",
    )
    staff_audit = client.get("/api/audit", headers={**clinic.headers("staff"), **SPANISH})
    assert staff_audit.json["message"] == "Su rol no tiene permiso para hacer esto."


def test_import_answers_in_spanish(client, clinic):
    def upload(text):
        return client.post(
            "/api/patients/import",
            headers={**clinic.headers(), **SPANISH},
            data={"file": (io.BytesIO(text.encode()), "pacientes.csv")},
            content_type="multipart/form-data",
        )

    one = upload("Nombre,Celular\nAna,7765-4321\n")
    assert one.json["message"] == "Se importó 1 paciente"
    many = upload("Nombre,Celular\nAna,7765-4321\nBeto,7765-4322\nCarla,7765-4323\n")
    assert many.json["message"] == "Se importaron 3 pacientes"
    assert (many.json["created"], many.json["unchanged"]) == (2, 1)

    missing = upload("Apellidos,Celular\nLópez,7765-4321\n")
    assert missing.json == {
        "code": "INVALID_CSV",
        "message": "El encabezado no tiene columna de nombre. Se esperaba una línea de "
        "encabezado como Nombre,Teléfono,Email,DUI; se encontró: Apellidos, Celular.",
        "details": {
            "missing": ["name"],
            "found": ["Apellidos", "Celular"],
            "columns": 2,
            "not_shown": 0,
        },
    }
    headerless = upload("Ana López,77654321,01234567-0\n")
    assert headerless.json["message"] == (
        "El encabezado no tiene columna de nombre ni de teléfono. Se esperaba una línea de "
        "encabezado como Nombre,Teléfono,Email,DUI; la primera línea tiene 3 celdas y ninguna es "
        "un nombre de encabezado (parecen datos de un paciente, así que no se repiten aquí): "
        "parece que falta la línea de encabezado."
    )
    typo = upload("Nombre,Celualr,Tel 2\nAna,7765-4321,\n")
    assert typo.json["message"] == (
        "El encabezado no tiene columna de teléfono. Se esperaba una línea de encabezado como "
        "Nombre,Teléfono,Email,DUI; se encontró: Nombre, Celualr (y no se muestran 1 de las 3 "
        "celdas: no parecen nombres de encabezado)."
    )
    rows = upload("Nombre,Celular,Correo,DUI\n,7765,ana@@x,12\n")
    assert rows.json["code"] == "INVALID_ROWS"
    assert rows.json["details"] == [
        {"line": 2, "column": "name", "reason": "falta el nombre"},
        {"line": 2, "column": "phone", "reason": "no es un número de teléfono válido"},
        {"line": 2, "column": "email", "reason": "no es un correo electrónico válido"},
        {"line": 2, "column": "dui", "reason": "no es un DUI válido (como 12345678-9)"},
    ]


def test_english_stays_the_default(client, clinic):
    response = post_csv(client, clinic, "Nombre,Celular\nAna,7765-4321\nBeto,7765-4322\n")
    assert response.json["message"] == "Successfully imported 2 patients"


def test_answers_vary_by_language(client):
    assert "Accept-Language" in client.get("/api/patients").headers.get("Vary", "")
