"""Schemathesis against a live gunicorn: generated requests for every described operation, sent
with the tokens of a Pro and a Basic clinic, as admin and as staff. No answer is a 5xx, and every
answer (status, content type, headers, body) is one the description promises.

Plus property tests (hypothesis) on search terms through the app.
"""

import os
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from patients.api import docs
from tests.live import report

pytestmark = pytest.mark.slow

# Bounded so the suite stays fast; FUZZ_EXAMPLES=500 for a deeper run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TALLY = {"requests": 0, "5xx": 0}


@pytest.fixture(scope="module")
def identities(make_clinic_for_module):
    """(name, headers, a patient id of that clinic) for each plan and role."""
    found = []
    for plan in ("pro", "basic"):
        clinic = make_clinic_for_module(plan=plan)
        patient = clinic.add_patient("Fuzz Pérez", "+50370001111", dui="12345678-9", notes="n")
        doctor = clinic.add_doctor()
        clinic.add_appointment(patient, doctor, "2026-01-02")
        for role in ("admin", "staff"):
            found.append((f"{plan}-{role}", clinic.headers(role), patient))
    return found


@pytest.fixture(scope="module")
def make_clinic_for_module(sql, app):
    from tests.helpers import Clinic

    keys = app.extensions["dui_keys"]
    return lambda **kwargs: Clinic(sql, keys, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def report_tally(request):
    yield
    if TALLY["requests"]:
        report(
            request,
            f"fuzz: {TALLY['requests']} requests, {TALLY['5xx']} answered 5xx "
            f"({EXAMPLES} examples per operation and mode, 4 identities each)",
        )


# The description as served; loaded without a server (schemathesis only reads it here).
SCHEMA = schemathesis.openapi.from_dict(docs.spec())
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}
# Negative cases need something to break: operations without parameters or body have none.
CASES = sorted(
    (label, mode)
    for label, op in OPERATIONS.items()
    for mode in GenerationMode
    if mode == GenerationMode.POSITIVE or op.definition.raw.get("parameters") or op.body
)


# schemathesis's own pytest integration (`from_fixture`) does not run under pytest 9, so each
# operation's strategy drives a plain hypothesis test.
@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{c[0]}-{c[1].value}" for c in CASES])
def test_api_answers_as_described(label, mode, http_server, identities):
    operation = OPERATIONS[label]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        send_as_everyone(case, http_server, identities)

    run()


def send_as_everyone(case, server, identities):
    for _name, headers, patient_id in identities:
        variants = [case.path_parameters]
        if case.path_parameters and "patient_id" in case.path_parameters:
            # Random ids only ever reach the 404 path; the clinic's own patient reaches the rest.
            variants.append({**case.path_parameters, "patient_id": patient_id})
        for path_parameters in variants:
            case.path_parameters = path_parameters
            sent = headers if case.operation.path.startswith("/api/") else {}
            response = case.call(base_url=server.url, headers=sent, timeout=15)
            TALLY["requests"] += 1
            TALLY["5xx"] += response.status_code >= 500
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            case.validate_response(response, checks=CHECKS)


def test_a_tenant_token_is_really_used(http_server, identities):
    """The fuzzing above would be hollow if its tokens were refused: they are not."""
    for name, headers, patient_id in identities:
        status, _, body = http_server.json("GET", f"/api/patients/{patient_id}", headers=headers)
        assert status == 200, name
        assert body["dui"] == ("12345678-9" if name.endswith("admin") else None)


# -- search terms ------------------------------------------------------------------------

TERMS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(term=TERMS)
def test_any_search_term_is_an_answer_not_an_error(client, clinic, term):
    response = client.get("/api/patients", query_string={"search": term}, headers=clinic.headers())
    if "\x00" in term or len(term) > 100:
        assert response.status_code == 400
        assert response.json["code"] == "VALIDATION_ERROR"
    else:
        # The clinic has no patients: any term is an empty, well-formed page.
        assert response.status_code == 200, response.json
        assert response.json == {"patients": [], "total": 0, "page": 1, "limit": 50}


NAME_CHARS = st.characters(
    codec="utf-8",
    categories=["L", "N", "P", "Zs"],
    exclude_characters="\x00",
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.text(NAME_CHARS, min_size=3, max_size=40), data=st.data())
def test_a_piece_of_a_name_finds_it(client, make_clinic, name, data):
    """Any piece of a stored name, wildcards and backslashes included, finds that patient."""
    name = name.strip()
    assume(len(name) >= 3)
    start = data.draw(st.integers(0, len(name) - 1))
    end = data.draw(st.integers(start + 1, len(name)))
    piece = name[start:end]
    assume(piece.strip())
    clinic = make_clinic()
    wanted = clinic.add_patient(name, "+50370002222")
    clinic.add_patient("Zz Otro", "+50370003333")
    response = client.get("/api/patients", query_string={"search": piece}, headers=clinic.headers())
    assert response.status_code == 200
    assert wanted in [p["id"] for p in response.json["patients"]], (name, piece)


def test_search_wildcards_are_literal(client, clinic):
    clinic.add_patient("Ana 100% Real", "+50370004444")
    clinic.add_patient("Ana Otra", "+50370005555")
    for term, expected in [("%", 1), ("_", 0), ("100%", 1), ("\\", 0), (str(uuid.uuid4()), 0)]:
        response = client.get(
            "/api/patients", query_string={"search": term}, headers=clinic.headers()
        )
        assert response.json["total"] == expected, term
