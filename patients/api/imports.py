"""POST /api/patients/import (a spreadsheet of patients, all or nothing) and its template.

The request path: the upload (at most 5 MB) -> spreadsheet.read (decoding, delimiter, header) ->
importing.validate (every row checked, duplicates merged) -> one transaction: importing.write (the
upsert) and the audit row -> the counts.
"""

import time

from flask import Blueprint, Response, current_app, request

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

bp = Blueprint("imports", __name__, url_prefix="/api/patients")

MAX_FILE_NAME_LENGTH = 200
TEMPLATE = "Nombre,Teléfono,Email,DUI\r\n"
# A body we refuse is still read off the socket (and thrown away) before we answer, so the client
# receives the 413 instead of a connection reset; past these bounds we stop and close instead.
DRAIN_CHUNK = 64 * 1024
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_MAX_SECONDS = 15.0


@bp.post("/import")
@require_role("admin", "staff")
@require_plan("pro", N_("Importing patients requires the Pro plan."))
def import_patients():
    dry_run = bool(params.boolean(request.args, "dry_run"))
    file_name, data = read_upload()
    sheet = spreadsheet.read(data)
    del data
    checked = importing.validate(sheet, current_clinic()["country_code"])

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
        raise spreadsheet.invalid_csv(
            N_(
                "No file: send the spreadsheet as the multipart/form-data field `file` "
                "(curl -F file=@pacientes.csv)."
            )
        )
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise too_large(f"{limit // (1024 * 1024)} MB")
    name = "".join(c for c in (upload.filename or "") if c.isprintable())[:MAX_FILE_NAME_LENGTH]
    return name, data


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
