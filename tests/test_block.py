"""PATCH /api/patients/{id}/block: the body contract, the answer's shape, tenant isolation, the audit
row, and the chatbot's queue emptied of the patient's waiting messages."""

import json
import uuid

import pytest


def url(patient_id):
    return f"/api/patients/{patient_id}/block"


def patch(client, clinic, patient_id, body, role="staff", **kwargs):
    return client.patch(url(patient_id), json=body, headers=clinic.headers(role), **kwargs)


def queue_message(sql, clinic, sender, message_id=None, processed=False):
    sql.execute(
        "INSERT INTO inbound_messages (clinic_id, message_id, sender_phone, body, processed_at) "
        "VALUES (%s, %s, %s, 'hola', CASE WHEN %s THEN now() END)",
        (clinic.id, message_id or f"wamid.{uuid.uuid4().hex}", sender, processed),
    )


def waiting(sql, clinic):
    return sql.execute(
        "SELECT sender_phone, processed_at IS NOT NULL AS processed FROM inbound_messages "
        "WHERE clinic_id = %s ORDER BY sender_phone, processed",
        (clinic.id,),
    ).fetchall()


@pytest.mark.parametrize("role", ["admin", "staff"])
def test_block_and_unblock_answer_the_list_item(client, clinic, role):
    patient_id = clinic.add_patient(email="juan@example.com", no_show_count=2)

    blocked = patch(client, clinic, patient_id, {"blocked": True}, role=role)
    assert blocked.status_code == 200, blocked.json
    listed = client.get("/api/patients", headers=clinic.headers()).json["patients"]
    assert blocked.json == listed[0]
    assert list(blocked.json) == list(listed[0])  # same fields, same order
    assert blocked.json["is_blocked"] is True and blocked.json["id"] == patient_id
    assert clinic.patients()[0]["is_blocked"] is True

    unblocked = patch(client, clinic, patient_id, {"blocked": False}, role=role)
    assert unblocked.status_code == 200
    assert unblocked.json == {**blocked.json, "is_blocked": False}
    assert clinic.patients()[0]["is_blocked"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "blocked"),
        ({"blocked": "true"}, "blocked"),
        ({"blocked": 1}, "blocked"),
        ({"blocked": None}, "blocked"),
        ({"blocked": [True]}, "blocked"),
        ({"blocked": True, "extra": 1}, "extra"),
        ({"blocked": True, "is_blocked": True}, "is_blocked"),
        ({"blocked": True, "reason": 5}, "reason"),
        ({"blocked": True, "reason": ["spam"]}, "reason"),
        ({"blocked": True, "reason": "x" * 501}, "reason"),
        ({"blocked": True, "reason": "a\x00b"}, "reason"),
        ([{"blocked": True}], "body"),
        (True, "body"),
        ("blocked", "body"),
        (None, "body"),
    ],
)
def test_bad_bodies_are_validation_errors(client, clinic, body, field):
    patient_id = clinic.add_patient()
    response = patch(client, clinic, patient_id, body)
    assert response.status_code == 400
    assert response.json["code"] == "VALIDATION_ERROR"
    assert response.json["details"]["field"] == field
    assert clinic.patients()[0]["is_blocked"] is False
    assert clinic.audit() == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "", "content_type": "application/json"},
        {"data": "{blocked: true}", "content_type": "application/json"},
        {"data": "blocked=true", "content_type": "application/x-www-form-urlencoded"},
        {"data": b"\xff\xfe", "content_type": "application/json"},
        {},
    ],
)
def test_missing_or_non_json_body(client, clinic, kwargs):
    patient_id = clinic.add_patient()
    response = client.patch(url(patient_id), headers=clinic.headers(), **kwargs)
    assert response.status_code == 400
    assert response.json["code"] == "VALIDATION_ERROR"
    assert response.json["details"]["field"] == "body"
    assert clinic.patients()[0]["is_blocked"] is False


def test_a_body_over_the_upload_limit_is_413_and_changes_nothing(client, clinic):
    patient_id = clinic.add_patient()
    body = json.dumps({"blocked": True, "reason": "x" * (6 * 1024 * 1024)})
    response = client.patch(
        url(patient_id), data=body, content_type="application/json", headers=clinic.headers()
    )
    assert response.status_code == 413
    assert response.json["code"] == "FILE_TOO_LARGE"
    assert clinic.patients()[0]["is_blocked"] is False


def test_json_without_content_type_is_read(client, clinic):
    """curl -d '{"blocked":true}' sends a form content type; the body is still JSON."""
    patient_id = clinic.add_patient()
    response = client.patch(
        url(patient_id), data=json.dumps({"blocked": True}), headers=clinic.headers()
    )
    assert response.status_code == 200
    assert response.json["is_blocked"] is True


