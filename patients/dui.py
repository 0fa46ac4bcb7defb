"""The DUI (Salvadoran national ID): normalised and encrypted at rest. Who may see it in clear is
decided in one place, the web layer's @reveals_dui (patients/api/auth.py).

Encryption is AES-256-GCM with a fresh 96-bit nonce per value. The associated data binds the
ciphertext to its clinic, its patient and its key, so a value copied to another row, another clinic
or relabelled with another key id fails to decrypt (and reads as null, with a warning logged).

DUI_KEYS lists keys newest first: the newest encrypts, all of them decrypt, and
`flask --app app rotate-dui-keys` re-encrypts older values under the newest.
"""

import base64
import binascii
import hashlib
import logging
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from patients.messages import N_

log = logging.getLogger(__name__)

# ASCII digits only: \d would also take fullwidth and other scripts' digits.
DUI_SHAPE = re.compile(r"([0-9]{8})-?([0-9])")
EIGHT_DIGITS = re.compile(r"[0-9]{8}")
NONCE_BYTES = 12


def normalise_dui(value: str) -> str:
    """`123456789`, `12345678-9` or `12345670` (spaces around allowed) -> `12345678-9`; ValueError
    otherwise.

    Eight digits are a DUI whose leading 0 a spreadsheet dropped (the column was a number column,
    and most DUIs begin with 0): `12345670` is `01234567-0`.
    """
    # The message never echoes the value: it may be a real DUI with a typo.
    text = value.strip() if isinstance(value, str) else ""
    if EIGHT_DIGITS.fullmatch(text):
        text = "0" + text
    match = DUI_SHAPE.fullmatch(text)
    if not match:
        raise ValueError(N_("a DUI has 9 digits, as 12345678-9"))
    return f"{match[1]}-{match[2]}"


class DuiKeys:
    def __init__(self, spec: str):
        keys = []
        for position, text in enumerate(part.strip() for part in (spec or "").split(",")):
            if not text:
                continue
            try:
                raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"DUI_KEYS entry {position + 1} is not URL-safe base64") from exc
            if len(raw) != 32:
                raise ValueError(f"DUI_KEYS entry {position + 1} is not 32 bytes")
            keys.append((hashlib.sha256(b"dui-key-id:" + raw).hexdigest()[:12], AESGCM(raw)))
        if not keys:
            raise ValueError("DUI_KEYS must hold at least one key")
        self.newest_id = keys[0][0]
        self._by_id = dict(keys)

    @staticmethod
    def _aad(clinic_id: str, patient_id: str, key_id: str) -> bytes:
        return f"dui:v1:{clinic_id}:{patient_id}:{key_id}".encode()

    def encrypt(self, clinic_id: str, patient_id: str, dui: str) -> tuple[bytes, str]:
        """(ciphertext, key_id) for a DUI, normalised here so no other spelling is ever stored."""
        dui = normalise_dui(dui)
        nonce = os.urandom(NONCE_BYTES)
        aead = self._by_id[self.newest_id]
        sealed = aead.encrypt(
            nonce, dui.encode(), self._aad(str(clinic_id), str(patient_id), self.newest_id)
        )
        return nonce + sealed, self.newest_id

    def decrypt(
        self, clinic_id: str, patient_id: str, ciphertext: bytes, key_id: str
    ) -> str | None:
        """The clear DUI, or None (logged) when the value cannot be opened: fail closed, never a 500."""
        aead = self._by_id.get(key_id)
        if aead is None:
            log.warning("DUI of patient %s is under key %s, not in DUI_KEYS", patient_id, key_id)
            return None
        ciphertext = bytes(ciphertext)
        try:
            clear = aead.decrypt(
                ciphertext[:NONCE_BYTES],
                ciphertext[NONCE_BYTES:],
                self._aad(str(clinic_id), str(patient_id), key_id),
            ).decode()
        # InvalidTag: copied to another row or clinic, or tampered with; ValueError: truncated.
        except (InvalidTag, ValueError):
            log.warning("DUI of patient %s failed authentication (copied or tampered)", patient_id)
            return None
        return clear
