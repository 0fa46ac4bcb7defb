"""Reading the spreadsheets clinics really have: bytes in, (line, cells) records out.

Handles UTF-8 with or without BOM, Windows-1252 (Excel's "CSV" on Windows), UTF-16 with BOM
(Excel's "Unicode text"), comma, semicolon or tab delimiters sniffed from the header line, Excel's
`sep=;` first line, and quoted cells with embedded newlines. Anything unreadable is a 400
INVALID_CSV that says what is wrong.

Line numbers are spreadsheet rows: the header is line 1 and each record is one line, however many
physical lines its quoted cells span, and Excel's `sep=` line (which Excel hides) is not counted.
That is the number the user sees beside the row when the file is open in Excel or Sheets.
"""

import csv
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from patients.messages import N_, Rejected

FIELDS = ("name", "phone", "email", "dui")
REQUIRED = ("name", "phone")
# Header names as header_key() folds them (case, accents, punctuation and spaces gone). A sheet's
# name is one column of NAME, or a first-names column (FIRST_NAMES, or one of NAME) joined with a
# SURNAMES column by one space: `Nombres` + `Apellidos` -> `Ana María` + `López Núñez`.
NAME = ("nombre", "name", "fullname", "nombrecompleto", "paciente")
FIRST_NAMES = ("nombres", "firstname")
SURNAMES = ("apellidos", "apellido", "lastname")
ALIASES = {
    **dict.fromkeys(NAME, "name"),
    **dict.fromkeys(FIRST_NAMES, "name"),
    **dict.fromkeys(SURNAMES, "surnames"),
    **dict.fromkeys(("telefono", "phone", "celular", "movil", "whatsapp", "tel"), "phone"),
    **dict.fromkeys(("email", "correo", "correoelectronico", "mail"), "email"),
    "dui": "dui",
}
DELIMITERS = (",", ";", "\t")
# Excel writes `sep=;` as the first line so that it opens the file with that delimiter.
SEP_LINE = re.compile(r'"?sep=(.)"?[ \t]*(?:\r\n|\n|\r|$)', re.IGNORECASE)
# What our export puts a `'` before so that a spreadsheet never runs the cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# Signatures of files people upload instead of a CSV, with what to do about it.
NOT_CSV = (
    (
        b"PK\x03\x04",
        N_(
            "The file is an Excel workbook (.xlsx) or another zip file, not a CSV. Save it from "
            "the spreadsheet as CSV (File > Save As > CSV UTF-8) and upload that."
        ),
    ),
    (
        b"\xd0\xcf\x11\xe0",
        N_(
            "The file is an old Excel workbook (.xls), not a CSV. Save it from the spreadsheet as "
            "CSV (File > Save As > CSV UTF-8) and upload that."
        ),
    ),
    (
        b"%PDF",
        N_(
            "The file is a PDF document, not a CSV. Save it from the spreadsheet as CSV "
            "(File > Save As > CSV UTF-8) and upload that."
        ),
    ),
)


def invalid_csv(message: str, details=None, **params) -> Rejected:
    return Rejected("INVALID_CSV", message, details, **params)


MISSING_COLUMNS = {
    ("name",): N_(
        "The header has no name column. Expected a header line such as "
        "Nombre,Teléfono,Email,DUI; %(reason)s."
    ),
    ("phone",): N_(
        "The header has no phone column. Expected a header line such as "
        "Nombre,Teléfono,Email,DUI; %(reason)s."
    ),
    ("name", "phone"): N_(
        "The header has no name and no phone column. Expected a header line such as "
        "Nombre,Teléfono,Email,DUI; %(reason)s."
    ),
}
# What the first line held, said without repeating a cell that may be a patient's data.
FOUND_ALL = N_("found: %(found)s")
FOUND_SOME = N_(
    "found: %(found)s (and %(not_shown)d of the %(columns)d cells not shown: they do not look "
    "like header names)"
)
FOUND_NONE = N_(
    "the first line has %(columns)d cells and none of them is a header name (they look like a "
    "patient's data, so they are not repeated here): the header line seems to be missing"
)
# A header name as people write them: words of letters (`Correo electrónico`, `E-mail`,
# `Fecha_nac.`, `(Celular)`, `Teléfono:`), short, no digits. A phone, a DUI, an email address or a
# date is none of these.
HEADER_WORDS = re.compile(r"\(?[^\W\d_]+(?:[ ._\-/()]+[^\W\d_]+)*[.):]?")
MAX_HEADER_NAME = 40
SHOWN_AT_MOST = 20


