"""GET /api/openapi.json (the OpenAPI 3.1 description) and GET /api/docs (Swagger UI over it).

The description is written by hand, one fragment per endpoint group in patients/api/apispec/*.json
(base.json holds info, security and the shared components), and merged once at first use.
tests/test_openapi.py fails when a route and the description disagree.

The docs page's scripts and styles come from the pinned `flask-swagger-ui` package (it ships the
Swagger UI dist), served by us: no CDN, so the page works behind a firewall and leaks nothing.
"""

import functools
import json
import string
from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, send_from_directory, url_for

from patients.api.auth import public

bp = Blueprint("docs", __name__, url_prefix="/api")

SPEC_DIR = Path(__file__).resolve().parent / "apispec"
SWAGGER_DIST = Path(str(files("flask_swagger_ui") / "dist"))
# Only what the page loads; nothing else in the package folder is served.
ASSETS = {"swagger-ui.css", "index.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"}
ASSETS |= {"favicon-16x16.png", "favicon-32x32.png"}

# Absolute URLs (filled in per request, so a SCRIPT_NAME prefix is kept): the same page answers at
# /api/docs and /api/docs/, where relative ones would point to different folders.
PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>Patients API</title>
  <link rel="stylesheet" href="$assets/swagger-ui.css">
  <link rel="stylesheet" href="$assets/index.css">
  <link rel="icon" type="image/png" href="$assets/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="$assets/swagger-ui-bundle.js"></script>
  <script src="$assets/swagger-ui-standalone-preset.js"></script>
  <script>
    window.onload = function () {
      window.ui = SwaggerUIBundle({
        url: "$description",
        dom_id: "#swagger-ui",
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout",
        deepLinking: true,
        validatorUrl: null,
      });
    };
  </script>
</body>
</html>
""")


@functools.cache
def spec() -> dict:
    """base.json with every other fragment's paths and components merged in; a clash is an error."""
    document = json.loads((SPEC_DIR / "base.json").read_text())
    for path in sorted(SPEC_DIR.glob("*.json")):
        if path.name == "base.json":
            continue
        fragment = json.loads(path.read_text())
        for route, item in fragment.get("paths", {}).items():
            if route in document["paths"]:
                raise ValueError(f"{path.name}: {route} is described twice")
            document["paths"][route] = item
        for kind, entries in fragment.get("components", {}).items():
            target = document["components"].setdefault(kind, {})
            for name, entry in entries.items():
                if name in target:
                    raise ValueError(f"{path.name}: components.{kind}.{name} is defined twice")
                target[name] = entry
    return document


@bp.get("/openapi.json")
@public
def openapi():
    return jsonify(spec())


@bp.get("/docs")
@bp.get("/docs/")  # served, not redirected: a browser's address bar often adds the slash
@public
def page():
    html = PAGE.substitute(
        assets=url_for("docs.page", _external=False).rstrip("/"),
        description=url_for("docs.openapi"),
    )
    return Response(html, mimetype="text/html")


@bp.get("/docs/<name>")
@public
def asset(name):
    if name not in ASSETS:
        abort(404)
    return send_from_directory(SWAGGER_DIST, name, max_age=86400)
