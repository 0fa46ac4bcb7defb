"""Importing a spreadsheet of patients, all or nothing: every row checked, then one upsert.

`validate()` turns a sheet's records into patients keyed by E.164 phone (duplicates merged, the
later row's non-empty cells winning) or refuses the whole file with every problem by line.
`write()` runs in the caller's transaction: the rows COPY'd into a temporary table, the DUIs
encrypted for the ids their rows will have and COPY'd as ciphertext, one upsert
(queries/imports.sql). Nothing here knows of HTTP.
"""

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from email_validator import EmailNotValidError, validate_email

from patients import phones
from patients.dui import DuiKeys, normalise_dui
from patients.messages import N_, Rejected
from patients.repository import queries
from patients.spreadsheet import Sheet

MAX_NAME_LENGTH = 200
# What str.strip() takes off a cell, for the upsert to compare stored values the same way.
WHITESPACE = "".join(c for c in map(chr, range(0x110000)) if c.isspace())


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

# Its next cost (half of what is left) is split_email(), which walks the address a character at a
# time, normalising the text ahead of each one, for quotes, display names and Unicode. An ASCII
# address with an @ and neither `"` nor `<` has none of them, and the walk's answer is certain: no
# display name, the local part up to the first @ (not quoted), the domain after it. Any other
# address goes to the library's own split. tests/test_email_split.py checks that they agree.
_split_email = getattr(_email_module, "split_email", None)


def quick_split_email(email: str):
    if email.isascii() and "@" in email and '"' not in email and "<" not in email:
        local, _, domain = email.partition("@")
        return None, local, local, False, domain
    return _split_email(email)


if _split_email is not None and _split_email is not quick_split_email:
    _email_module.split_email = quick_split_email


@dataclass(slots=True)
class Patient:
    name: str
    email: str | None
    dui: str | None


@dataclass(slots=True)
class Checked:
    """A sheet's rows, checked: what to write, and what the person should know."""

    patients: dict[str, Patient]  # by E.164 phone, duplicates merged
    rows: int
    merged: int
    warnings: list[
        dict
    ]  # {line, column, reason}: accepted, but changed on the way (at most MAX_LISTED)
    warning_count: int


# The answer stays small whatever the file holds: at most this many problems (or warnings) listed.
MAX_LISTED = 1000


# A value the import refuses may be what another service stored for that phone (a name of 250
# characters, an address email-validator refuses): our export writes it out as it is, and the
# contract wants the export to import back. Such a refusal waits for the stored values, and is
# dropped when the cell is exactly what is stored (after the trimming a cell gets): nothing new,
# so the stored value stays as it is, and it is never written from the file.
RESOLVABLE = {"name", "email", "phone"}
# Pending refusals are looked up this many at a time, so a file of thousands of them holds at most
# this many (a few queries, never one object per row of a 5 MB file).
PENDING_BATCH = 1000

# (phones) -> {phone: (full_name, email)} of the clinic's patients among them.
StoredValues = Callable[[list[str]], dict[str, tuple[str, str | None]]]


@dataclass(slots=True)
class Pending:
    """A refusal that stands unless the cell is what is already stored for the phone."""

    line: int
    column: str
    reason: str
    params: dict | None
    phone: str
    value: str
    row_refused: bool  # the row has a problem that stands whatever is stored


def same_as_stored(pending: Pending, stored: tuple[str, str | None] | None) -> bool:
    """The cell is the stored value, compared as the upsert compares (queries/imports.sql):
    names without surrounding spaces, emails also without regard to case."""
    if stored is None:
        return False
    name, email = stored
    if pending.column == "phone":  # a number libphonenumber does not know, stored already
        return True
    if pending.column == "name":
        return pending.value.strip() == name.strip()
    return email is not None and pending.value.strip().lower() == email.strip().lower()