def looks_like_header_name(cell: str) -> bool:
    return len(cell) <= MAX_HEADER_NAME and HEADER_WORDS.fullmatch(cell) is not None


def missing_columns(header: list[str], recognised: bool, missing: list[str]) -> Rejected:
    """INVALID_CSV for a header without a required column, with what it did hold.

    A file whose header line was left out has a patient in its first line: `Ana López,77654321,
    01234567-0` must not come back in the answer (a DUI in clear, a phone, a name). So only cells
    that look like header names are repeated, and none at all when no cell is a known header:
    such a line may be a row (`Ana López,,Juan` holds no digit, and is still two patients' names).
    The rest are counted.
    """
    cells = [cell.strip() for cell in header if cell.strip()]
    if recognised:
        shown = [cell for cell in cells if looks_like_header_name(cell)][:SHOWN_AT_MOST]
    else:
        shown = []  # no known header at all: maybe a row, whose names are patients' names
    hidden = len(cells) - len(shown)
    if not shown:
        reason = FOUND_NONE
    elif hidden:
        reason = FOUND_SOME
    else:
        reason = FOUND_ALL
    counts = {"columns": len(cells), "not_shown": hidden}
    return invalid_csv(
        MISSING_COLUMNS[tuple(missing)],
        {"missing": missing, "found": shown, **counts},
        reason=reason,
        reason_params={"found": ", ".join(shown), **counts},
    )


@dataclass
class Sheet:
    delimiter: str
    columns: dict[str, list[int]]  # field -> positions in the row (name: first names, surnames)
    report: dict[str, list[str]]  # field -> the header cells used for it, and "ignored"
    records: Iterator[tuple[int, dict[str, str]]]  # (line, {field: cell}) for non-blank rows


def decode(data: bytes) -> str:
    for magic, message in NOT_CSV:
        if data.startswith(magic):
            raise invalid_csv(message)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise invalid_csv(
                N_("The file says it is UTF-16 but is not readable as such.")
            ) from None
    elif b"\x00" in data:
        raise invalid_csv(
            N_(
                "The file contains NUL bytes: it is a binary file, not a CSV. Save it from the "
                "spreadsheet as CSV (File > Save As > CSV UTF-8) and upload that."
            )
        )
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Not UTF-8: Excel on Windows saves "CSV (comma delimited)" in Windows-1252.
            try:
                text = data.removeprefix(b"\xef\xbb\xbf").decode("cp1252")
            except UnicodeDecodeError:
                raise invalid_csv(
                    N_(
                        "The file is neither UTF-8 nor Windows-1252 text. Save it from the "
                        "spreadsheet as CSV (File > Save As > CSV UTF-8) and upload that."
                    )
                ) from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise invalid_csv(
            N_(
                "The file contains NUL characters: it is not a CSV. Save it from the "
                "spreadsheet as CSV (File > Save As > CSV UTF-8) and upload that."
            )
        )
    if not text.strip():
        raise invalid_csv(N_("The file is empty."))
    return text


def sniff_delimiter(header_line: str) -> str:
    unquoted = re.sub(r'"[^"]*"', "", header_line)  # a quoted header may hold the other one
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties go to the comma, listed first
    return best if counts[best] else ","


def header_key(cell: str) -> str:
    """`  Correo electrónico ` -> `correoelectronico`, `E-mail` -> `email`: case, accents,
    punctuation and spaces do not matter."""
    decomposed = unicodedata.normalize("NFKD", cell.removeprefix("\ufeff").casefold())
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))


def clean_cell(cell: str) -> str:
    """The cell without surrounding spaces, or, when our export guarded it, exactly as exported.

    The export puts a ' before a cell that a spreadsheet would run as a formula, and before a
    stored value made of ' characters then a formula character (`'=x` goes out as `''=x`), so
    taking exactly one ' off such a cell gives back the stored value: an export imports back
    unchanged.
    """
    if cell[:1] == "'" and cell.lstrip("'")[:1] in FORMULA_START:
        return cell[1:]
    return cell.strip()


