"""POST /api/patients/import and its template (issue 6)"""

from flask import Blueprint

bp = Blueprint("imports", __name__)
