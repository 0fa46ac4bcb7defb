"""The language a person reads: Spanish when the request's Accept-Language prefers `es`, English
otherwise, through Flask-Babel and the gettext catalogs in `translations/`.

The rules write English templates marked with `N_` (patients/messages.py); they are translated
here, at render time, with the request's locale. The catalogs are `.po` files in the repository;
their compiled `.mo` files are build output (git-ignored): `make setup` compiles them with
`pybabel compile`, and `init_app` compiles any that are missing or older than their `.po`, so a
fresh clone, a deploy that never ran make, and a catalog just edited all answer in Spanish.
"""

import logging
import os
import tempfile
from pathlib import Path

import flask_babel
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, has_request_context, request

log = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).resolve().parents[2] / "translations"
DEFAULT_LANGUAGE = "en"  # the language the templates are written in
LANGUAGES = ("en", "es")


def select_locale() -> str:
    if not has_request_context():
        return DEFAULT_LANGUAGE
    # Quality values decide (`en;q=0.5, es` is Spanish), regional tags fall back to their
    # language (`es-SV` is `es`), anything else is English.
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[Path]:
    """Compile every `.po` whose `.mo` is missing or older (what `pybabel compile` does); the
    files written. Each `.mo` is written beside and renamed into place, so workers starting at once
    never read half a file."""
    written = []
    for po in sorted(directory.glob("*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=po.parent.parent.name)
        handle, temporary = tempfile.mkstemp(dir=po.parent, suffix=".mo.tmp")
        try:
            with os.fdopen(handle, "wb") as target:
                write_mo(target, catalog)
            os.replace(temporary, mo)
        except BaseException:
            os.unlink(temporary)
            raise
        written.append(mo)
    return written


def init_app(app: Flask) -> None:
    try:
        for mo in compile_catalogs():
            log.info("compiled translation catalog %s", mo.relative_to(TRANSLATIONS))
    except OSError as exc:
        # A read-only deploy whose .po looks newer still starts: with the catalogs it has, or in
        # English where there are none (`make setup` compiles them at build time).
        log.warning("translation catalogs could not be compiled: %s", type(exc).__name__)
    flask_babel.Babel(
        app,
        configure_jinja=False,
        default_locale=DEFAULT_LANGUAGE,
        default_translation_directories=str(TRANSLATIONS),
        locale_selector=select_locale,
    )


def vary_by_language(response) -> None:
    """The same URL answers in two languages: a shared cache must key on the header.

    Called by the one after-request hook (patients/api/middleware.py). Most answers have no Vary
    yet: the header is then written as it is, not parsed into a set and joined back.
    """
    if "Vary" in response.headers:
        response.vary.add("Accept-Language")
    else:
        response.headers["Vary"] = "Accept-Language"


def gettext(message: str, params: dict | None = None) -> str:
    """`message` (an N_ template) in the request's language, its placeholders filled."""
    return flask_babel.gettext(message, **(params or {}))


def ngettext(singular: str, plural: str, num: int, **params) -> str:
    """The singular or plural template for `num` (available as `%(num)d`), translated, filled."""
    return flask_babel.ngettext(singular, plural, num, **params)
