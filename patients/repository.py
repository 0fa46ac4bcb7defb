"""The repository: every named query in queries/*.sql, as a function `queries.<name>(conn, **params)`.

A query is declared in its file as

    -- name: search_patients :one
    -- (free comment lines)
    SELECT ...  %(clinic_id)s ...

The suffix says what the call returns (as in sqlc):
  :one       the first row (a dict) or None
  :many      a list of dicts
  :scalar    the first column of the first row, or None
  :exec      nothing
  :execrows  the number of rows affected
  :sql       the SQL text itself, for psycopg calls that take a statement (cursor.copy, executemany)

Parameters always travel separately from the SQL text (psycopg's `%(name)s`).
"""

import re
from pathlib import Path

import psycopg

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"
NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s+:(?P<kind>\w+)\s*$")
KINDS = {"one", "many", "scalar", "exec", "execrows", "sql"}


class Query:
    def __init__(self, name: str, kind: str, sql: str, source: str, doc: str = ""):
        self.name, self.kind, self.sql, self.source = name, kind, sql, source
        self.__doc__ = doc  # the comment lines under the name line, as aiosql keeps them

    def __call__(self, conn: psycopg.Connection, **params):
        if self.kind == "sql":
            return self.sql
        cursor = conn.execute(self.sql, params or None)
        if self.kind == "one":
            return cursor.fetchone()
        if self.kind == "many":
            return cursor.fetchall()
        if self.kind == "scalar":
            row = cursor.fetchone()
            return None if row is None else next(iter(row.values()))
        if self.kind == "execrows":
            return cursor.rowcount
        return None

    def __repr__(self):
        return f"<query {self.name} :{self.kind} from {self.source}>"


def parse(text: str, source: str) -> list[Query]:
    found, name, kind, lines, doc = [], None, None, [], []

    def flush():
        sql = "\n".join(lines).strip().rstrip(";").strip()
        if name and sql:
            found.append(Query(name, kind, sql, source, "\n".join(doc)))

    for line in text.splitlines():
        stripped = line.strip()
        match = NAME_LINE.match(stripped)
        if match:
            flush()
            name, kind, lines, doc = match["name"], match["kind"], [], []
            if kind not in KINDS:
                raise ValueError(f"{source}: query {name} has unknown kind :{kind}")
        elif name and stripped.startswith("--"):
            if not lines:  # comments before the SQL are the query's docstring
                doc.append(stripped.removeprefix("--").strip())
        elif name:
            lines.append(line)
    flush()
    return found


class Queries:
    def __init__(self, directory: Path = QUERIES_DIR):
        for path in sorted(directory.glob("*.sql")):
            for query in parse(path.read_text(), path.name):
                if hasattr(self, query.name):
                    raise ValueError(f"query {query.name} is defined twice ({path.name})")
                setattr(self, query.name, query)


queries = Queries()
