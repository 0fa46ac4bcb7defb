"""Sign-in as it really happens: access tokens exactly as Supabase Auth issues them, through HTTP.

Real crypto throughout: ES256 and RS256 keys generated per run and published by a JWKS endpoint
the suite serves on loopback (tests/jwks_server.py), tokens in GoTrue's full shape
(tests/supabase_tokens.py), PyJWT unmocked. Each test that counts JWKS fetches gets its own app,
so its key cache starts empty.
"""

import base64
import hashlib
import hmac
import json
import math
import threading
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from app import create_app
from patients import tokens
from patients.config import ConfigError
from tests.helpers import JWT_SECRET
from tests.jwks_server import SigningKey, unreachable_url
from tests.live import LiveServer
from tests.supabase_tokens import (
    ISSUER,
    LEGACY_KID,
    bearer,
    sign,
    supabase_claims,
    supabase_token,
)

URL = "/api/patients"


@pytest.fixture
def make_app(config):
    """create_app() with extra settings; every app made is closed at the end of the test."""
    apps = []

    def make(**settings):
        app = create_app({**config, **settings})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["pool"].close()


@pytest.fixture
def jwks_client(make_app, jwks_server):
    """A client of an app that trusts the test JWKS (and the legacy secret)."""
    return make_app(JWT_JWKS_URL=jwks_server.url).test_client()


def assert_unauthorized(response, message=None):
    assert response.status_code == 401, response.get_data(as_text=True)[:300]
    assert response.is_json
    assert response.json["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "patients" not in response.json
    if message is not None:
        assert response.json["message"] == message


def names(response):
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return [p["full_name"] for p in response.json["patients"]]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: dict, hmac_key: bytes | None) -> str:
    """A JWT put together by hand, so no library stops the attacker's choices."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if hmac_key is None:
        return f"{signing_input}."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


# -- a token as Supabase issues it reads the clinic's patients -------------------------------


@pytest.mark.parametrize("alg", ["HS256", "ES256", "RS256"])
def test_each_algorithm_in_full_supabase_shape_reads_the_clinics_patients(
    jwks_client,
    jwks_server,
    clinic,
    make_clinic,
    alg,
):
    clinic.add_patient("Ana Supabase", "+50370000001")
    make_clinic().add_patient("Paciente Ajeno", "+50370000002")
    key = JWT_SECRET if alg == "HS256" else jwks_server.key(alg)
    token = sign(
        supabase_claims(clinic.id, "staff"), key, kid=LEGACY_KID if alg == "HS256" else None
    )
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["typ"] == "JWT" and header["kid"]
    assert names(jwks_client.get(URL, headers=bearer(token))) == ["Ana Supabase"]


def test_the_shape_is_the_whole_gotrue_claim_set():
    """The builder is faithful to GoTrue's AccessTokenClaims (supabase/auth internal/tokens)."""
    claims = supabase_claims(str(uuid.uuid4()), "admin")
    assert list(claims) == [
        "iss", "sub", "aud", "exp", "iat", "email", "phone", "app_metadata", "user_metadata",
        "role", "aal", "amr", "session_id", "is_anonymous",
    ]  # fmt: skip
    assert claims["aud"] == "authenticated" and claims["role"] == "authenticated"
    assert claims["iss"].endswith(".supabase.co/auth/v1")
    assert set(claims["app_metadata"]) == {"provider", "providers", "clinic_id", "role"}
    assert claims["amr"] == [{"method": "password", "timestamp": claims["iat"]}]


def test_hs256_without_a_kid_still_works(client, clinic):
    clinic.add_patient("Sin Kid", "+50370000003")
    token = sign(supabase_claims(clinic.id), JWT_SECRET)
    assert "kid" not in jwt.get_unverified_header(token)
    assert names(client.get(URL, headers=bearer(token))) == ["Sin Kid"]


def test_hs256_works_beside_an_unreachable_jwks(make_app, clinic):
    """The legacy secret does not depend on the JWKS: its tokens never wait for it."""
    jwks_down = make_app(JWT_JWKS_URL=unreachable_url()).test_client()
    clinic.add_patient("Ana Legado", "+50370000004")
    started = time.monotonic()
    assert names(jwks_down.get(URL, headers=bearer(supabase_token(clinic.id)))) == ["Ana Legado"]
    assert time.monotonic() - started < 1.5  # below the 2 s fetch timeout: nothing was awaited


