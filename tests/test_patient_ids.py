"""patients/importing.py new_patient_id(): what str(uuid.uuid4()) gives, made with less work."""

import uuid

from patients import importing


def test_new_patient_ids_are_random_uuids_in_canonical_form():
    ids = {importing.new_patient_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
