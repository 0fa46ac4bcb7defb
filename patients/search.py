"""Turning what a person typed into the search box into parameters for queries/patients.sql.

The name side is folded and escaped in SQL (fold first, then escape: see search_patients), so a
term's `%`, `_` and `\\` stay literal whatever unaccent does to it. Here we only decide whether the
term also reads as a phone number and, if so, which digits to look for.
"""

import re

# Digits with the punctuation people type in phone numbers: `7765-4321`, `+503 7765 4321`, `(503) 7765.4321`.
PHONE_LIKE = re.compile(r"[0-9\s+().\-/]+")
NOT_A_DIGIT = re.compile(r"[^0-9]")


# The search indexes key a term by its 3-character substrings (clinic_trigram_keys in schema.sql),
# so they narrow a term only from three characters on; shorter ones match most of a clinic. (The
# SQL decides on the folded term's length, so a term folding shorter is still answered rightly.)
TRIGRAM_MIN_LENGTH = 3


def narrowed_by_trigrams(term: str) -> bool:
    """Whether the trigram indexes can narrow this term (search_patients) or not (…_short_term)."""
    return len(term) >= TRIGRAM_MIN_LENGTH


def parameters(term: str) -> dict:
    """`term` for the folded name; `phone_digits` (or None) for a term that reads as a phone."""
    digits = NOT_A_DIGIT.sub("", term) if PHONE_LIKE.fullmatch(term) else ""
    return {"term": term, "phone_digits": digits or None}


def summary(term: str | None) -> dict | None:
    """What the audit trail keeps of a search: its kind and length, never the term (which may be
    a DUI or a phone number). None when there was no search."""
    if term is None:
        return None
    kind = "phone_digits" if parameters(term)["phone_digits"] else "name"
    return {"kind": kind, "length": len(term)}