def test_with_a_jwks_the_legacy_secret_may_be_dropped(make_app, jwks_server, clinic):
    """A project that revoked its legacy secret sets only JWT_JWKS_URL: HS256 is then refused."""
    client = make_app(JWT_SECRET=None, JWT_JWKS_URL=jwks_server.url).test_client()
    clinic.add_patient("Sin Secreto", "+50370000005")
    es256 = sign(supabase_claims(clinic.id), jwks_server.current)
    assert names(client.get(URL, headers=bearer(es256))) == ["Sin Secreto"]
    assert_unauthorized(client.get(URL, headers=bearer(supabase_token(clinic.id))))


def test_asymmetric_tokens_need_a_configured_jwks(client, clinic, jwks_server):
    """Without JWT_JWKS_URL an ES256 token, however well signed, has no key here."""
    token = sign(supabase_claims(clinic.id), jwks_server.current)
    assert_unauthorized(client.get(URL, headers=bearer(token)))
    assert jwks_server.fetches == 0


# -- key rotation, unknown kids, the fetch budget --------------------------------------------


def test_the_jwks_is_fetched_once_and_cached(jwks_client, jwks_server, clinic):
    for alg in ("ES256", "RS256", "ES256", "RS256"):
        token = sign(supabase_claims(clinic.id), jwks_server.key(alg))
        assert jwks_client.get(URL, headers=bearer(token)).status_code == 200
    assert jwks_server.fetches == 1


def test_a_rotated_key_works_at_once(jwks_client, jwks_server, clinic):
    old = jwks_server.current
    assert (
        jwks_client.get(URL, headers=bearer(sign(supabase_claims(clinic.id), old))).status_code
        == 200
    )
    new = jwks_server.rotate("ES256")
    response = jwks_client.get(URL, headers=bearer(sign(supabase_claims(clinic.id), new)))
    assert response.status_code == 200
    assert jwks_server.fetches == 2
    # The previous key is still published ("previously used"): its tokens keep working.
    assert (
        jwks_client.get(URL, headers=bearer(sign(supabase_claims(clinic.id), old))).status_code
        == 200
    )
    assert jwks_server.fetches == 2


def test_a_flood_of_made_up_kids_costs_one_fetch(jwks_client, jwks_server, clinic):
    real = jwks_server.current
    assert (
        jwks_client.get(URL, headers=bearer(sign(supabase_claims(clinic.id), real))).status_code
        == 200
    )
    for _ in range(100):
        token = sign(supabase_claims(clinic.id), real, kid=str(uuid.uuid4()))
        assert_unauthorized(
            jwks_client.get(URL, headers=bearer(token)),
            "The token is signed with a key this service does not know.",
        )
    assert jwks_server.fetches == 2  # the first fetch, and one refetch for all 100 unknown kids
    # Genuine tokens are unaffected by the flood.
    assert (
        jwks_client.get(URL, headers=bearer(sign(supabase_claims(clinic.id), real))).status_code
        == 200
    )


def test_unknown_kids_refetch_again_after_the_interval(make_app, jwks_server, clinic):
    client = make_app(JWT_JWKS_URL=jwks_server.url, JWKS_REFETCH_INTERVAL=0.3).test_client()
    bogus = [
        sign(supabase_claims(clinic.id), jwks_server.current, kid=f"made-up-{i}") for i in range(40)
    ]
    for token in bogus[:20]:
        assert_unauthorized(client.get(URL, headers=bearer(token)))
    assert jwks_server.fetches == 2  # cold fetch + one refetch
    time.sleep(0.35)
    for token in bogus[20:]:
        assert_unauthorized(client.get(URL, headers=bearer(token)))
    assert jwks_server.fetches == 3  # one more per interval, however many kids


def test_a_revoked_key_stops_working_at_the_next_refresh(make_app, jwks_server, clinic):
    client = make_app(JWT_JWKS_URL=jwks_server.url, JWKS_REFRESH_AFTER=0.2).test_client()
    key = jwks_server.key("RS256")
    assert client.get(URL, headers=bearer(sign(supabase_claims(clinic.id), key))).status_code == 200
    jwks_server.revoke(key)
    time.sleep(0.25)
    assert_unauthorized(client.get(URL, headers=bearer(sign(supabase_claims(clinic.id), key))))


# -- an unreachable JWKS fails closed, quickly, never a 500 ----------------------------------

UNAVAILABLE = "The keys that verify this token cannot be fetched right now; try again."


