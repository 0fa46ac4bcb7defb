"""POST /api/patients/import (a spreadsheet of patients, all or nothing) and its template.

The request path: the upload (at most 5 MB) -> csv_reader (decoding, delimiter, header) -> every
row validated and duplicates merged in memory -> one transaction (queries/imports.sql): the rows
COPY'd into a temporary table, the DUIs encrypted for the ids their rows will have and COPY'd as
ciphertext, one upsert, an audit row -> the counts.
"""

import functools
import importlib
import time
import uuid
from dataclasses import dataclass

import psycopg
from email_validator import EmailNotValidError, validate_email
from flask import Blueprint, Response, current_app, request

from patients import audit, csv_reader, db, phones, validation
from patients.auth import caller, current_clinic, require_plan, require_role
from patients.dui import keys, normalise_dui
from patients.errors import APIError
from patients.repository import queries

bp = Blueprint("imports", __name__, url_prefix="/api/patients")

MAX_NAME_LENGTH = 200
MAX_FILE_NAME_LENGTH = 200
TEMPLATE = "Nombre,Teléfono,Email,DUI\r\n"
# A body we refuse is still read off the socket (and thrown away) before we answer, so the client
# receives the 413 instead of a connection reset; past these bounds we stop and close instead.
DRAIN_CHUNK = 64 * 1024
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_MAX_SECONDS = 15.0
# An import waits this long for another import of the same clinic to finish (imports take
# seconds), well inside the reverse proxy's 30 s.
DEFAULT_LOCK_WAIT_SECONDS = 20


# email-validator checks an address's domain character by character (IDNA rules), the larger part
# of its cost; a clinic's list has a few dozen domains among thousands of addresses. Memoising that
# pure step keeps the library's verdicts exactly and makes 70,000 addresses about 3x cheaper.
_email_module = importlib.import_module("email_validator.validate_email")
_domain_check = getattr(_email_module, "validate_email_domain_name", None)
# Pinned library, but guarded: should a release rename the step, we simply validate uncached.
if _domain_check is not None and not hasattr(_domain_check, "cache_info"):
    _email_module.validate_email_domain_name = functools.lru_cache(maxsize=4096)(_domain_check)


@dataclass(slots=True)
class Patient:
    name: str
    email: str | None
    dui: str | None


def too_large() -> APIError:
    limit = current_app.config["MAX_UPLOAD_BYTES"] // (1024 * 1024)
    return APIError(413, "FILE_TOO_LARGE", f"The upload is larger than {limit} MB.")


@bp.post("/import")
@require_role("admin", "staff")
@require_plan("pro", "Importing patients requires the Pro plan.")
def import_patients():
    dry_run = bool(validation.boolean(request.args, "dry_run"))
    file_name, data = read_upload()
    sheet = csv_reader.read(data)
    del data
    patients, rows, merged = validate(sheet, current_clinic()["country_code"])

    clinic_id = caller().clinic_id
    with db.connection() as conn:
        if dry_run:
            # The very same statements, then rolled back: the counts are exactly the real ones.
            with conn.transaction(force_rollback=True):
                created, updated = write(conn, clinic_id, patients)
        else:
            created, updated = write(conn, clinic_id, patients)
            audit.record(
                conn,
                "patients.import",
                details={
                    "file_name": file_name,
                    "rows": rows,
                    "imported": created + updated,
                    "created": created,
                    "updated": updated,
                    "duplicates_merged": merged,
                },
            )
    imported = created + updated
    message = (
        f"Dry run: {imported} patients would be imported; nothing was written."
        if dry_run
        else f"Successfully imported {imported} patients"
    )
    return {
        "message": message,
        "imported": imported,
        "created": created,
        "updated": updated,
        "duplicates_merged": merged,
        "dry_run": dry_run,
    }


@bp.get("/import/template")
@require_role("admin", "staff")
def import_template():
    # With a BOM, so Excel opens the accented header as UTF-8.
    return Response(
        "\ufeff" + TEMPLATE,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="plantilla_pacientes.csv"'},
    )


@bp.after_request
def discard_unread_body(response):
    """Read what is left of the request body (in bounded chunks) and throw it away.

    A server that answers and closes while the client is still sending makes the client's TCP
    stack see a reset, and curl reports "connection reset" instead of our 413 JSON. Reading the
    rest first lets the answer arrive; the body is never held in memory.
    """
    environ = request.environ
    if not (request.content_length or environ.get("wsgi.input_terminated")):
        return response  # no declared body: reading could wait for bytes that never come
    stream = environ.get("wsgi.input")
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    drained = 0
    try:
        while chunk := stream.read(DRAIN_CHUNK):
            drained += len(chunk)
            if drained > DRAIN_MAX_BYTES or time.monotonic() > deadline:
                response.headers["Connection"] = "close"
                break
    except (OSError, ValueError):
        response.headers["Connection"] = "close"  # the client went away or the body was malformed
    return response


def read_upload() -> tuple[str, bytes]:
    """The uploaded file's name and bytes; 413 above MAX_UPLOAD_BYTES, 400 without a file."""
    # Werkzeug answers 413 here for a body over MAX_CONTENT_LENGTH, before reading it, and spools
    # a large file part to a temporary file rather than memory.
    upload = request.files.get("file")
    if upload is None:
        raise csv_reader.invalid_csv(
            "No file: send the spreadsheet as the multipart/form-data field `file` "
            "(curl -F file=@pacientes.csv)."
        )
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise too_large()
    name = "".join(c for c in (upload.filename or "") if c.isprintable())[:MAX_FILE_NAME_LENGTH]
    return name, data


