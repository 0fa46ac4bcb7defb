"""Phone numbers as people type them -> E.164, with the clinic's country as the default region.

`7765-4321`, `+503 7765 4321`, `(503) 7765-4321`, `50377654321` and `77,654,321` (a number cell
with a thousands format) are all `+50377654321` for a clinic in El Salvador. A number a spreadsheet
stripped of its `+` (`12133734253`) is read as the international number it was when it is not a
number of the clinic's region but is one as `+12133734253`. The parsing and the numbering plans
are Google's libphonenumber (the `phonenumbers` port), not a regex of ours.

Reasons never repeat the cell: it is a person's phone number, or something worse pasted there.
"""

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberFormat, phonenumberutil

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
# How almost every number in a clinic's sheet is written: digits in groups, with spaces, dots or
# hyphens between them, maybe a leading +. See plain_number().
PLAIN_SHAPE = re.compile(r"\+?[0-9]+(?:[ .-][0-9]+)*")
NOT_A_DIGIT = re.compile(r"[^0-9]")


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str
    note: str | None = None  # an N_ template: something the person should know (extension dropped)
    # The E.164 a `+` cell's own digits spell, when libphonenumber read them as another number
    # (`+1 1201 200 0000` is +12012000000 to it: a trunk prefix after the country code dropped).
    as_written: str | None = None


def _digit_count(text: str) -> int:
    return len(DIGITS.findall(text))


def _holds_several(text: str) -> bool:
    """Two or more parts of phone length (7+ digits) between separators."""
    parts = [part for part in SEPARATORS.split(text) if _digit_count(part) >= 7]
    return len(parts) >= 2


def _valid(text: str, region: str | None):
    number = plain_number(text, region) if region else None
    if number is not None:
        return number if plain_valid(number, region) else None
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
    elif not PLAIN_SHAPE.fullmatch(text) and _holds_several(text):
        # Checked first: libphonenumber would read `7765-4321, 2222-3333` as a number and an
        # extension. (Digit groups alone never hold two: none of SEPARATORS can be among them.)
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
    written = written_e164(text)
    return Phone(
        e164,
        EXTENSION_DROPPED if number.extension else None,
        written if written is not None and written != e164 else None,
    )


def written_e164(text: str) -> str | None:
    """The E.164 a cell's digits spell when it is written in the international form (a leading
    +) and the patients.phone CHECK takes it; None otherwise."""
    if INTERNATIONAL_AS_WRITTEN.fullmatch(text):
        e164 = "+" + "".join(DIGITS.findall(text))
        if STORABLE.fullmatch(e164):
            return e164
    return None


def as_written(text: str) -> Phone:
    """A number libphonenumber does not know, taken as the E.164 its digits spell when it is
    written in the international form (a leading +) and the patients.phone CHECK takes it.

    Other services store such numbers (a new numbering range, a test number) and our export
    writes them out (`+503 12345678`): refusing them would make an export fail to import back.
    Only with the +: a local number that is not one (`1234-5678`) is a typo and stays refused.
    """
    e164 = written_e164(text)
    if e164 is None:
        raise ValueError(NOT_A_PHONE)
    return Phone(e164, KEPT_AS_WRITTEN)


def international(e164: str) -> str:
    """libphonenumber's INTERNATIONAL format (`+503 7765 4321`): what the export's SQL writes."""
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)


def plain_number(text: str, region: str) -> PhoneNumber | None:
    """What phonenumbers.parse(text, region) returns, for the inputs where that is certain without
    running it (None for every other input, which parse() then reads).

    An import checks tens of thousands of numbers, and parse() was most of that work. For a number
    written as digit groups (PLAIN_SHAPE), in a region whose numbers carry no national prefix to
    strip (El Salvador and most of Central America), parse() only takes the digits: the national
    number as written, or after a leading `+` and the region's own country code. That is done
    here, leaving to parse() whatever would make it do more: a leading 0 (an international prefix,
    or a significant zero), digits that begin with the region's country code without a `+`
    (parse() may strip it), another country's code, a length the region's numbers never have.
    The verdict stays the library's (is_valid_number() on the same PhoneNumber); tests/test_phones.py
    checks that the two readings are equal.
    """
    if not PLAIN_SHAPE.fullmatch(text):
        return None
    plan = plain_plan(region)
    if plan is None:
        return None
    country_code, lengths, international_prefix = plan
    digits = NOT_A_DIGIT.sub("", text)
    code = str(country_code)
    if text[0] == "+":
        if not digits.startswith(code):
            return None
        national = digits[len(code) :]
    else:
        if digits.startswith(code) or (international_prefix and international_prefix.match(digits)):
            return None
        national = digits
    if not national or national[0] == "0" or len(national) not in lengths:
        return None
    return PhoneNumber(country_code=country_code, national_number=int(national))


def plain_valid(number: PhoneNumber, region: str) -> bool:
    """phonenumbers.is_valid_number(number) for a number plain_number() read in `region`.

    is_valid_number() asks for the number's type, trying the region's eleven kinds of number one
    pattern after another (premium rate first) just to say "not UNKNOWN". Valid means the same
    thing in any order: the general pattern matches and at least one kind does; mobile and fixed
    line, what clinics' patients have, are asked first. Only for a country code that is one
    region's alone (otherwise is_valid_number() picks among the regions, and is asked).
    """
    kinds = region_kinds(number.country_code)
    if kinds is None:
        return phonenumbers.is_valid_number(number)
    general, specific = kinds
    national = str(number.national_number)
    return _matches(national, general) and any(_matches(national, kind) for kind in specific)


@functools.lru_cache(maxsize=256)
def region_kinds(country_code: int):
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) != 1:
        return None
    metadata = PhoneMetadata.metadata_for_region(regions[0])
    if metadata is None:
        return None
    kinds = ("mobile", "fixed_line", "toll_free", "premium_rate", "shared_cost", "voip")
    kinds += ("personal_number", "pager", "uan", "voicemail")
    return metadata.general_desc, tuple(getattr(metadata, kind) for kind in kinds)


# libphonenumber's own test of a national number against one kind's lengths and pattern.
_matches = phonenumberutil._is_number_matching_desc


@functools.lru_cache(maxsize=256)
def plain_plan(region: str) -> tuple[int, frozenset[int], re.Pattern | None] | None:
    """The region's country code, number lengths and international prefix, when its numbers have
    no national prefix (None otherwise: parse() reads them)."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.national_prefix or metadata.national_prefix_for_parsing:
        return None
    prefix = metadata.international_prefix
    return (
        metadata.country_code,
        frozenset(metadata.general_desc.possible_length or ()),
        re.compile(prefix) if prefix else None,
    )