@pytest.mark.parametrize("mode", ["stopped", "slow", "dribble", "down", "garbage"])
def test_an_unusable_jwks_is_401_within_a_bounded_time(make_app, jwks_server, clinic, mode):
    client = make_app(JWT_JWKS_URL=jwks_server.url).test_client()
    token = sign(supabase_claims(clinic.id), jwks_server.current)
    if mode == "stopped":
        jwks_server.stop()
    else:
        # "slow": answers after 10 s, past the 2 s fetch timeout; "dribble": a byte every 0.2 s,
        # so no single read times out but the whole answer would take minutes.
        jwks_server.mode = mode
    started = time.monotonic()
    assert_unauthorized(client.get(URL, headers=bearer(token)), UNAVAILABLE)
    assert time.monotonic() - started < 3
    # The failure is remembered for a moment: the next requests do not wait for the network.
    started = time.monotonic()
    for _ in range(10):
        assert_unauthorized(client.get(URL, headers=bearer(token)), UNAVAILABLE)
    assert time.monotonic() - started < 5  # ten waits for the network would take 20 s
    if mode != "stopped":
        assert jwks_server.fetches == 1


def test_an_empty_jwks_is_no_key_at_all(make_app, jwks_server, clinic):
    """A project still on the legacy secret publishes {"keys": []}: asymmetric tokens are 401."""
    jwks_server.mode = "empty"
    client = make_app(JWT_JWKS_URL=jwks_server.url).test_client()
    token = sign(supabase_claims(clinic.id), jwks_server.current)
    assert_unauthorized(client.get(URL, headers=bearer(token)))
    assert client.get(URL, headers=bearer(supabase_token(clinic.id))).status_code == 200


def test_concurrent_requests_share_one_slow_fetch(make_app, jwks_server, clinic):
    app = make_app(JWT_JWKS_URL=jwks_server.url)
    token = sign(supabase_claims(clinic.id), jwks_server.current)
    jwks_server.mode = "slow"
    results = []

    def call():
        started = time.monotonic()
        response = app.test_client().get(URL, headers=bearer(token))
        results.append((response.status_code, time.monotonic() - started))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert [status for status, _ in results] == [401] * 6
    assert max(elapsed for _, elapsed in results) < 3.5
    assert jwks_server.fetches == 1


def test_the_jwks_coming_back_is_noticed(make_app, jwks_server, clinic):
    client = make_app(JWT_JWKS_URL=jwks_server.url, JWKS_RETRY_AFTER_FAILURE=0.2).test_client()
    token = sign(supabase_claims(clinic.id), jwks_server.current)
    jwks_server.stop()
    assert_unauthorized(client.get(URL, headers=bearer(token)), UNAVAILABLE)
    jwks_server.start()
    time.sleep(0.25)
    assert client.get(URL, headers=bearer(token)).status_code == 200


def test_known_keys_outlive_a_failed_refresh_for_a_while(make_app, jwks_server, clinic):
    """A refresh that fails keeps the keys already known, up to their stale limit, then 401."""
    client = make_app(
        JWT_JWKS_URL=jwks_server.url,
        JWKS_REFRESH_AFTER=0.2,
        JWKS_STALE_LIMIT=0.6,
        JWKS_RETRY_AFTER_FAILURE=0.05,
    ).test_client()
    token = sign(supabase_claims(clinic.id), jwks_server.current)
    assert client.get(URL, headers=bearer(token)).status_code == 200
    jwks_server.mode = "down"
    time.sleep(0.25)
    assert client.get(URL, headers=bearer(token)).status_code == 200  # stale, still trusted
    assert jwks_server.fetches == 2  # the refresh was tried
    time.sleep(0.4)
    assert_unauthorized(client.get(URL, headers=bearer(token)), UNAVAILABLE)


# -- the algorithm follows the key, never the header ------------------------------------------


