"""Phone numbers as people type them -> E.164, with the clinic's country as the default region.

`7765-4321`, `+503 7765 4321`, `(503) 7765-4321` and `50377654321` are all `+50377654321` for a
clinic in El Salvador. The parsing and the numbering plans are Google's libphonenumber (the
`phonenumbers` port), not a regex of ours.
"""

import re

import phonenumbers
from phonenumbers import PhoneNumberFormat

NOT_A_PHONE = "not a valid phone number"
# The patients.phone CHECK constraint, word for word.
STORABLE = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Excel shows a long number as 5.03777E+10 and saves it that way, digits lost.
SCIENTIFIC = re.compile(r"^\d(?:[.,]\d+)?E\+?\d+$", re.IGNORECASE)


def to_e164(raw: str, region: str) -> str:
    """The number in E.164 (`+50377654321`); ValueError with the reason a person can act on."""
    text = raw.strip()
    if not text:
        raise ValueError("a phone number is required")
    if SCIENTIFIC.match(text):
        raise ValueError(
            f"{NOT_A_PHONE} (the spreadsheet turned it into {text}: format the column as text)"
        )
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError(NOT_A_PHONE) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(NOT_A_PHONE)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if not STORABLE.fullmatch(e164):
        raise ValueError(NOT_A_PHONE)  # never a CHECK violation (a 500) at the database
    return e164