def test_another_clinics_patient_is_not_found_and_unchanged(client, clinic, make_clinic, sql):
    other = make_clinic()
    theirs = other.add_patient()
    queue_message(sql, other, "+50377654321")
    for target in (theirs, str(uuid.uuid4()), "not-a-uuid", "1"):
        response = patch(client, clinic, target, {"blocked": True}, role="admin")
        assert response.status_code == 404, target
        assert response.json["code"] == "NOT_FOUND"
    assert other.patients()[0]["is_blocked"] is False
    assert other.audit() == [] and clinic.audit() == []
    assert len(waiting(sql, other)) == 1


def test_not_found_beats_a_bad_body_for_a_malformed_id(client, clinic):
    assert patch(client, clinic, "nope", {"blocked": "yes"}).status_code == 404


def test_audit_row_keeps_who_from_what_to_what_and_the_reason(client, clinic):
    patient_id = clinic.add_patient()
    response = client.patch(
        url(patient_id),
        json={"blocked": True, "reason": "  Mensajes ofensivos  "},
        headers={**clinic.headers("staff", sub="user-42"), "X-Request-ID": "req-block-1"},
    )
    assert response.status_code == 200
    patch(client, clinic, patient_id, {"blocked": False}, role="admin")

    block, unblock = clinic.audit()
    assert block["action"] == "patient.block"
    assert block["actor_id"] == "user-42" and block["actor_role"] == "staff"
    assert str(block["patient_id"]) == patient_id
    assert block["request_id"] == "req-block-1"
    assert block["details"] == {
        "from": False,
        "to": True,
        "reason": "Mensajes ofensivos",
        "dropped_messages": 0,
    }
    assert block["created_at"] is not None
    assert unblock["action"] == "patient.unblock"
    assert unblock["actor_role"] == "admin"
    assert unblock["details"] == {"from": True, "to": False, "reason": None, "dropped_messages": 0}


def test_setting_the_same_value_again_is_not_audited(client, clinic):
    patient_id = clinic.add_patient()
    patch(client, clinic, patient_id, {"blocked": True})
    before = clinic.patients()[0]["updated_at"]
    again = patch(client, clinic, patient_id, {"blocked": True, "reason": "twice"})
    assert again.status_code == 200 and again.json["is_blocked"] is True
    assert [row["action"] for row in clinic.audit()] == ["patient.block"]
    assert clinic.patients()[0]["updated_at"] == before

    unblock_unblocked = patch(
        client, clinic, clinic.add_patient(phone="+50370000001"), {"blocked": False}
    )
    assert unblock_unblocked.status_code == 200
    assert len(clinic.audit()) == 1


def test_blocking_drops_the_patients_waiting_messages(client, clinic, make_clinic, sql):
    patient_id = clinic.add_patient(phone="+50377654321")
    queue_message(sql, clinic, "+50377654321")
    queue_message(sql, clinic, "+50377654321")
    queue_message(sql, clinic, "+50377654321", processed=True)  # answered before: history stays
    queue_message(sql, clinic, "+50370000000")  # someone else
    other = make_clinic()
    queue_message(sql, other, "+50377654321")  # same number, another clinic

    response = patch(client, clinic, patient_id, {"blocked": True})
    assert response.status_code == 200
    assert waiting(sql, clinic) == [
        {"sender_phone": "+50370000000", "processed": False},
        {"sender_phone": "+50377654321", "processed": True},
    ]
    assert len(waiting(sql, other)) == 1
    assert clinic.audit("patient.block")[0]["details"]["dropped_messages"] == 2


def test_unblocking_keeps_waiting_messages(client, clinic, sql):
    patient_id = clinic.add_patient(phone="+50377654321", is_blocked=True)
    queue_message(sql, clinic, "+50377654321")
    assert patch(client, clinic, patient_id, {"blocked": False}).status_code == 200
    assert len(waiting(sql, clinic)) == 1


def test_blocked_filter_of_the_list_sees_the_change(client, clinic):
    patient_id = clinic.add_patient()
    clinic.add_patient(full_name="Otra", phone="+50370000002")
    patch(client, clinic, patient_id, {"blocked": True})
    listed = client.get("/api/patients?blocked=true", headers=clinic.headers()).json
    assert listed["total"] == 1 and listed["patients"][0]["id"] == patient_id


def test_requires_a_token_and_only_patch(client, clinic):
    patient_id = clinic.add_patient()
    assert client.patch(url(patient_id), json={"blocked": True}).status_code == 401
    response = client.post(url(patient_id), json={"blocked": True}, headers=clinic.headers())
    assert response.status_code == 405
    assert clinic.patients()[0]["is_blocked"] is False