def validate(sheet: Sheet, region: str, stored: StoredValues | None = None) -> Checked:
    """Every row checked, or INVALID_ROWS listing every problem (the first MAX_LISTED) by line.

    The same phone twice is one patient: the later row's non-empty cells win. Reasons never
    repeat a cell's content. Past MAX_LISTED problems are counted, not kept, and once one row is
    refused nothing is kept for writing: a 5 MB file of garbage costs a few counters, not millions
    of objects (it used to cost a worker 1.1 GB and answer 188 MB).

    A name or email refused in a row whose phone is good waits (`Pending`) for a look-up of the
    stored values (`stored`, once per PENDING_BATCH of them; without it such a refusal stands).
    """
    patients: dict[str, Patient] = {}
    problems = Problems()
    pending: list[Pending] = []
    warnings: list[dict] = []
    warning_count = 0
    rows = 0
    for line, cells in sheet.records:
        if len(pending) >= PENDING_BATCH:
            resolve(pending, stored, patients, problems)
            pending.clear()
        rows += 1
        before = problems.total
        refused: list[tuple[str, str, dict | None, str]] = []  # (column, reason, params, cell)

        name = cells["name"]
        if not name.strip():
            refused.append(("name", N_("a name is required"), None, name))
        elif len(name) > MAX_NAME_LENGTH:
            refused.append(
                (
                    "name",
                    N_("a name has at most %(maximum)d characters"),
                    {"maximum": MAX_NAME_LENGTH},
                    name,
                )
            )
        phone = None
        try:
            phone = phones.to_e164(cells["phone"], region)
        except ValueError as exc:
            refused.append(("phone", exc.args[0], None, ""))
        # The clinic has the number exactly as the cell spells it (another service stored it;
        # our export wrote it out): that patient, not libphonenumber's reading of it. Only such
        # rewritten `+` cells cost this look-up, one each.
        if (
            phone is not None
            and phone.as_written is not None
            and stored is not None
            and stored([phone.as_written])
        ):
            phone = phones.Phone(phone.as_written, phone.note)
        if phone is not None and phone.note == phones.KEPT_AS_WRITTEN:
            # Taken as written only when it is a number this clinic already has (another
            # service stored it; our export wrote it out): a new one is a typo until shown not.
            refused.append(("phone", phones.NOT_A_PHONE, None, phone.e164))
        email = cells.get("email", "").strip() or None
        if email is not None:
            try:
                email = validate_email(email, check_deliverability=False).normalized
            except EmailNotValidError:
                # email-validator's own explanation may quote the address: not repeated.
                refused.append(("email", N_("not a valid email address"), None, email))
        dui = cells.get("dui", "").strip() or None
        if dui is not None:
            try:
                dui = normalise_dui(dui)
            except ValueError:
                refused.append(("dui", N_("not a valid DUI (as 12345678-9)"), None, ""))

        waits = stored is not None and phone is not None
        standing = [r for r in refused if not (waits and r[0] in RESOLVABLE)]
        for column, reason, params, cell in refused:
            if waits and column in RESOLVABLE:
                pending.append(
                    Pending(line, column, reason, params, phone.e164, cell, bool(standing))
                )
            else:
                problems.add(line, column, reason, params)
        if problems.total > before:
            problems.bad_rows += 1
            patients.clear()  # nothing will be written: the rows read so far need no keeping
            continue
        if problems.total:
            continue
        if phone.note is not None:
            warning_count += 1
            if len(warnings) < MAX_LISTED:
                warnings.append({"line": line, "column": "phone", "reason": phone.note})
        # A pending cell is kept as it is for now: resolve() puts the stored value in its place.
        earlier = patients.get(phone.e164)
        if earlier is None:
            patients[phone.e164] = Patient(name, email, dui)
        else:
            earlier.name = name if name.strip() else earlier.name
            earlier.email = email or earlier.email
            earlier.dui = dui or earlier.dui
    if pending:
        resolve(pending, stored, patients, problems)
    if problems.total:
        raise problems.refusal(rows)
    return Checked(patients, rows, rows - len(patients), warnings, warning_count)


def resolve(
    pending: list[Pending], stored: StoredValues, patients: dict[str, Patient], problems: "Problems"
) -> None:
    """The pending refusals against the stored values. One that repeats its stored value is
    dropped, and the patient gets the stored value itself (so an upsert that finds the patient
    gone meanwhile inserts what was stored, never an empty name); the others are problems,
    listed in line order among the rest (all of them from lines read so far, so the first
    MAX_LISTED of both lists are the first MAX_LISTED of all)."""
    values = stored(sorted({p.phone for p in pending}))
    late = Problems()
    bad_lines: set[int] = set()
    for p in pending:
        value = values.get(p.phone)
        if not same_as_stored(p, value):
            late.add(p.line, p.column, p.reason, p.params)
            if not p.row_refused and p.line not in bad_lines:
                bad_lines.add(p.line)
                late.bad_rows += 1
            continue
        patient = patients.get(p.phone)
        if patient is None:
            continue  # the file is refused for other rows: nothing is written
        if p.column == "name" and patient.name == p.value:
            patient.name = value[0]
        elif p.column == "email" and patient.email == p.value:
            patient.email = value[1]
    if late.total:
        problems.merge(late)
        patients.clear()  # the file is refused: nothing will be written


