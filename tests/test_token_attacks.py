"""Forged and twisted tokens: each is a 401 UNAUTHORIZED as JSON, never a 500, never a way in.

tests/test_auth.py covers the plain cases (missing, malformed, expired, wrong key, `alg: none`,
HS384, no `exp`/`sub`, unknown roles); these are the attacker's variations on them.
"""

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.helpers import JWT_SECRET, make_token

URL = "/api/patients"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims, key: bytes | None = JWT_SECRET.encode(), digest=hashlib.sha256):
    """A JWT assembled by hand, so nothing in a library stops the attacker's choices."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def claims_for(clinic, **overrides):
    exp = int((dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).timestamp())
    claims = {
        "sub": "attacker",
        "exp": exp,
        "app_metadata": {"clinic_id": clinic.id, "role": "admin"},
    }
    claims.update(overrides)
    return claims


def assert_refused(client, token, clinic):
    response = client.get(URL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.get_data(as_text=True)[:300]
    assert response.is_json and response.json["code"] == "UNAUTHORIZED"
    assert "patients" not in response.json


def test_forge_helper_makes_tokens_that_work(client, clinic):
    """The forging helper is faithful: with the real secret and sane claims the token is accepted."""
    token = forge({"alg": "HS256", "typ": "JWT"}, claims_for(clinic))
    assert client.get(URL, headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none"},
        {"alg": "nOnE", "typ": "JWT"},
        {"alg": "none", "typ": "jwt", "kid": "x"},
    ],
)
def test_alg_none_with_a_signature_attached(client, clinic, header):
    """`alg: none` is refused even when a (valid HS256) signature is left on the token."""
    token = forge(header, claims_for(clinic))
    assert_refused(client, token, clinic)


def test_alg_missing(client, clinic):
    assert_refused(client, forge({"typ": "JWT"}, claims_for(clinic)), clinic)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_hs256_signed_with_a_public_key_as_secret(client, clinic, kind):
    """Key confusion: an attacker who knows a public key signs HS256 with its PEM as the secret."""
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = forge({"alg": "HS256", "typ": "JWT"}, claims_for(clinic), key=pem)
    assert_refused(client, token, clinic)
    # And the asymmetric algorithm itself, properly signed with the private key, is not accepted.
    import jwt

    token = jwt.encode(claims_for(clinic), private, algorithm="RS256" if kind == "rsa" else "ES256")
    assert_refused(client, token, clinic)


@pytest.mark.parametrize("alg, digest", [("HS384", hashlib.sha384), ("HS512", hashlib.sha512)])
def test_stronger_hmac_with_the_right_secret_is_still_refused(client, clinic, alg, digest):
    token = forge({"alg": alg, "typ": "JWT"}, claims_for(clinic), digest=digest)
    assert_refused(client, token, clinic)


def test_signature_of_another_token_is_not_reusable(client, clinic, make_clinic):
    """Claims swapped onto a valid signature (another clinic's) fail verification."""
    other = make_clinic()
    honest = make_token(other.id, "staff")
    head, _payload, signature = honest.split(".")
    swapped = f"{head}.{b64(json.dumps(claims_for(clinic)).encode())}.{signature}"
    assert_refused(client, swapped, clinic)


@pytest.mark.parametrize("size", [9_000, 60_000])
def test_huge_token(client, clinic, size):
    padding = "A" * size
    token = forge({"alg": "HS256", "typ": "JWT"}, claims_for(clinic, pad=padding), key=b"wrong")
    assert_refused(client, token, clinic)


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": "9999999999"},  # PyJWT would read it as a number; we want a number
        {"exp": "tomorrow"},
        {"exp": True},
        {"exp": [9999999999]},
        {"exp": {"$gt": 0}},
        {"exp": None},
        {"nbf": "soon"},
        {"nbf": 4_102_444_800},  # not before 2100
        {"iat": "yesterday"},
        {"sub": 123},
        {"sub": ["admin"]},
        {"sub": {"id": "x"}},
        {"sub": ""},
        {"sub": "x" * 5000},
        {"app_metadata": ["admin"]},
        {"app_metadata": "admin"},
        {"app_metadata": {"clinic_id": ["uuid"], "role": "admin"}},
        {"app_metadata": {"clinic_id": {"id": 1}, "role": "admin"}},
        {"app_metadata": {"clinic_id": 1e9, "role": "admin"}},
        {"app_metadata": {"clinic_id": None, "role": {"admin": True}}},
        {"app_metadata": {"clinic_id": "00000000-0000-0000-0000-00000000000\x00", "role": "admin"}},
    ],
    ids=repr,
)
def test_claims_of_the_wrong_type(client, clinic, overrides):
    token = forge({"alg": "HS256", "typ": "JWT"}, claims_for(clinic, **overrides))
    assert_refused(client, token, clinic)


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'"just a string"',
        b"null",
        b"{not json",
        b"\xff\xfe\x00",
        b'{"sub": "a", "exp": 1e999}',
    ],
    ids=repr,
)
def test_payload_that_is_not_a_claims_object(client, clinic, payload):
    assert_refused(client, forge({"alg": "HS256", "typ": "JWT"}, payload), clinic)


@pytest.mark.parametrize(
    "value",
    [
        "Bearer a.b.c d.e.f",
        "Bearer  {token}x",
        "bearer {token}.extra",
        "Bearer {token},Bearer {token}",
        "Bearer tökén.ñ.ü",
    ],
)
def test_mangled_authorization_header(client, clinic, value):
    token = forge({"alg": "HS256", "typ": "JWT"}, claims_for(clinic))
    response = client.get(URL, headers={"Authorization": value.format(token=token)})
    assert response.status_code == 401
    assert response.json["code"] == "UNAUTHORIZED"


def test_role_escalation_in_top_level_claims_does_not_override_app_metadata(client, clinic):
    """Top-level `role: admin` (which a Supabase user cannot set) does not beat app_metadata's staff."""
    clinic_patient = clinic.add_patient("Con Dui", "+50371113333", dui="12345678-9")
    token = forge(
        {"alg": "HS256", "typ": "JWT"},
        claims_for(clinic, role="admin", app_metadata={"clinic_id": clinic.id, "role": "staff"}),
    )
    response = client.get(f"{URL}/{clinic_patient}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json["dui"] is None
