"""Importing a spreadsheet of patients, all or nothing: every row checked, then one upsert.

`validate()` turns a sheet's records into patients keyed by E.164 phone (duplicates merged, the
later row's non-empty cells winning) or refuses the whole file with every problem by line.
`write()` runs in the caller's transaction: the rows COPY'd into a temporary table, the DUIs
encrypted for the ids their rows will have and COPY'd as ciphertext, one upsert
(queries/imports.sql). Nothing here knows of HTTP.
"""

import functools
import importlib
import uuid
from dataclasses import dataclass

import psycopg
from email_validator import EmailNotValidError, validate_email

from patients import phones
from patients.dui import DuiKeys, normalise_dui
from patients.messages import N_, Rejected
from patients.repository import queries
from patients.spreadsheet import Sheet

MAX_NAME_LENGTH = 200


class ImportBusy(Exception):
    """Another import of the same clinic held its lock for longer than we may wait."""


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


def validate(sheet: Sheet, region: str) -> tuple[dict[str, Patient], int, int]:
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
            problems.append({"line": line, "column": "name", "reason": N_("a name is required")})
        elif len(name) > MAX_NAME_LENGTH:
            problems.append(
                {
                    "line": line,
                    "column": "name",
                    "reason": N_("a name has at most %(maximum)d characters"),
                    "_params": {"maximum": MAX_NAME_LENGTH},
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
                        "reason": N_("not a valid email address (%(error)s)"),
                        "_params": {"error": str(exc)},
                    }
                )
        dui = cells.get("dui", "").strip() or None
        if dui is not None:
            try:
                dui = normalise_dui(dui)
            except ValueError:
                problems.append(
                    {"line": line, "column": "dui", "reason": N_("not a valid DUI (as 12345678-9)")}
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
        raise Rejected(
            "INVALID_ROWS",
            N_(
                "%(bad_rows)d of %(rows)d rows cannot be imported (%(problems)d problems); "
                "nothing was written. Fix them and upload the file again."
            ),
            problems,
            bad_rows=bad_rows,
            rows=rows,
            problems=len(problems),
        )
    return patients, rows, rows - len(patients)


def write(
    conn, clinic_id: str, patients: dict[str, Patient], keys: DuiKeys, lock_wait: float
) -> tuple[int, int]:
    """Upsert the patients in the caller's transaction; (created, updated).

    A DUI's ciphertext is bound to its patient's id, so each DUI is encrypted for the id its row
    will have: the stored id for a known phone (read and locked first), a fresh one otherwise.
    """
    take_import_lock(conn, clinic_id, lock_wait)
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
            keys,
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
            keys,
            clinic_id,
            (
                (phone, patient_id, patients[phone].dui)
                for patient_id, phone in result["dui_targets"]
            ),
        )
        queries.apply_import_duis(conn, clinic_id=clinic_id)
    return result["created"], result["updated"]


def take_import_lock(conn, clinic_id: str, wait: float) -> None:
    """Wait for this clinic's running import, if any, but not past `wait` seconds."""
    queries.set_lock_timeout(conn, timeout=f"{int(wait * 1000)}ms")
    try:
        queries.lock_clinic_imports(conn, clinic_id=clinic_id)
    except psycopg.errors.LockNotAvailable:
        raise ImportBusy from None
    queries.set_lock_timeout(conn, timeout="0")


def copy_duis(conn, dui_keys: DuiKeys, clinic_id: str, targets) -> None:
    """(phone, patient id, clear DUI) -> import_duis, encrypted on the way: only ciphertext lands."""
    with conn.cursor() as cursor, cursor.copy(queries.copy_import_duis.sql) as copy:
        for phone, patient_id, dui in targets:
            ciphertext, key_id = dui_keys.encrypt(clinic_id, patient_id, dui)
            copy.write_row((phone, patient_id, ciphertext, key_id))
