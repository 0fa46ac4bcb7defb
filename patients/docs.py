"""GET /api/openapi.json and the API docs page (issue 9)"""

from flask import Blueprint

bp = Blueprint("docs", __name__)
