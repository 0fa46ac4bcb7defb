"""patients/phones.py: the quick reading of plainly written numbers is exactly libphonenumber's.

plain_number() skips phonenumbers.parse() for digit groups in regions without a national prefix;
wherever it answers, its PhoneNumber must equal parse()'s (the `phonenumbers` package, the
version pinned in requirements.txt), and the number read (or refused) must be the same either way.
"""

import random

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from patients import phones

# Central America (no national prefix: the quick path), and regions that have one or share a code.
REGIONS = ["SV", "GT", "HN", "NI", "PA", "CR", "ES", "MX", "US", "GB", "AR"]
CODES = ["", "+", "+503", "503", "+502", "00503", "+1", "0", "00"]


def library_valid(text: str, region: str):
    """phones._valid() as it was before the quick path: parse(), then is_valid_number()."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


digit_groups = st.lists(st.text("0123456789", min_size=1, max_size=6), min_size=1, max_size=4)
numbers = st.builds(
    lambda code, groups, separator: (
        code + (" " if code and code != "+" else "") + separator.join(groups)
    ),
    st.sampled_from(CODES),
    digit_groups,
    st.sampled_from([" ", "-", ".", ""]),
)


@settings(max_examples=1500, deadline=None)
@given(numbers, st.sampled_from(REGIONS))
@example("7765-4321", "SV")
@example("+503 7765 4321", "SV")
@example("5037765432", "SV")
@example("0077654321", "SV")
@example("2345 6789", "GT")
def test_the_quick_path_reads_numbers_exactly_as_libphonenumber(text, region):
    quick = phones.plain_number(text, region)
    if quick is not None:
        assert quick == phonenumbers.parse(text, region)
    assert phones._valid(text, region) == library_valid(text, region)


@pytest.mark.parametrize(
    ("text", "region", "quick"),
    [
        ("7765-4321", "SV", True),
        ("+503 7765 4321", "SV", True),
        ("77654321", "SV", True),
        ("(503) 7765-4321", "SV", False),  # not digit groups: parse() reads it
        ("50377654321", "SV", False),  # the country code without +: parse() decides
        ("7765-4321", "GB", False),  # a national prefix to strip: parse() reads it
    ],
)
def test_which_numbers_take_the_quick_path(text, region, quick):
    assert (phones.plain_number(text, region) is not None) is quick
    assert phones._valid(text, region) == library_valid(text, region)


@pytest.mark.parametrize("region", ["SV", "GT", "HN", "NI", "PA", "ES"])
def test_plain_valid_is_is_valid_number(region):
    """Every kind of number of the region, and random ones around them (deterministic)."""
    rng = random.Random(region)
    code = phonenumbers.country_code_for_region(region)
    for _ in range(4000):
        digits = str(rng.randrange(10 ** rng.randrange(5, 12)))
        number = phonenumbers.PhoneNumber(country_code=code, national_number=int(digits))
        assert phones.plain_valid(number, region) == phonenumbers.is_valid_number(number), digits
    for kind in phonenumbers.PhoneNumberType.values():
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            assert phones.plain_valid(example, region) == phonenumbers.is_valid_number(example)
