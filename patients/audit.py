"""Writing the audit trail: who did what to which patient, when, from where, in the transaction
that did it."""

import ipaddress

from psycopg.types.json import Jsonb

from patients.repository import queries
from patients.tokens import Caller

ACTIONS = {
    "dui.reveal",
    "patient.block",
    "patient.unblock",
    "patients.import",
    "patients.export",
}


def record(
    conn,
    who: Caller,
    action: str,
    *,
    patient_id: str | None = None,
    details: dict | None = None,
    request_id: str | None = None,
    client_ip: str | None = None,
) -> None:
    """`client_ip`: the caller's address as the web server has it (behind the reverse proxy, the
    address the proxy saw)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action}")
    queries.record_audit(
        conn,
        clinic_id=who.clinic_id,
        actor_id=who.user_id,
        actor_role=who.role,
        action=action,
        patient_id=patient_id,
        details=Jsonb(details or {}),
        request_id=request_id,
        client_ip=address(client_ip),
    )


def address(value: str | None) -> str | None:
    """An IP address as the `inet` column takes it, or None.

    The address comes from the socket or from a trusted proxy's X-Forwarded-For; a proxy chain
    configured with more hops than it has can hand over any text a client sent, and that must
    neither fail the action being audited nor be stored as if it were an address.
    """
    if not value:
        return None
    try:
        # A link-local IPv6 address may carry its zone (fe80::1%eth0); inet has no place for it.
        return str(ipaddress.ip_address(value.strip().split("%", 1)[0]))
    except ValueError:
        return None
