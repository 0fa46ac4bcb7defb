"""patients/logs.py scrub(): its quick path (nothing that could match) changes nothing it would
have masked; the three passes decide whenever something could."""

from hypothesis import given, settings
from hypothesis import strategies as st

from patients import logs

# Digits, the separators phones are written with, the letters of a JWT's start, and a few others.
PIECES = st.sampled_from(
    [*"0123456789 -().+/eyJ_x.\t٣", "eyJhbGciOi", "12345678-9", "+503 7765 4321", "/api/"]
)


def three_passes(text: str) -> str:
    for pattern, mask in logs.SCRUB:
        text = pattern.sub(mask, text)
    return text


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=24).map("".join))
def test_scrub_masks_exactly_what_the_three_passes_mask(text):
    assert logs.scrub(text) == three_passes(text)


def test_scrub_masks_and_leaves_alone():
    assert logs.scrub("/api/patients/12345678-9") == "/api/patients/[dui]"
    assert logs.scrub("call +503 7765-4321 now") == "call [number] now"
    assert logs.scrub("GET") == "GET"
    assert (
        logs.scrub("24bb468a-94d3-4b59-bf87-26cd431c1d17") == "24bb468a-94d3-4b59-bf87-26cd431c1d17"
    )
