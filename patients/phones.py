"""Phone numbers as people type them -> E.164, with the clinic's country as the default region.

`7765-4321`, `+503 7765 4321`, `(503) 7765-4321`, `50377654321` and `77,654,321` (a number cell
with a thousands format) are all `+50377654321` for a clinic in El Salvador. A number a spreadsheet
stripped of its `+` (`12133734253`) is read as the international number it was when it is not a
number of the clinic's region but is one as `+12133734253`. The parsing and the numbering plans
are Google's libphonenumber (the `phonenumbers` port), not a regex of ours.

Reasons never repeat the cell: it is a person's phone number, or something worse pasted there.
"""

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat

from patients.messages import N_

NOT_A_PHONE = N_("not a valid phone number")
REQUIRED = N_("a phone number is required")
SCIENTIFIC_REASON = N_(
    "not a valid phone number: the spreadsheet turned it into a number in scientific notation "
    "and its digits are lost (format the column as text and type it again)"
)
ONE_PER_CELL = N_("one phone number per cell: this cell holds more than one")
EXTENSION_DROPPED = N_("extension dropped: only the number itself is kept")
KEPT_AS_WRITTEN = N_("not a number known for its country code: kept as written, with its +")

# The patients.phone CHECK constraint, word for word.
STORABLE = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Excel and LibreOffice show a long number as 5.03777E+10 and save it that way, digits lost.
SCIENTIFIC = re.compile(r"^[0-9](?:[.,][0-9]+)?E\+?[0-9]+$", re.IGNORECASE)
# A number cell with a thousands format: `78,553,400`, `78.553.400`, `78 553 400`.
THOUSANDS = re.compile(r"[0-9]{1,3}(?:([,. \u00a0])[0-9]{3})(?:\1[0-9]{3})*")
# What people put between two numbers in one cell: `7765-4321 / 2222-3333`, `… y …`, `…; …`.
SEPARATORS = re.compile(r"\s*(?:[/;|,\n]|\s(?:y|o|ó|or|and)\s)\s*", re.IGNORECASE)
DIGITS = re.compile(r"[0-9]")
# The international form, written out: a + then digits, spaces, dashes, dots and parentheses
# only (`+503 1234-5678`, `(+503) 1234 5678`); no letters, so no extension.
INTERNATIONAL_AS_WRITTEN = re.compile(r"\(?\+[0-9 \u00a0().\-]+")


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str
    note: str | None = None  # an N_ template: something the person should know (extension dropped)


def _digit_count(text: str) -> int:
    return len(DIGITS.findall(text))


def _holds_several(text: str) -> bool:
    """Two or more parts of phone length (7+ digits) between separators."""
    parts = [part for part in SEPARATORS.split(text) if _digit_count(part) >= 7]
    return len(parts) >= 2


def _valid(text: str, region: str | None):
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def to_e164(raw: str, region: str) -> Phone:
    """The number in E.164 (`+50377654321`); ValueError(an N_ reason) when it is not a phone."""
    text = raw.strip()
    if not text:
        raise ValueError(REQUIRED)
    if SCIENTIFIC.fullmatch(text):
        raise ValueError(SCIENTIFIC_REASON)
    if THOUSANDS.fullmatch(text):
        text = re.sub(r"[^0-9]", "", text)
    elif _holds_several(text):
        # Checked first: libphonenumber would read `7765-4321, 2222-3333` as a number and an
        # extension.
        raise ValueError(ONE_PER_CELL)
    number = _valid(text, region)
    if number is None and text.isascii() and text.isdigit():
        # Digits only and not a number here: a spreadsheet may have taken its `+` away.
        number = _valid("+" + text, None)
    if number is None:
        return as_written(text)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if not STORABLE.fullmatch(e164):
        raise ValueError(NOT_A_PHONE)  # never a CHECK violation (a 500) at the database
    return Phone(e164, EXTENSION_DROPPED if number.extension else None)


def as_written(text: str) -> Phone:
    """A number libphonenumber does not know, taken as the E.164 its digits spell when it is
    written in the international form (a leading +) and the patients.phone CHECK takes it.

    Other services store such numbers (a new numbering range, a test number) and our export
    writes them out (`+503 12345678`): refusing them would make an export fail to import back.
    Only with the +: a local number that is not one (`1234-5678`) is a typo and stays refused.
    """
    if INTERNATIONAL_AS_WRITTEN.fullmatch(text):
        e164 = "+" + "".join(DIGITS.findall(text))
        if STORABLE.fullmatch(e164):
            return Phone(e164, KEPT_AS_WRITTEN)
    raise ValueError(NOT_A_PHONE)


def international(e164: str) -> str:
    """libphonenumber's INTERNATIONAL format (`+503 7765 4321`): what the export's SQL writes."""
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)
