"""Bearer tokens: every way a token can be unusable is a 401 UNAUTHORIZED, as JSON."""

import base64
import datetime as dt
import json

import jwt
import pytest

from patients import tokens
from tests.helpers import JWT_SECRET, make_token
from tests.supabase_tokens import supabase_token

URL = "/api/patients"


def assert_unauthorized(response):
    assert response.status_code == 401
    assert response.is_json
    assert response.json["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_missing_token(client):
    assert_unauthorized(client.get(URL))


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Bearer abc", "Token x.y.z"],
)
def test_malformed_token(client, header):
    assert_unauthorized(client.get(URL, headers={"Authorization": header}))


def test_wrong_key(client, clinic):
    token = make_token(clinic.id, secret="another-secret-" + "y" * 40)
    assert_unauthorized(client.get(URL, headers=bearer(token)))


def test_expired(client, clinic):
    token = make_token(clinic.id, expires_in=-3600)
    response = client.get(URL, headers=bearer(token))
    assert_unauthorized(response)
    assert "expired" in response.json["message"]


def test_a_token_that_passed_is_remembered_but_still_expires(app, client, clinic, monkeypatch):
    """patients/tokens.py verify(): an HS256 token that passed is not decoded again, yet it is
    refused as expired from the moment PyJWT would refuse it."""
    token = make_token(clinic.id, expires_in=600)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert client.get(URL, headers=bearer(token)).status_code == 200
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    assert client.get(URL, headers=bearer(token)).status_code == 200
    assert decoded == []

    # Both clocks (ours and PyJWT's) at the first instant PyJWT counts as expired.
    later = expires + app.extensions["token_settings"].leeway

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.fromtimestamp(later, tz)

    monkeypatch.setattr(tokens, "now", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    response = client.get(URL, headers=bearer(token))
    assert_unauthorized(response)
    assert "expired" in response.json["message"]
    assert decoded == [1]  # verified again, and refused by PyJWT itself


def test_alg_none_is_refused(client, clinic):
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    exp = int((dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).timestamp())
    claims = {"sub": "u", "exp": exp, "app_metadata": {"clinic_id": clinic.id, "role": "admin"}}
    for alg in ("none", "None", "NONE"):
        token = f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}."
        assert_unauthorized(client.get(URL, headers=bearer(token)))


def test_other_algorithm_is_refused(client, clinic):
    claims = {
        "sub": "u",
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        "app_metadata": {"clinic_id": clinic.id, "role": "admin"},
    }
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS384")
    assert_unauthorized(client.get(URL, headers=bearer(token)))


@pytest.mark.parametrize("role", ["owner", "authenticated", "", None, 1, ["admin"]])
def test_unknown_role(client, clinic, role):
    token = make_token(clinic.id, app_metadata={"clinic_id": clinic.id, "role": role})
    assert_unauthorized(client.get(URL, headers=bearer(token)))


def test_missing_sub(client, clinic):
    claims = {
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        "app_metadata": {"clinic_id": clinic.id, "role": "admin"},
    }
    assert_unauthorized(client.get(URL, headers=bearer(jwt.encode(claims, JWT_SECRET))))


def test_missing_exp(client, clinic):
    claims = {"sub": "u", "app_metadata": {"clinic_id": clinic.id, "role": "admin"}}
    assert_unauthorized(client.get(URL, headers=bearer(jwt.encode(claims, JWT_SECRET))))


@pytest.mark.parametrize("clinic_id", [None, "", "not-a-uuid", 42])
def test_unusable_clinic(client, clinic_id):
    token = make_token("x", app_metadata={"clinic_id": clinic_id, "role": "staff"})
    assert_unauthorized(client.get(URL, headers=bearer(token)))


def test_supabase_style_claims(client, clinic):
    """Supabase: top-level role is the database role (`authenticated`); ours is in app_metadata.

    The whole Supabase shape, every algorithm and the JWKS are in tests/test_supabase_auth.py.
    """
    patient = clinic.add_patient("Ana Supabase", "+50370000001", dui="12345678-9")
    token = supabase_token(clinic.id, "admin")
    assert jwt.decode(token, options={"verify_signature": False})["role"] == "authenticated"
    response = client.get(URL, headers=bearer(token))
    assert response.status_code == 200
    assert [p["full_name"] for p in response.json["patients"]] == ["Ana Supabase"]
    assert client.get(f"{URL}/{patient}", headers=bearer(token)).json["dui"] == "12345678-9"


def test_top_level_claims(client, clinic):
    clinic.add_patient("Luis Top", "+50370000002")
    claims = {
        "sub": "u",
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        "clinic_id": clinic.id,
        "role": "staff",
    }
    response = client.get(URL, headers=bearer(jwt.encode(claims, JWT_SECRET)))
    assert response.status_code == 200
    assert response.json["total"] == 1


def test_clinic_comes_from_the_token_only(client, clinic, make_clinic):
    other = make_clinic()
    other.add_patient("Paciente Ajeno", "+50370000003")
    response = client.get(
        URL + f"?clinic_id={other.id}", headers={**clinic.headers(), "X-Clinic-Id": other.id}
    )
    assert response.status_code == 200
    assert response.json["total"] == 0
