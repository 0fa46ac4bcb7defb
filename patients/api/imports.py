"""POST /api/patients/import (a spreadsheet of patients, all or nothing) and its template.

The request path: the upload (at most 5 MB) -> spreadsheet.read (decoding, delimiter, header) ->
importing.validate (every row checked, duplicates merged) -> one transaction: importing.write (the
upsert) and the audit row -> the counts.
"""

from flask import Blueprint, Response, current_app, request
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    State,
)

from patients import db, importing, spreadsheet
from patients.api import params
from patients.api.auth import (
    caller,
    current_clinic,
    dui_keys,
    record,
    require_plan,
    require_role,
)
from patients.api.errors import localise, too_large, unavailable
from patients.api.i18n import ngettext
from patients.messages import N_
from patients.repository import queries

bp = Blueprint("imports", __name__, url_prefix="/api/patients")

MAX_FILE_NAME_LENGTH = 200
TEMPLATE = "Nombre,Teléfono,Email,DUI\r\n"


@bp.post("/import")
@require_role("admin", "staff")
@require_plan("pro", N_("Importing patients requires the Pro plan."))
def import_patients():
    dry_run = bool(params.boolean(request.args, "dry_run"))
    file_name, data = read_upload()
    sheet = spreadsheet.read(data)
    del data
    checked = importing.validate(sheet, current_clinic()["country_code"], stored_values)

    with db.connection() as conn:
        if dry_run:
            # The very same statements, then rolled back: the counts are exactly the real ones.
            with conn.transaction(force_rollback=True):
                created, updated, unchanged = write(conn, checked.patients)
        else:
            created, updated, unchanged = write(conn, checked.patients)
            record(
                conn,
                "patients.import",
                details={
                    "file_name": file_name,
                    "rows": checked.rows,
                    "imported": created + updated + unchanged,
                    "created": created,
                    "updated": updated,
                    "unchanged": unchanged,
                    "duplicates_merged": checked.merged,
                },
            )
    imported = created + updated + unchanged
    if dry_run:
        message = ngettext(
            "Dry run: %(num)d patient would be imported; nothing was written.",
            "Dry run: %(num)d patients would be imported; nothing was written.",
            imported,
        )
    else:
        message = ngettext(
            "Successfully imported %(num)d patient",
            "Successfully imported %(num)d patients",
            imported,
        )
    return {
        "message": message,
        "imported": imported,
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "columns": sheet.report,
        "warnings": localise(checked.warnings),
        "warning_count": checked.warning_count,
        "duplicates_merged": checked.merged,
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


# The import needs one part; a form may carry a few more (werkzeug's own default bound).
MAX_PARTS = 1000
READ_CHUNK = 64 * 1024
NO_FILE = N_(
    "No file: send the spreadsheet as the multipart/form-data field `file` "
    "(curl -F file=@pacientes.csv)."
)
NO_BOUNDARY = N_(
    "The upload is not readable multipart/form-data (its Content-Type has no boundary): "
    "send the spreadsheet as the field `file` (curl -F file=@pacientes.csv)."
)
NOT_MULTIPART = N_(
    "The upload is not readable multipart/form-data: send the spreadsheet as the field `file` "
    "(curl -F file=@pacientes.csv)."
)
BROKE_OFF = N_(
    "The upload breaks off before its end: send the whole file again (curl -F file=@pacientes.csv)."
)
TOO_MANY_PARTS = N_(
    "The upload has more than %(parts)d parts: send the spreadsheet alone, as the "
    "multipart/form-data field `file` (curl -F file=@pacientes.csv)."
)
# Where the decoder stands when the body ends inside a part: the upload was cut short.
CUT_SHORT = (State.PART, State.DATA, State.DATA_START)
TWO_FILES = N_("Send one file per import: the upload has more than one `file` field.")


def read_upload() -> tuple[str, bytes]:
    """The uploaded file's name and bytes, read from the multipart body as it streams in.

    Only the `file` part is kept, its bytes exactly as sent, also when it came as a plain field
    without a filename (`curl -F 'file=<pacientes.csv'`, a form field set to the text): it is the
    file all the same, and a Windows-1252 file keeps its accents because nothing decodes it here.
    Other parts are counted and skipped, never held. Each way an upload can be wrong says so:
    a body over the limit is 413 (werkzeug holds the stream to MAX_CONTENT_LENGTH, chunked or
    not), a file over MAX_UPLOAD_BYTES inside it too; too many parts, two files, no boundary, a
    body that breaks off or is not multipart at all are each a 400 INVALID_CSV of their own.
    """
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data":
        raise spreadsheet.invalid_csv(NO_FILE)
    boundary = options.get("boundary", "")
    if not boundary or not boundary.isascii():
        raise spreadsheet.invalid_csv(NO_BOUNDARY)
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    decoder = MultipartDecoder(boundary.encode("ascii"))
    stream = request.stream
    parts, found, keeping = 0, False, False
    name, data = "", bytearray()
    while True:
        chunk = stream.read(READ_CHUNK)
        decoder.receive_data(chunk or None)
        try:
            event = decoder.next_event()
            while not isinstance(event, NeedData | Epilogue):
                if isinstance(event, Field | File):
                    parts += 1
                    if parts > MAX_PARTS:
                        raise spreadsheet.invalid_csv(TOO_MANY_PARTS, parts=MAX_PARTS)
                    keeping = event.name == "file"
                    if keeping:
                        if found:
                            raise spreadsheet.invalid_csv(TWO_FILES)
                        found = True
                        name = getattr(event, "filename", "") or ""
                elif isinstance(event, Data) and keeping:
                    data += event.data
                    if len(data) > limit:
                        raise too_large(f"{limit // (1024 * 1024)} MB")
                event = decoder.next_event()
        except ValueError:  # werkzeug's word for a body it cannot take apart
            if decoder.complete and decoder.state in CUT_SHORT:
                raise spreadsheet.invalid_csv(BROKE_OFF) from None
            raise spreadsheet.invalid_csv(NOT_MULTIPART) from None
        if isinstance(event, Epilogue) or not chunk:
            break
    if not found:
        raise spreadsheet.invalid_csv(NO_FILE)
    name = "".join(c for c in name if c.isprintable())[:MAX_FILE_NAME_LENGTH]
    return name, bytes(data)


def stored_values(phones: list[str]) -> dict[str, tuple[str, str | None]]:
    """The clinic's stored name and email for these phones (importing.validate asks once, for
    the rows whose name or email it would refuse unless that is what is stored)."""
    with db.connection() as conn:
        rows = queries.stored_values_for_import(conn, clinic_id=caller().clinic_id, phones=phones)
        return {row["phone"]: (row["full_name"], row["email"]) for row in rows}


def write(conn, patients: dict) -> tuple[int, int, int]:
    try:
        return importing.write(
            conn,
            caller().clinic_id,
            patients,
            dui_keys(),
            current_app.config["IMPORT_LOCK_WAIT_SECONDS"],
        )
    except importing.ImportBusy:
        raise unavailable(
            N_("Another import of this clinic is still running; try again shortly."),
            retry_after=10,
        ) from None
