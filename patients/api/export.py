"""GET /api/patients/export: the clinic's patients as a CSV file that streams.

PostgreSQL writes the CSV (queries/export.sql, COPY ... TO STDOUT); this module passes it on in
chunks of about CHUNK_BYTES, so memory stays flat however many patients the clinic has. The
connection is held, in one transaction, for as long as the download lasts.
"""

import logging
from collections.abc import Iterator

import psycopg
from flask import Blueprint, Response, request, stream_with_context

from patients import db, search
from patients.api import params
from patients.api.auth import caller, record, require_plan, require_role
from patients.messages import N_
from patients.repository import queries

log = logging.getLogger(__name__)

bp = Blueprint("export", __name__, url_prefix="/api/patients")

# Excel on Windows reads a CSV without a byte order mark as the ANSI code page and mangles
# accents; with it, a double-click opens the file as UTF-8. Every other CSV reader skips it.
BOM = b"\xef\xbb\xbf"
DELIMITERS = {"comma": ",", "semicolon": ";"}
NO_SEARCH = {"term": None, "phone_digits": None}
# One write to the client per ~64 KB instead of one per row; the most memory a download holds.
CHUNK_BYTES = 64 * 1024
HEADERS = {
    "Content-Type": "text/csv; charset=utf-8",
    "Content-Disposition": 'attachment; filename="pacientes.csv"',
    # A buffering reverse proxy (nginx's default) would read the whole file from us at once and
    # the audit would say it all went out, whatever the client received: not this answer.
    "X-Accel-Buffering": "no",
}


@bp.get("/export")
@require_role("admin", "staff")
@require_plan("pro", N_("Exporting patients requires the Pro plan."))
def export_patients():
    term = params.text(request.args, "search")
    blocked = params.boolean(request.args, "blocked")
    delimiter = params.choice(request.args, "delimiter", DELIMITERS, default="comma")

    arguments = {
        "clinic_id": caller().clinic_id,
        "blocked": blocked,
        "delimiter": DELIMITERS[delimiter],
        **(search.parameters(term) if term is not None else NO_SEARCH),
    }
    # The audit row says that a search narrowed the file and what kind, never the term itself:
    # people type DUIs and phone numbers into the search box, and admins read the audit trail.
    filters = {"search": search.summary(term), "blocked": blocked, "delimiter": delimiter}
    if request.method == "HEAD":
        # No COPY, no audit row: no data leaves. An iterator, so no misleading Content-Length: 0.
        return Response(iter(()), headers=HEADERS)
    chunks = csv_chunks(arguments, filters)
    # Run up to the header line here: a database that is away is still a JSON 503, not a
    # 200 that breaks off.
    first = next(chunks)
    return Response(stream_with_context(starting_with(first, chunks)), headers=HEADERS)


def csv_chunks(arguments: dict, filters: dict) -> Iterator[bytes]:
    """The file: BOM and header line first, then the rows in chunks; the audit row last.

    The audit row says how many rows went out and whether the file was complete. A client that
    goes away mid-download ends the COPY (psycopg cancels it) and is recorded too, with
    `complete: false` and the rows handed to the web server before it left: a partial file is
    still patient data that left the clinic.
    """
    sent, started = 0, False
    with db.connection() as conn:
        queries.export_session(conn)
        try:
            # A savepoint: a cancelled COPY is undone alone, and the audit row can still commit.
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy(queries.export_patients(conn), arguments) as copy:
                    header = BOM + bytes(copy.read())
                    started = True
                    yield header
                    for chunk, rows in batches(copy):
                        yield chunk
                        sent += rows
                sent = cursor.rowcount  # the COPY's own count, from its command tag
        except GeneratorExit:
            # The client went away: recorded, then ended quietly.
            log.info("export interrupted after %d rows", sent)
            record_export(conn, sent, False, filters)
            return
        except psycopg.Error:
            # The download breaks off where it is (the client sees a truncated transfer, never a
            # short file that looks whole); what already went out is still recorded.
            if started and not conn.broken:
                record_export(conn, sent, False, filters)
                conn.commit()
            raise
        record_export(conn, sent, True, filters)


def record_export(conn, rows: int, complete: bool, filters: dict) -> None:
    record(conn, "patients.export", details={"rows": rows, "complete": complete, **filters})


def batches(copy) -> Iterator[tuple[bytes, int]]:
    """(chunk, rows in it): PostgreSQL sends each CSV row as one CopyData message."""
    buffer, rows = bytearray(), 0
    while data := copy.read():
        buffer += data
        rows += 1
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer), rows
            buffer.clear()
            rows = 0
    if buffer:
        yield bytes(buffer), rows


def starting_with(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """`first`, then `rest`; closing this closes `rest`, so a disconnect reaches csv_chunks."""
    try:
        yield first
        yield from rest
    finally:
        rest.close()