def test_hs256_signed_with_a_published_public_key_is_refused(jwks_client, jwks_server, clinic):
    for key in jwks_server.keys:
        claims = supabase_claims(clinic.id, "admin")
        for header in (
            {"alg": "HS256", "typ": "JWT", "kid": key.kid},
            {"alg": "HS256", "typ": "JWT"},
        ):
            assert_unauthorized(
                jwks_client.get(URL, headers=bearer(forge(header, claims, key.public_pem())))
            )
        # The JWK's JSON as the secret, too.
        as_json = json.dumps(key.jwk).encode()
        token = forge({"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims, as_json)
        assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none_with_a_published_kid_is_refused(jwks_client, jwks_server, clinic, alg):
    header = {"alg": alg, "typ": "JWT", "kid": jwks_server.current.kid}
    token = forge(header, supabase_claims(clinic.id, "admin"), hmac_key=None)
    assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


@pytest.mark.parametrize(
    "key_alg, header_alg",
    [
        ("ES256", "ES384"),
        ("ES256", "RS256"),
        ("RS256", "RS512"),
        ("RS256", "PS256"),
        ("RS256", "ES256"),
    ],
)
def test_an_algorithm_the_key_does_not_name_is_refused(
    jwks_client,
    jwks_server,
    clinic,
    key_alg,
    header_alg,
):
    """A published key's kid with another algorithm in the header, validly signed in that one."""
    named = jwks_server.key(key_alg)
    if header_alg == "ES384":
        signer = ec.generate_private_key(ec.SECP384R1())
    elif header_alg.startswith(("RS", "PS")):
        signer = jwks_server.key("RS256").private_key
    else:
        signer = jwks_server.key("ES256").private_key
    claims = supabase_claims(clinic.id, "admin")
    token = jwt.encode(claims, signer, algorithm=header_alg, headers={"kid": named.kid})
    assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


def test_a_token_naming_another_keys_kid_is_refused(jwks_client, jwks_server, clinic):
    """Signed by the ES256 key but naming the RS256 key's kid (and vice versa)."""
    es, rs = jwks_server.key("ES256"), jwks_server.key("RS256")
    for signer, named in ((es, rs), (rs, es)):
        token = sign(supabase_claims(clinic.id), signer, kid=named.kid)
        assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


def test_an_asymmetric_token_without_a_kid_is_refused(jwks_client, jwks_server, clinic):
    token = jwt.encode(
        supabase_claims(clinic.id), jwks_server.current.private_key, algorithm="ES256"
    )
    assert "kid" not in jwt.get_unverified_header(token)
    assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


def test_a_symmetric_key_in_the_jwks_is_never_used(jwks_client, jwks_server, clinic):
    """An HMAC secret published in the JWKS (anyone can read it) verifies nothing."""
    secret = b"published-for-everyone-to-read-0123456789"
    jwks_server.publish_raw(
        {"kty": "oct", "kid": "oct-key", "alg": "HS256", "k": b64(secret), "use": "sig"}
    )
    token = forge(
        {"alg": "HS256", "typ": "JWT", "kid": "oct-key"},
        supabase_claims(clinic.id, "admin"),
        secret,
    )
    assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


def test_keys_not_meant_for_verifying_are_not_used(jwks_client, jwks_server, clinic):
    for override in ({"use": "enc"}, {"key_ops": ["encrypt"]}, {"alg": "ES384"}):
        key = SigningKey("ES256")
        jwks_server.publish_raw({**key.jwk, **override})
        token = sign(supabase_claims(clinic.id), key)
        assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # signing with it
def test_a_short_rsa_key_in_the_jwks_is_never_used(jwks_client, jwks_server, clinic):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    jwk = RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True)
    jwks_server.publish_raw(
        {**jwk, "alg": "RS256", "kid": "weak", "use": "sig", "key_ops": ["verify"]}
    )
    token = jwt.encode(supabase_claims(clinic.id), weak, algorithm="RS256", headers={"kid": "weak"})
    assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_times_written_as_strings_are_refused(jwks_client, jwks_server, clinic, claim):
    """PyJWT reads "1700000000" as a time; a token that writes it so is not Supabase's."""
    token = sign(
        supabase_claims(clinic.id, **{claim: str(int(time.time()) - 60)}), jwks_server.current
    )
    assert_unauthorized(jwks_client.get(URL, headers=bearer(token)))


# -- audience and issuer ------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud", ["anon", "service_role", "other-service", ["anon"], [], "", 7, {"aud": 1}]
)
def test_other_audiences_are_refused(jwks_client, jwks_server, clinic, aud):
    for key in (JWT_SECRET, jwks_server.current):
        token = sign(supabase_claims(clinic.id, aud=aud), key)
        assert_unauthorized(
            jwks_client.get(URL, headers=bearer(token)),
            "The token is not meant for this service (its audience).",
        )


def test_a_list_of_audiences_containing_authenticated_is_accepted(jwks_client, jwks_server, clinic):
    token = sign(
        supabase_claims(clinic.id, aud=["other-service", "authenticated"]), jwks_server.current
    )
    assert jwks_client.get(URL, headers=bearer(token)).status_code == 200