def validate(sheet: csv_reader.Sheet, region: str) -> tuple[dict[str, Patient], int, int]:
    """Every row checked; (patients by E.164 phone, rows read, duplicates merged) or INVALID_ROWS.

    The same phone twice is one patient: the later row's non-empty cells win.
    """
    patients: dict[str, Patient] = {}
    problems: list[dict] = []
    rows = 0
    for line, cells in sheet.records:
        rows += 1
        row_problems = len(problems)

        name = cells["name"]
        if not name.strip():
            problems.append({"line": line, "column": "name", "reason": "a name is required"})
        elif len(name) > MAX_NAME_LENGTH:
            problems.append(
                {
                    "line": line,
                    "column": "name",
                    "reason": f"a name has at most {MAX_NAME_LENGTH} characters",
                }
            )
        try:
            phone = phones.to_e164(cells["phone"], region)
        except ValueError as exc:
            problems.append({"line": line, "column": "phone", "reason": str(exc)})
        email = cells.get("email", "").strip() or None
        if email is not None:
            try:
                email = validate_email(email, check_deliverability=False).normalized
            except EmailNotValidError as exc:
                problems.append(
                    {
                        "line": line,
                        "column": "email",
                        "reason": f"not a valid email address ({exc})",
                    }
                )
        dui = cells.get("dui", "").strip() or None
        if dui is not None:
            try:
                dui = normalise_dui(dui)
            except ValueError:
                problems.append(
                    {"line": line, "column": "dui", "reason": "not a valid DUI (as 12345678-9)"}
                )

        if len(problems) > row_problems:
            continue
        earlier = patients.get(phone)
        if earlier is None:
            patients[phone] = Patient(name, email, dui)
        else:
            earlier.name = name
            earlier.email = email or earlier.email
            earlier.dui = dui or earlier.dui
    if problems:
        bad_rows = len({p["line"] for p in problems})
        raise APIError(
            400,
            "INVALID_ROWS",
            f"{bad_rows} of {rows} rows cannot be imported ({len(problems)} problems); "
            "nothing was written. Fix them and upload the file again.",
            problems,
        )
    return patients, rows, rows - len(patients)


def write(conn, clinic_id: str, patients: dict[str, Patient]) -> tuple[int, int]:
    """Upsert the patients in the caller's transaction; (created, updated).

    A DUI's ciphertext is bound to its patient's id, so each DUI is encrypted for the id its row
    will have: the stored id for a known phone (read and locked first), a fresh one otherwise.
    """
    take_import_lock(conn, clinic_id)
    queries.create_import_rows(conn)
    with conn.cursor() as cursor, cursor.copy(queries.copy_import_rows.sql) as copy:
        for phone, p in patients.items():
            copy.write_row((p.name, phone, p.email, p.dui is not None))

    queries.create_import_duis(conn)
    if any(p.dui is not None for p in patients.values()):
        known = {
            row["phone"]: row["id"]
            for row in queries.lock_known_phones_with_dui(conn, clinic_id=clinic_id)
        }
        copy_duis(
            conn,
            clinic_id,
            (
                (phone, known.get(phone) or str(uuid.uuid4()), p.dui)
                for phone, p in patients.items()
                if p.dui is not None
            ),
        )
    result = queries.upsert_import_rows(conn, clinic_id=clinic_id)

    # Phones another service created while we encrypted: their DUIs, again, for the real ids.
    if result["dui_targets"]:
        queries.clear_import_duis(conn)
        copy_duis(
            conn,
            clinic_id,
            (
                (phone, patient_id, patients[phone].dui)
                for patient_id, phone in result["dui_targets"]
            ),
        )
        queries.apply_import_duis(conn, clinic_id=clinic_id)
    return result["created"], result["updated"]


def take_import_lock(conn, clinic_id: str) -> None:
    """Wait for this clinic's running import, if any, but not past IMPORT_LOCK_WAIT_SECONDS."""
    wait = current_app.config.get("IMPORT_LOCK_WAIT_SECONDS", DEFAULT_LOCK_WAIT_SECONDS)
    queries.set_lock_timeout(conn, timeout=f"{int(wait * 1000)}ms")
    try:
        queries.lock_clinic_imports(conn, clinic_id=clinic_id)
    except psycopg.errors.LockNotAvailable:
        raise APIError(
            503,
            "SERVICE_UNAVAILABLE",
            "Another import of this clinic is still running; try again shortly.",
            headers={"Retry-After": "10"},
        ) from None
    queries.set_lock_timeout(conn, timeout="0")


def copy_duis(conn, clinic_id: str, targets) -> None:
    """(phone, patient id, clear DUI) -> import_duis, encrypted on the way: only ciphertext lands."""
    dui_keys = keys()
    with conn.cursor() as cursor, cursor.copy(queries.copy_import_duis.sql) as copy:
        for phone, patient_id, dui in targets:
            ciphertext, key_id = dui_keys.encrypt(clinic_id, patient_id, dui)
            copy.write_row((phone, patient_id, ciphertext, key_id))
