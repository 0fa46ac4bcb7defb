# `make run` (set up, serve on the embedded PostgreSQL) and `make test`; `make status`, `make stop`,
# `make psql` and `make clean-data` look after what `make run` started (README "First run").
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run stop status psql clean-data test lint format bench bench-quick setup postgres catalogs messages

run: setup
	$(PY) -m patients.ops.dev serve

stop status psql clean-data: $(VENV)/.installed
	@$(PY) -m patients.ops.dev $@

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

# wrk (a C load generator) leaves more of the cores to the server than a Python client; the
# bench falls back to Python threads without it, so only this target installs it (not CI).
bench: setup
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || \
		 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)) || true
	$(PY) -m bench.run

bench-quick: setup
	$(PY) -m bench.run --quick

setup: postgres $(VENV)/.installed catalogs

# The Spanish catalog (translations/es/LC_MESSAGES/messages.po, committed) compiled to the .mo that
# Flask-Babel reads (git-ignored; the app also compiles a missing or stale one when it starts).
catalogs: $(VENV)/.installed
	@$(VENV)/bin/pybabel -q compile -d translations

# After adding or changing a message in the code: collect them all (N_, gettext, ngettext) and
# merge them into each catalog; then translate the new msgstr "" lines (tests/test_languages.py
# fails until every one is translated).
messages: $(VENV)/.installed
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k N_ --no-location --sort-output \
		--project=patients-api -o translations/messages.pot .
	$(VENV)/bin/pybabel -q update -i translations/messages.pot -d translations --width=100 \
		--ignore-obsolete --ignore-pot-creation-date
	@$(VENV)/bin/pybabel -q compile -d translations

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# PostgreSQL 15 server and contrib (pg_trgm, unaccent, btree_gin) from Debian, installed only where missing:
# a bare `apt-get install` could upgrade a server that is already there.
# With DATABASE_URL set, that server is used and this one is not needed.
postgres:
	@if [ -n "$$DATABASE_URL" ]; then \
		: ; \
	elif ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ls /usr/share/postgresql/*/extension/unaccent.control >/dev/null 2>&1; then \
		: ; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing PostgreSQL (Debian's postgresql package) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >/dev/null; \
	else \
		echo "PostgreSQL server is missing: run 'sudo apt-get install postgresql postgresql-contrib' (or set DATABASE_URL)"; exit 1; \
	fi