def test_a_token_without_aud_is_accepted(client, clinic):
    token = sign(supabase_claims(clinic.id, drop=("aud",)), JWT_SECRET)
    assert client.get(URL, headers=bearer(token)).status_code == 200


def test_the_audience_is_configurable(make_app, clinic):
    client = make_app(JWT_AUDIENCE="clinic-dashboard").test_client()
    assert (
        client.get(
            URL,
            headers=bearer(sign(supabase_claims(clinic.id, aud="clinic-dashboard"), JWT_SECRET)),
        ).status_code
        == 200
    )
    assert_unauthorized(
        client.get(URL, headers=bearer(sign(supabase_claims(clinic.id), JWT_SECRET)))
    )


def test_the_issuer_must_match_when_configured(make_app, jwks_server, clinic):
    client = make_app(JWT_JWKS_URL=jwks_server.url, JWT_ISSUER=ISSUER).test_client()
    other = "https://zyxwvutsrqponmlkjihg.supabase.co/auth/v1"
    message = "The token was not issued by the configured Supabase project."
    for key in (JWT_SECRET, jwks_server.current):
        token = sign(supabase_claims(clinic.id), key)
        assert client.get(URL, headers=bearer(token)).status_code == 200
        for claims in (
            supabase_claims(clinic.id, iss=other),
            supabase_claims(clinic.id, iss=ISSUER + "/"),
            supabase_claims(clinic.id, drop=("iss",)),
        ):
            assert_unauthorized(client.get(URL, headers=bearer(sign(claims, key))), message)
    # A list holding the issuer is not the issuer (PyJWT will not even encode one: forged by hand).
    listed = forge(
        {"alg": "HS256", "typ": "JWT"},
        supabase_claims(clinic.id, iss=[ISSUER]),
        JWT_SECRET.encode(),
    )
    assert_unauthorized(client.get(URL, headers=bearer(listed)), message)


def test_any_issuer_is_accepted_when_none_is_configured(client, clinic):
    token = sign(
        supabase_claims(clinic.id, iss="https://zyxwvutsrqponmlkjihg.supabase.co/auth/v1"),
        JWT_SECRET,
    )
    assert client.get(URL, headers=bearer(token)).status_code == 200


# -- 30 s of clock difference, no more ------------------------------------------------------
# Integer seconds, as Supabase writes them; rounded so that the test's own run time (well under a
# second) can only move a case away from the edge, never across it.


def leeway_cases():
    now = time.time()
    return {
        "exp 29 s ago": ({"exp": math.ceil(now) - 29, "iat": math.floor(now) - 3600}, True),
        "exp 31 s ago": ({"exp": math.floor(now) - 31, "iat": math.floor(now) - 3600}, False),
        "nbf 29 s ahead": ({"nbf": math.floor(now) + 29}, True),
        "nbf 31 s ahead": ({"nbf": math.ceil(now) + 31}, False),
        "iat 29 s ahead": ({"iat": math.floor(now) + 29}, True),
        "iat 31 s ahead": ({"iat": math.ceil(now) + 31}, False),
    }


@pytest.mark.parametrize("case", list(leeway_cases()))
@pytest.mark.parametrize("alg", ["HS256", "ES256"])
def test_leeway_edges(jwks_client, jwks_server, clinic, case, alg):
    claims_override, accepted = leeway_cases()[case]
    key = JWT_SECRET if alg == "HS256" else jwks_server.current
    token = sign(supabase_claims(clinic.id, **claims_override), key)
    response = jwks_client.get(URL, headers=bearer(token))
    if accepted:
        assert response.status_code == 200, response.json
    elif case.startswith("exp"):
        assert_unauthorized(response, "The token has expired.")
    else:
        assert_unauthorized(
            response, "The token is not valid yet: check the clock of the machine that made it."
        )


# -- what decides: app_metadata, never user_metadata --------------------------------------------


def test_user_metadata_decides_nothing(client, clinic, make_clinic):
    """A user can write their own user_metadata: naming another clinic or admin there changes nothing."""
    other = make_clinic()
    other.add_patient("Paciente Ajeno", "+50370000005")
    patient = clinic.add_patient("Con Dui", "+50370000006", dui="12345678-9")
    claims = supabase_claims(
        clinic.id,
        "staff",
        user_metadata={"clinic_id": other.id, "role": "admin", "app_metadata": {"role": "admin"}},
    )
    token = sign(claims, JWT_SECRET)
    assert names(client.get(URL, headers=bearer(token))) == ["Con Dui"]
    assert client.get(f"{URL}/{patient}", headers=bearer(token)).json["dui"] is None  # staff
    # And with nothing in app_metadata, user_metadata alone is no way in.
    only_user = supabase_claims(
        clinic.id, app_metadata={"provider": "email", "providers": ["email"]},
        user_metadata={"clinic_id": clinic.id, "role": "admin"},
    )  # fmt: skip
    assert_unauthorized(client.get(URL, headers=bearer(sign(only_user, JWT_SECRET))))


