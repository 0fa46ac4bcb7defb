"""patients/importing.py's quick split of plain email addresses is email-validator's own.

quick_split_email() stands in for email_validator's split_email() (the version pinned in
requirements.txt) for ASCII addresses with an @ and no `"` or `<`; for those its answer must be
the library's, and every other address must still reach the library (same answers, same errors).
"""

import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import split_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from patients import importing

PIECES = st.sampled_from(
    [*"abcXYZ019._-+@ '\"<>()\\,;:[]é", "maría", "@@", "user", "example.com", "\u0301", "＠"]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
@example("Ana.Perez+1@Salud.SV")
@example("ana@perez@salud.sv")
@example('"ana perez"@salud.sv')
@example("Ana <ana@salud.sv>")
@example("ana.perez")
def test_the_quick_split_answers_as_the_library(text):
    try:
        expected = split_email(text)
    except EmailNotValidError as exc:
        with pytest.raises(EmailNotValidError) as raised:
            importing.quick_split_email(text)
        assert str(raised.value) == str(exc)
        return
    assert importing.quick_split_email(text) == expected


def test_validate_email_takes_the_quick_split_and_keeps_its_verdicts():
    module = importing._email_module
    assert module.split_email is importing.quick_split_email
    assert validate_email("Ana.Perez+1@Salud.SV", check_deliverability=False).normalized == (
        "Ana.Perez+1@salud.sv"
    )
    for bad in ("ana..perez@salud.sv", "ana@perez@salud.sv", ".ana@salud.sv", "ana@"):
        with pytest.raises(EmailNotValidError):
            validate_email(bad, check_deliverability=False)
