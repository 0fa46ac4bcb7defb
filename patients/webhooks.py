"""the WhatsApp Cloud API inbound webhook (issue 7)"""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)
