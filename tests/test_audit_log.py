"""GET /api/audit: admins only, the caller's clinic only, newest first, paged and filterable."""

import datetime as dt
import uuid

import pytest
from psycopg.types.json import Jsonb

URL = "/api/audit"


def add_entry(sql, clinic, action="patients.export", patient_id=None, created_at=None, **details):
    return sql.execute(
        "INSERT INTO audit_log (clinic_id, actor_id, actor_role, action, patient_id, details, created_at) "
        "VALUES (%s, 'user-9', 'admin', %s, %s, %s, coalesce(%s, now())) RETURNING id",
        (clinic.id, action, patient_id, Jsonb(details), created_at),
    ).fetchone()["id"]


def get(client, clinic, role="admin", **params):
    return client.get(URL, query_string=params, headers=clinic.headers(role))


def test_staff_may_not_read_the_audit_trail(client, clinic):
    add_entry(clinic.sql, clinic)
    response = get(client, clinic, role="staff")
    assert response.status_code == 403
    assert response.json["code"] == "FORBIDDEN"
    assert client.get(URL).status_code == 401


def test_actions_done_through_the_api_are_listed_newest_first(client, clinic):
    patient_id = clinic.add_patient(dui="12345678-9")
    assert (
        client.get(f"/api/patients/{patient_id}", headers=clinic.headers("admin")).status_code
        == 200
    )
    client.patch(
        f"/api/patients/{patient_id}/block",
        json={"blocked": True, "reason": "spam"},
        headers={**clinic.headers("staff", sub="user-7"), "X-Request-ID": "req-7"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )

    response = get(client, clinic)
    assert response.status_code == 200
    body = response.json
    assert body["total"] == 2 and body["page"] == 1 and body["limit"] == 50
    block, reveal = body["entries"]
    assert list(block) == [
        "id",
        "created_at",
        "action",
        "actor_id",
        "actor_role",
        "patient_id",
        "details",
        "request_id",
        "client_ip",
    ]
    assert block["action"] == "patient.block"
    assert block["actor_id"] == "user-7" and block["actor_role"] == "staff"
    assert block["patient_id"] == patient_id and block["request_id"] == "req-7"
    assert block["details"] == {"from": False, "to": True, "reason": "spam", "dropped_messages": 0}
    assert dt.datetime.fromisoformat(block["created_at"]).tzinfo is not None
    assert block["created_at"].endswith("Z")
    assert block["client_ip"] == "198.51.100.7"
    assert reveal["action"] == "dui.reveal" and reveal["actor_role"] == "admin"
    assert reveal["client_ip"] == "127.0.0.1"  # the test client's default peer
    assert "12345678" not in response.get_data(as_text=True)


def test_paging_walks_every_entry_once_in_order(client, clinic, sql):
    same_instant = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    ids = [add_entry(sql, clinic, created_at=same_instant) for _ in range(3)]
    ids += [
        add_entry(sql, clinic, created_at=same_instant + dt.timedelta(minutes=m)) for m in (1, 2)
    ]
    expected = [ids[4], ids[3], ids[2], ids[1], ids[0]]  # newest first, then highest id

    seen = []
    for page in (1, 2, 3):
        body = get(client, clinic, page=page, limit=2).json
        assert body["total"] == 5 and body["page"] == page and body["limit"] == 2
        seen += [entry["id"] for entry in body["entries"]]
    assert seen == expected
    past_the_end = get(client, clinic, page=4, limit=2).json
    assert past_the_end == {"entries": [], "total": 5, "page": 4, "limit": 2}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"patient_id": "not-a-uuid"}, "patient_id"),
        ({"patient_id": "1"}, "patient_id"),
        ({"patient_id": "a\x00b"}, "patient_id"),
        ({"action": "patient.delete"}, "action"),
        ({"action": "x" * 101}, "action"),
    ],
)
def test_bad_parameters_are_validation_errors(client, clinic, params, field):
    response = get(client, clinic, **params)
    assert response.status_code == 400
    assert response.json["code"] == "VALIDATION_ERROR"
    assert response.json["details"]["field"] == field


