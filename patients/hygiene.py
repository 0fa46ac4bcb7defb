"""What every request and response gets, whatever the route: input the views never have to fear,
and headers that keep patient data out of caches and browsers' guesses.

- A query string that is not UTF-8 is a 400 (werkzeug would quietly turn the bytes into U+FFFD,
  and a search for mojibake would answer 200).
- JSON nested so deep that the parser gives up (RecursionError) is a 400, not a 500.
- Every answer except the docs page's static assets gets `Cache-Control: no-store`: /api answers
  carry patient data, and an error or a health check cached by a proxy helps no one either.
- `X-Content-Type-Options: nosniff` everywhere, so a CSV or JSON body is never run as a script.
"""

from urllib.parse import unquote_to_bytes

from flask import Flask, request

from patients.errors import APIError, render, validation_error

CACHEABLE_ENDPOINTS = {"docs.asset"}


def check_query_string() -> None:
    raw = request.environ.get("QUERY_STRING", "")
    if not raw:
        return
    try:
        unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
        # The WSGI server hands the raw bytes over as latin-1; re-encoding recovers them.
        raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise validation_error("query", "is not valid UTF-8") from None


def init_app(app: Flask) -> None:
    app.before_request(check_query_string)

    @app.errorhandler(RecursionError)
    def too_deep(exc):
        return render(
            APIError(
                400,
                "VALIDATION_ERROR",
                "The request body is nested too deeply.",
                {"field": "body", "reason": "is nested too deeply"},
            )
        )

    @app.after_request
    def hygiene_headers(response):
        if request.endpoint not in CACHEABLE_ENDPOINTS or response.status_code != 200:
            response.headers["Cache-Control"] = "no-store"
            response.headers.pop("Expires", None)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
