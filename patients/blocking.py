"""PATCH /api/patients/<id>/block (issue 7)"""

from flask import Blueprint

bp = Blueprint("blocking", __name__)
