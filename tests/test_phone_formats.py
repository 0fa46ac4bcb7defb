"""phone_international() (schema.sql, generated from libphonenumber's metadata) against the real
libphonenumber: the export's `Teléfono` is what phonenumbers.format_number(INTERNATIONAL) gives,
and every exported phone imports back to the same E.164."""

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat

from patients import phones
from patients.ops import phone_formats
from patients.ops.phone_formats import SCHEMA, function_sql, replace_block

COVERED = set(phone_formats.calling_codes())


def example_numbers():
    """(region, E.164) of libphonenumber's example number of every type, in every region, that
    the table can store (its CHECK wants 7 to 15 digits)."""
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(12):  # every PhoneNumberType (FIXED_LINE ... VOICEMAIL, UNKNOWN)
            number = phonenumbers.example_number_for_type(region, kind)
            e164 = number and phonenumbers.format_number(number, PhoneNumberFormat.E164)
            if e164 and phones.STORABLE.fullmatch(e164):
                found.append((region, e164))
    return sorted(set(found))


EXAMPLES = example_numbers()


def formatted(sql, e164s: list[str]) -> dict[str, str]:
    rows = sql.execute(
        "SELECT e164, phone_international(e164) AS shown FROM unnest(%s::text[]) AS e164",
        (e164s,),
    ).fetchall()
    return {row["e164"]: row["shown"] for row in rows}


def test_schema_holds_the_function_generated_from_the_pinned_metadata():
    schema = SCHEMA.read_text()
    assert replace_block(schema, function_sql()) == schema, (
        "phone_international() in schema.sql is stale: run "
        "`.venv/bin/python -m patients.ops.phone_formats`"
    )


def test_sql_formats_exactly_as_libphonenumber_for_the_covered_regions(sql):
    covered = [e164 for _, e164 in EXAMPLES if phonenumbers.parse(e164).country_code in COVERED]
    assert len(covered) > 200  # every type of number of 24 regions, not a handful
    shown = formatted(sql, covered)
    expected = {e164: phones.international(e164) for e164 in covered}
    assert shown == expected


@pytest.mark.parametrize(
    ("e164", "shown"),
    [
        ("+50377654321", "+503 7765 4321"),
        ("+50322345678", "+503 2234 5678"),
        ("+12133734253", "+1 213-373-4253"),
        ("+50251234567", "+502 5123 4567"),
        ("+50491234567", "+504 9123-4567"),
        ("+522221234567", "+52 222 123 4567"),
        ("+34612345678", "+34 612 34 56 78"),
        # A calling code outside REGIONS: the code, a space, the national number.
        ("+4930123456", "+49 30123456"),
        ("+886912345678", "+886 912345678"),
    ],
)
def test_known_numbers(sql, e164, shown):
    assert formatted(sql, [e164]) == {e164: shown}


def test_every_exported_phone_imports_back_to_the_same_number(sql):
    """All regions, covered or not: what the export writes, the import reads as the same E.164
    (with El Salvador as the clinic's region, where most of these are foreign numbers)."""
    e164s = [e164 for _, e164 in EXAMPLES]
    shown = formatted(sql, e164s)
    back = {}
    for e164, text in shown.items():
        assert " " in text  # never a bare +digits, which a spreadsheet turns into a number
        back[e164] = phones.to_e164(text, "SV").e164
    assert back == {e164: e164 for e164 in e164s}


def test_a_phone_outside_every_known_calling_code_goes_out_as_stored(sql):
    # Not a number any service should store, but the table's CHECK admits it.
    assert formatted(sql, ["+9991234567"]) == {"+9991234567": "+9991234567"}