def map_columns(header: list[str]) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """(field -> positions, the `columns` report: field -> header cells, and those ignored)."""
    found: dict[str, int] = {}
    ignored: list[str] = []
    for position, cell in enumerate(header):
        field = ALIASES.get(header_key(cell))
        if field is None:
            if cell.strip():
                ignored.append(cell.strip())  # Registrado, Notas, …: said, never dropped in silence
            continue
        if field in found:
            first = header[found[field]].strip()
            shown = "name" if field == "surnames" else field
            raise invalid_csv(
                N_("Two columns mean %(field)s: %(first)r and %(second)r. Keep only one."),
                {"column": shown, "headers": [first, cell.strip()]},
                field=shown,
                first=first,
                second=cell.strip(),
            )
        found[field] = position
    missing = [field for field in REQUIRED if field not in found]
    if missing:
        raise missing_columns(header, bool(found), missing)
    columns = {field: [position] for field, position in found.items() if field != "surnames"}
    if "surnames" in found:
        columns["name"].append(found["surnames"])
    report = {
        field: [header[position].strip() for position in columns.get(field, [])] for field in FIELDS
    }
    report["ignored"] = ignored
    return columns, report


# One line with its ending (\r\n, \r or \n), as io.StringIO(text, newline="") would hand it to
# csv.reader, found in place: a StringIO holds its own copy of the text at 4 bytes a character
# (19 MB for a 5 MB file, alive while the whole file is checked).
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def lines(text: str) -> Iterator[str]:
    return (match.group() for match in LINE.finditer(text))


def read(data: bytes) -> Sheet:
    """The sheet's delimiter, its known columns and an iterator over its records.

    Errors in the header are raised here; errors further down the file are raised while the
    records are iterated (still before anything is written).
    """
    text = decode(data)
    delimiter = None
    sep = SEP_LINE.match(text)
    if sep:
        delimiter, text = sep[1], text[sep.end() :]
        if not text.strip():
            raise invalid_csv(N_("The file has a sep= line but no header."))
    if delimiter is None:
        delimiter = sniff_delimiter(re.split(r"\r\n|\n|\r", text, maxsplit=1)[0])
    if delimiter in ('"', "\r", "\n") or delimiter.isalnum():
        raise invalid_csv(
            N_("The sep= line names an unusable delimiter %(delimiter)r."), delimiter=delimiter
        )

    reader = csv.reader(lines(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise invalid_csv(
            N_("The header line is not readable CSV: %(reason)s."), reason=csv_reason(exc)
        ) from None
    if not header or not any(cell.strip() for cell in header):
        raise invalid_csv(
            N_("The first line is empty: it should be the header (Nombre,Teléfono,…).")
        )
    columns, report = map_columns(header)
    return Sheet(delimiter, columns, report, _records(reader, columns))


def csv_reason(exc: csv.Error) -> str:
    """Python's csv error in words a person can act on (and can be translated)."""
    if "unexpected end of data" in str(exc):
        return N_("a quoted cell is never closed (a missing closing quote)")
    if "expected after" in str(exc):
        return N_("text after a closing quote (put the whole cell in quotes)")
    if "field larger than field limit" in str(exc):
        return N_("a cell is too long")
    return N_("not readable CSV")


def _records(reader, columns: dict[str, list[int]]) -> Iterator[tuple[int, dict[str, str]]]:
    # The usual sheet has one column per field: its rows skip the joining (the same values).
    singles = None
    if all(len(positions) == 1 for positions in columns.values()):
        singles = [(field, positions[0]) for field, positions in columns.items()]
    line = 1
    while True:
        line += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = csv_reason(exc)
            raise invalid_csv(
                N_("Line %(line)d is not readable CSV: %(reason)s."),
                {"line": line, "reason": reason},
                line=line,
                reason=reason,
            ) from None
        if not any(cell.strip() for cell in row):
            continue  # blank rows (Excel leaves `;;;` lines at the end) are not patients
        if singles is not None:  # one column per field: each value is its cell, cleaned
            count = len(row)
            yield line, {f: clean_cell(row[p]) if p < count else "" for f, p in singles}
            continue
        cells = {
            field: [clean_cell(row[p]) if p < len(row) else "" for p in positions]
            for field, positions in columns.items()
        }
        # First names and surnames joined by one space; either may be empty.
        yield line, {field: " ".join(filter(None, parts)) for field, parts in cells.items()}