def test_filters_by_patient_and_by_action(client, clinic, sql):
    ana, juan = str(uuid.uuid4()), str(uuid.uuid4())
    add_entry(sql, clinic, "dui.reveal", ana)
    add_entry(sql, clinic, "patient.block", ana)
    add_entry(sql, clinic, "patient.block", juan)
    add_entry(sql, clinic, "patients.import", created=3)

    def listed(**params):
        body = get(client, clinic, **params).json
        assert body["total"] == len(body["entries"])
        return [(e["action"], e["patient_id"]) for e in body["entries"]]

    assert listed(patient_id=ana) == [("patient.block", ana), ("dui.reveal", ana)]
    assert listed(patient_id=ana.upper()) == listed(patient_id=ana)
    assert listed(action="patient.block") == [("patient.block", juan), ("patient.block", ana)]
    assert listed(action="patient.block", patient_id=juan) == [("patient.block", juan)]
    assert listed(action="patients.import") == [("patients.import", None)]
    assert listed(action="patients.export") == []
    assert len(listed()) == 4
    # An empty filter is refused, never read as "no filter": that would list everyone's rows
    # where one patient's were asked for (tests/test_hostile.py has the other parameters).
    for empty in ("patient_id", "action"):
        response = get(client, clinic, **{empty: ""})
        assert response.status_code == 400
        assert response.json["details"]["field"] == empty


def test_only_the_callers_clinic_is_listed(client, clinic, make_clinic, sql):
    other = make_clinic()
    theirs = other.add_patient()
    add_entry(sql, other, "patient.block", theirs)
    add_entry(sql, other, "patients.export")
    mine = add_entry(sql, clinic, "patients.export")

    body = get(client, clinic).json
    assert body["total"] == 1 and [e["id"] for e in body["entries"]] == [mine]
    assert get(client, clinic, patient_id=theirs).json == {
        "entries": [],
        "total": 0,
        "page": 1,
        "limit": 50,
    }
    assert get(client, other).json["total"] == 2


def test_a_row_written_without_an_address_lists_it_as_null(client, clinic, sql):
    # Other services insert only the contract's columns.
    add_entry(sql, clinic, "patients.export")
    [entry] = get(client, clinic).json["entries"]
    assert entry["client_ip"] is None


def block_as(client, clinic, patient_id, forwarded_for, peer="198.51.100.7"):
    response = client.patch(
        f"/api/patients/{patient_id}/block",
        json={"blocked": True},
        headers={**clinic.headers(), "X-Forwarded-For": forwarded_for},
        environ_base={"REMOTE_ADDR": peer},
    )
    assert response.status_code == 200, response.json
    [row] = [row for row in clinic.audit("patient.block") if str(row["patient_id"]) == patient_id]
    return row["client_ip"] and str(row["client_ip"])


@pytest.fixture
def app_trusting(config):
    """An app that trusts `hops` proxies' X-Forwarded-For (TRUSTED_PROXIES)."""
    from app import create_app

    apps = []

    def make(hops):
        apps.append(create_app({**config, "TRUSTED_PROXIES": hops, "POOL_MAX_SIZE": 1}))
        return apps[-1].test_client()

    yield make
    for app in apps:
        app.extensions["pool"].close()


def test_forwarded_headers_are_ignored_unless_proxies_are_trusted(client, clinic, app_trusting):
    # The default (TRUSTED_PROXIES=0): whoever reaches the app chose nothing; the peer is recorded.
    patient = clinic.add_patient("Ana Gómez", "+50377650000")
    assert block_as(client, clinic, patient, "203.0.113.9") == "198.51.100.7"
    # One proxy in front (nginx, a platform's router): the address it appended, not what the
    # client wrote before it.
    other = clinic.add_patient("Juan Pérez", "+50377654321")
    trusting = app_trusting(1)
    assert block_as(trusting, clinic, other, "203.0.113.9, 192.0.2.44") == "192.0.2.44"


def test_an_address_that_is_not_one_is_recorded_as_unknown(clinic, app_trusting):
    # Two hops trusted where the chain has one: the client's own text reaches remote_addr. The
    # action still goes through; the audit does not pretend it is an address.
    patient = clinic.add_patient("Ana Gómez", "+50377650000")
    trusting = app_trusting(2)
    assert block_as(trusting, clinic, patient, "04567891-2, 192.0.2.44") is None