class Problems:
    """A file's problems: the first MAX_LISTED kept as the answer's details, the rest counted."""

    __slots__ = ("bad_rows", "listed", "total")

    def __init__(self):
        self.listed: list[dict] = []
        self.total = 0
        self.bad_rows = 0

    def add(self, line: int, column: str, reason: str, params: dict | None = None) -> None:
        self.total += 1
        if len(self.listed) < MAX_LISTED:
            problem = {"line": line, "column": column, "reason": reason}
            if params:
                problem["_params"] = params
            self.listed.append(problem)

    def merge(self, other: "Problems") -> None:
        """Another list of problems (lines of its own rows) merged in, in line order: the first
        MAX_LISTED of both lists together are the first MAX_LISTED of all the problems."""
        order = {column: i for i, column in enumerate(("name", "phone", "email", "dui"))}
        merged = sorted(
            self.listed + other.listed, key=lambda p: (p["line"], order.get(p["column"], 9))
        )
        self.listed = merged[:MAX_LISTED]
        self.total += other.total
        self.bad_rows += other.bad_rows

    def refusal(self, rows: int) -> Rejected:
        counts = {"bad_rows": self.bad_rows, "rows": rows, "problems": self.total}
        if self.total > len(self.listed):
            counts["listed"] = len(self.listed)
            message = N_(
                "%(bad_rows)d of %(rows)d rows cannot be imported (%(problems)d problems; the "
                "first %(listed)d are listed); nothing was written. Fix them and upload the file "
                "again."
            )
        else:
            message = N_(
                "%(bad_rows)d of %(rows)d rows cannot be imported (%(problems)d problems); "
                "nothing was written. Fix them and upload the file again."
            )
        return Rejected("INVALID_ROWS", message, self.listed, **counts)


def write(
    conn, clinic_id: str, patients: dict[str, Patient], keys: DuiKeys, lock_wait: float
) -> tuple[int, int, int]:
    """Upsert the patients in the caller's transaction; (created, updated, unchanged).

    A DUI's ciphertext is bound to its patient's id, so each DUI is encrypted for the id its row
    will have: the stored id for a known phone (read and locked first), a fresh one otherwise.
    A known patient's DUI that equals the stored one is not sent again (a fresh ciphertext always
    differs), so a row bringing nothing new is left untouched and counted as unchanged.
    """
    take_import_lock(conn, clinic_id, lock_wait)
    queries.create_import_rows(conn)
    with conn.cursor() as cursor, cursor.copy(queries.copy_import_rows.sql) as copy:
        for phone, p in patients.items():
            copy.write_row((p.name, phone, p.email, p.dui is not None))

    known: dict[str, str] = {}
    if any(p.dui is not None for p in patients.values()):
        for row in queries.lock_known_phones_with_dui(conn, clinic_id=clinic_id):
            known[row["phone"]] = row["id"]
            stored = None
            if row["dui_ciphertext"] is not None:
                stored = keys.decrypt(
                    clinic_id, row["id"], row["dui_ciphertext"], row["dui_key_id"]
                )
            if stored is not None and stored == patients[row["phone"]].dui:
                patients[row["phone"]].dui = None  # nothing new: the stored ciphertext stays

    queries.create_import_duis(conn)
    copy_duis(
        conn,
        keys,
        clinic_id,
        (
            (phone, known.get(phone) or new_patient_id(), p.dui)
            for phone, p in patients.items()
            if p.dui is not None
        ),
    )
    result = queries.upsert_import_rows(conn, clinic_id=clinic_id, space=WHITESPACE)

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
    unchanged = len(patients) - result["created"] - result["updated"]
    return result["created"], result["updated"], unchanged


def take_import_lock(conn, clinic_id: str, wait: float) -> None:
    """Wait for this clinic's running import, if any, but not past `wait` seconds."""
    # At least 1 ms: PostgreSQL reads a lock_timeout of 0 as "no limit".
    queries.set_lock_timeout(conn, timeout=f"{max(1, round(wait * 1000))}ms")
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


def new_patient_id() -> str:
    """str(uuid.uuid4()) without building a UUID object: 16 random bytes with the version (4) and
    variant bits set, spelled the canonical way. Tens of thousands per import."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
