"""The DUI: normalised, bound to its clinic/patient/key, failing closed, and rotated between keys."""

import logging
import uuid

import psycopg
import pytest

from patients.dui import DuiKeys, normalise_dui
from patients.ops.key_rotation import rotate
from tests.helpers import DUI_KEY, OLD_DUI_KEY

DUI = "12345678-9"


def url(patient_id):
    return f"/api/patients/{patient_id}"


def admin_dui(client, clinic, patient_id):
    response = client.get(url(patient_id), headers=clinic.headers("admin"))
    assert response.status_code == 200
    return response.json["dui"]


def stored(sql, clinic, patient_id):
    return sql.execute(
        "SELECT dui_ciphertext, dui_key_id FROM patients WHERE clinic_id = %s AND id = %s",
        (clinic.id, patient_id),
    ).fetchone()


# --- normalisation and the cipher -------------------------------------------------------------


@pytest.mark.parametrize("given", ["123456789", "12345678-9", " 12345678-9 ", "\t123456789\n"])
def test_normalise_dui(given):
    assert normalise_dui(given) == DUI


@pytest.mark.parametrize(
    "given",
    [
        "",
        "9876543-21",
        "98765432--1",
        "9876543210",
        "98765432-",
        "９８７６５４３２１",
        "abcdefgh-i",
        None,
    ],
)
def test_malformed_dui_is_refused_without_echoing_it(given):
    with pytest.raises(ValueError) as raised:
        normalise_dui(given)
    if given:
        assert given.strip() not in str(raised.value)


def test_encrypt_normalises_and_binds_to_clinic_patient_and_key(dui_keys):
    clinic, patient = str(uuid.uuid4()), str(uuid.uuid4())
    ciphertext, key_id = dui_keys.encrypt(clinic, patient, "123456789")
    assert dui_keys.decrypt(clinic, patient, ciphertext, key_id) == DUI
    assert b"12345678" not in ciphertext
    assert dui_keys.encrypt(clinic, patient, DUI)[0] != ciphertext  # a fresh nonce each time

    old_key_id = DuiKeys(OLD_DUI_KEY).newest_id
    assert dui_keys.decrypt(str(uuid.uuid4()), patient, ciphertext, key_id) is None
    assert dui_keys.decrypt(clinic, str(uuid.uuid4()), ciphertext, key_id) is None
    assert dui_keys.decrypt(clinic, patient, ciphertext, old_key_id) is None
    assert dui_keys.decrypt(clinic, patient, ciphertext, "no-such-key") is None
    assert dui_keys.decrypt(clinic, patient, ciphertext[:5], key_id) is None
    assert dui_keys.decrypt(clinic, patient, b"", key_id) is None
    flipped = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    assert dui_keys.decrypt(clinic, patient, flipped, key_id) is None


def test_older_keys_decrypt_and_the_newest_encrypts():
    old_only = DuiKeys(OLD_DUI_KEY)
    both = DuiKeys(f"{DUI_KEY}, {OLD_DUI_KEY}")
    ciphertext, key_id = old_only.encrypt("c", "p", DUI)
    assert key_id == old_only.newest_id != both.newest_id
    assert both.decrypt("c", "p", ciphertext, key_id) == DUI
    assert both.encrypt("c", "p", DUI)[1] == both.newest_id


@pytest.mark.parametrize("spec", ["", " , ", "not base64!!", "c2hvcnQ=", f"{DUI_KEY},abc"])
def test_bad_dui_keys_are_refused(spec):
    with pytest.raises(ValueError) as raised:
        DuiKeys(spec)
    assert DUI_KEY not in str(raised.value)


# --- failing closed ---------------------------------------------------------------------------


def test_ciphertext_copied_to_another_clinic_fails_closed(client, make_clinic, sql, caplog):
    victim, thief = make_clinic(), make_clinic()
    source = victim.add_patient("Víctima", "+50370000001", dui=DUI)
    target = thief.add_patient("Ladrón", "+50370000001")
    sql.execute(
        "UPDATE patients t SET dui_ciphertext = s.dui_ciphertext, dui_key_id = s.dui_key_id "
        "FROM patients s WHERE s.clinic_id = %s AND s.id = %s AND t.clinic_id = %s AND t.id = %s",
        (victim.id, source, thief.id, target),
    )
    caplog.set_level(logging.INFO)
    response = client.get(url(target), headers=thief.headers("admin"))
    assert response.status_code == 200
    assert response.json["dui"] is None
    assert "12345678" not in response.get_data(as_text=True)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(target in r.getMessage() for r in warnings), caplog.text
    assert "12345678" not in caplog.text
    assert thief.audit("dui.reveal") == []
    assert admin_dui(client, victim, source) == DUI  # the original still opens where it belongs


def test_ciphertext_copied_to_another_row_of_the_clinic_fails_closed(client, clinic, sql, caplog):
    source = clinic.add_patient("Uno", "+50370000001", dui=DUI)
    target = clinic.add_patient("Dos", "+50370000002")
    sql.execute(
        "UPDATE patients t SET dui_ciphertext = s.dui_ciphertext, dui_key_id = s.dui_key_id "
        "FROM patients s WHERE s.clinic_id = %s AND s.id = %s AND t.clinic_id = s.clinic_id AND t.id = %s",
        (clinic.id, source, target),
    )
    assert admin_dui(client, clinic, target) is None
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert [row["patient_id"] for row in clinic.audit("dui.reveal")] == []


@pytest.fixture
def throwaway_clinic(make_clinic, sql):
    """A clinic deleted after the test: its rows under unknown keys must not reach the rotation tests."""
    clinic = make_clinic()
    yield clinic
    sql.execute("DELETE FROM clinics WHERE id = %s", (clinic.id,))


