"""Response headers that keep patient data out of caches and browsers' guesses.

Every answer except the docs page's static assets gets `Cache-Control: no-store`: /api answers carry
patient data, and an error or a health check cached by a proxy helps no one either.
`X-Content-Type-Options: nosniff` everywhere, so a CSV or JSON body is never run as a script or page.
"""

from flask import Flask, request

CACHEABLE_ENDPOINTS = {"docs.asset"}


def init_app(app: Flask) -> None:
    @app.after_request
    def hygiene_headers(response):
        if request.endpoint not in CACHEABLE_ENDPOINTS or response.status_code != 200:
            response.headers["Cache-Control"] = "no-store"
            response.headers.pop("Expires", None)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
