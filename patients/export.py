"""GET /api/patients/export (issue 5)"""

from flask import Blueprint

bp = Blueprint("export", __name__)