def test_an_anonymous_sign_in_is_refused(client, clinic):
    token = sign(supabase_claims(clinic.id, is_anonymous=True), JWT_SECRET)
    assert_unauthorized(
        client.get(URL, headers=bearer(token)), "An anonymous sign-in cannot use this service."
    )


# -- mint-token mints the same shape ------------------------------------------------------------


def test_mint_token_mints_the_supabase_shape(make_app, clinic):
    clinic.add_patient("Ana Minted", "+50370000007")
    app = make_app(JWT_ISSUER=ISSUER)
    result = app.test_cli_runner().invoke(
        args=["mint-token", "--clinic", clinic.id, "--role", "admin", "--sub", "ana@clinic"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        token, JWT_SECRET, algorithms=["HS256"], audience="authenticated", issuer=ISSUER
    )
    assert claims["sub"] == "ana@clinic"
    assert claims["role"] == "authenticated"
    assert claims["app_metadata"] == {"clinic_id": clinic.id, "role": "admin"}
    assert claims["exp"] - claims["iat"] == 12 * 3600
    assert abs(claims["iat"] - time.time()) < 5
    assert names(app.test_client().get(URL, headers=bearer(token))) == ["Ana Minted"]


def test_mint_token_without_an_issuer_leaves_iss_out(runner, clinic):
    result = runner.invoke(args=["mint-token", "--clinic", clinic.id])
    claims = jwt.decode(
        result.output.strip(), JWT_SECRET, algorithms=["HS256"], audience="authenticated"
    )
    assert "iss" not in claims
    assert claims["app_metadata"]["role"] == "staff"


# -- the same from the environment, under gunicorn ---------------------------------------------


@pytest.mark.slow
def test_gunicorn_reads_the_supabase_settings_from_the_environment(config, jwks_server, clinic):
    clinic.add_patient("Ana Gunicorn", "+50370000008")
    env = {"JWT_JWKS_URL": jwks_server.url, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": "authenticated"}
    with LiveServer(config, env=env, workers=1, threads=2) as server:
        for key in (jwks_server.key("ES256"), jwks_server.key("RS256"), JWT_SECRET):
            status, _, body = server.json(
                "GET", URL, headers=bearer(sign(supabase_claims(clinic.id), key))
            )
            assert status == 200, body
            assert [p["full_name"] for p in body["patients"]] == ["Ana Gunicorn"]
        other_project = supabase_claims(
            clinic.id, iss="https://zyxwvutsrqponmlkjihg.supabase.co/auth/v1"
        )
        status, _, body = server.json(
            "GET", URL, headers=bearer(sign(other_project, jwks_server.current))
        )
        assert (status, body["code"]) == (401, "UNAUTHORIZED")
    assert jwks_server.fetches == 1  # one worker, one fetch


def test_a_jwks_url_that_is_not_https_refuses_to_start(config):
    for url in (
        "http://abcdefghijklmnopqrst.supabase.co/auth/v1/.well-known/jwks.json",
        "file:///etc/passwd",
        "jwks.json",
    ):
        with pytest.raises(ConfigError, match="JWT_JWKS_URL"):
            create_app({**config, "JWT_JWKS_URL": url})


def test_the_openapi_bearer_scheme_says_what_is_accepted(client):
    """The description follows the rules in patients/tokens.py (algorithms, leeway, settings)."""
    spec = client.get("/api/openapi.json").json
    described = spec["components"]["securitySchemes"]["bearerAuth"]["description"]
    for fact in (
        *tokens.ASYMMETRIC,
        "HS256",
        "`kid`",
        f"{tokens.LEEWAY_SECONDS} s",
        "JWT_SECRET",
        "JWT_JWKS_URL",
        "JWT_AUDIENCE",
        "JWT_ISSUER",
        "`alg: none`",
        "`anon`",
        "`service_role`",
        "app_metadata.clinic_id",
        "`user_metadata` is never read",
    ):
        assert fact in described, fact
