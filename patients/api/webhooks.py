"""The WhatsApp Cloud API inbound webhook that the chatbot sits behind (/webhooks/whatsapp).

Outside /api: Meta calls it, so it is authenticated by the X-Hub-Signature-256 HMAC of the raw body
with WHATSAPP_APP_SECRET, not by a bearer token, and the clinic comes from the number that received
the message. Messages from a blocked patient are dropped here, so the chatbot never sees them; the
reading and storing is patients/whatsapp.py.
"""

import hmac
import json
import logging

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from patients import db, whatsapp
from patients.api.errors import APIError, too_large, validation_error
from patients.messages import N_

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)

# Meta's deliveries are a few KB; anything near this is not from Meta.
MAX_BODY_BYTES = 256 * 1024
MAX_CHALLENGE_LENGTH = 256


@bp.get("/whatsapp")
def verify_subscription():
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token is ours."""
    expected = current_app.config.get("WHATSAPP_VERIFY_TOKEN") or ""
    token = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge")
    token_ok = hmac.compare_digest(token.encode(), expected.encode())
    if (
        not expected
        or not token_ok
        or request.args.get("hub.mode") != "subscribe"
        or not challenge
        or len(challenge) > MAX_CHALLENGE_LENGTH
    ):
        raise APIError(403, "FORBIDDEN", N_("The subscription request is not valid."))
    return Response(challenge, mimetype="text/plain")


@bp.post("/whatsapp")
def receive():
    raw = read_body()
    signature = request.headers.get("X-Hub-Signature-256", "")
    if not whatsapp.signed_by_meta(raw, signature, current_app.config.get("WHATSAPP_APP_SECRET")):
        raise APIError(
            401, "UNAUTHORIZED", N_("The X-Hub-Signature-256 signature is missing or wrong.")
        )
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise validation_error("body", N_("is not valid JSON")) from None
    if not isinstance(payload, dict):
        raise validation_error("body", N_("must be a JSON object"))

    delivery = whatsapp.read_delivery(payload)
    with db.connection() as conn:
        counts = whatsapp.store_delivery(conn, delivery)
    log.info("whatsapp delivery: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def read_body() -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large(f"{MAX_BODY_BYTES // 1024} KB")
    request.max_content_length = MAX_BODY_BYTES  # also bounds a body sent without Content-Length
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large(f"{MAX_BODY_BYTES // 1024} KB") from None
