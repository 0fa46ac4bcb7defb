"""GET /api/audit, the audit trail for admins (issue 7)"""

from flask import Blueprint

bp = Blueprint("audit_log", __name__)
