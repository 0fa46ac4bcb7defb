"""Turning what a person typed into the search box into LIKE patterns for queries/patients.sql."""

import re

PHONE_LIKE = re.compile(r"[\d\s+().\-/]+")


def like_literal(term: str) -> str:
    # The backslash first, so the escapes added for % and _ are not escaped again.
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def patterns(term: str) -> dict:
    """`name_pattern` matches anywhere in the folded name; `phone_pattern` (or None) in the digits.

    A term made only of digits and phone punctuation (`7765-4321`, `+503 7765 4321`) also
    searches phones, by its digits alone.
    """
    phone_pattern = None
    if PHONE_LIKE.fullmatch(term):
        digits = re.sub(r"\D", "", term)
        if digits:
            phone_pattern = f"%{digits}%"
    return {"name_pattern": f"%{like_literal(term)}%", "phone_pattern": phone_pattern}