def test_garbage_ciphertext_fails_closed(client, throwaway_clinic, sql):
    patient = throwaway_clinic.add_patient()
    sql.execute(
        "UPDATE patients SET dui_ciphertext = '\\x00'::bytea, dui_key_id = 'nonsense' "
        "WHERE clinic_id = %s AND id = %s",
        (throwaway_clinic.id, patient),
    )
    assert admin_dui(client, throwaway_clinic, patient) is None


# --- key rotation -----------------------------------------------------------------------------


@pytest.fixture
def old_key_clinic(make_clinic, sql, app):
    """A clinic whose DUIs were all written before the current key existed."""
    clinic = make_clinic()
    clinic.keys = DuiKeys(OLD_DUI_KEY)
    clinic.duis = {}
    for n in range(7):
        dui = f"0000000{n}-{n}"
        clinic.duis[clinic.add_patient(f"Paciente {n}", f"+5037000000{n}", dui=dui)] = dui
    clinic.keys = app.extensions["dui_keys"]
    yield clinic
    sql.execute("DELETE FROM clinics WHERE id = %s", (clinic.id,))


def key_ids(sql, clinic):
    rows = sql.execute("SELECT dui_key_id FROM patients WHERE clinic_id = %s", (clinic.id,))
    return [row["dui_key_id"] for row in rows]


def test_dui_under_an_old_key_reads_before_and_after_rotation(
    client, runner, sql, old_key_clinic, caplog
):
    keys = old_key_clinic.keys
    old_id = DuiKeys(OLD_DUI_KEY).newest_id
    assert set(key_ids(sql, old_key_clinic)) == {old_id}
    for patient, dui in old_key_clinic.duis.items():
        assert admin_dui(client, old_key_clinic, patient) == dui

    result = runner.invoke(args=["rotate-dui-keys", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 7 DUIs" in result.output
    assert "re-encrypting DUIs" in result.output and "7/7" in result.output  # the progress bar
    assert set(key_ids(sql, old_key_clinic)) == {keys.newest_id}
    for patient, dui in old_key_clinic.duis.items():
        assert admin_dui(client, old_key_clinic, patient) == dui
    assert "0000000" not in result.output and "0000000" not in caplog.text

    again = runner.invoke(args=["rotate-dui-keys"])
    assert again.exit_code == 0 and "Re-encrypted 0 DUIs" in again.output


class InterruptedKeys(DuiKeys):
    """The real keys, but Ctrl-C arrives while the n-th value is being re-encrypted."""

    def __init__(self, spec, interrupt_at):
        super().__init__(spec)
        self.calls, self.interrupt_at = 0, interrupt_at

    def encrypt(self, *args):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return super().encrypt(*args)


def test_rotation_interrupted_mid_batch_keeps_every_dui_readable(
    app, client, runner, sql, old_key_clinic
):
    keys = InterruptedKeys(f"{DUI_KEY},{OLD_DUI_KEY}", interrupt_at=5)
    with pytest.raises(KeyboardInterrupt):
        rotate(app.extensions["pool"], keys, batch_size=3)
    # The first batch committed; the second rolled back whole; nothing half-written.
    ids = key_ids(sql, old_key_clinic)
    assert ids.count(keys.newest_id) == 3 and len(ids) == 7
    for patient, dui in old_key_clinic.duis.items():
        assert admin_dui(client, old_key_clinic, patient) == dui

    result = runner.invoke(args=["rotate-dui-keys", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 4 DUIs" in result.output
    assert set(key_ids(sql, old_key_clinic)) == {keys.newest_id}
    for patient, dui in old_key_clinic.duis.items():
        assert admin_dui(client, old_key_clinic, patient) == dui


def test_rotation_skips_rows_being_written_and_a_rerun_finishes(
    app, client, runner, sql, database_url, old_key_clinic
):
    busy = next(iter(old_key_clinic.duis))
    with psycopg.connect(database_url) as other:  # a request in the middle of writing this patient
        other.execute(
            "SELECT 1 FROM patients WHERE clinic_id = %s AND id = %s FOR UPDATE",
            (old_key_clinic.id, busy),
        )
        result = runner.invoke(args=["rotate-dui-keys", "--batch-size", "2"])
        assert result.exit_code == 1
        assert (
            "Re-encrypted 6 DUIs" in result.output
            and "1 DUIs are still under an older key" in result.output
        )
        other.rollback()
    assert stored(sql, old_key_clinic, busy)["dui_key_id"] == DuiKeys(OLD_DUI_KEY).newest_id

    result = runner.invoke(args=["rotate-dui-keys"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 DUIs" in result.output
    assert admin_dui(client, old_key_clinic, busy) == old_key_clinic.duis[busy]


def test_rotation_leaves_unreadable_values_alone_and_says_so(runner, sql, old_key_clinic, caplog):
    broken = next(iter(old_key_clinic.duis))
    sql.execute(  # the value of another patient: it cannot open under this row's identity
        "UPDATE patients SET dui_ciphertext = (SELECT dui_ciphertext FROM patients "
        "  WHERE clinic_id = %s AND id <> %s LIMIT 1) WHERE clinic_id = %s AND id = %s",
        (old_key_clinic.id, broken, old_key_clinic.id, broken),
    )
    before = stored(sql, old_key_clinic, broken)
    result = runner.invoke(args=["rotate-dui-keys"])
    assert result.exit_code == 1
    assert (
        "Re-encrypted 6 DUIs" in result.output and "1 DUIs could not be decrypted" in result.output
    )
    assert stored(sql, old_key_clinic, broken) == before
    assert any(broken in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
