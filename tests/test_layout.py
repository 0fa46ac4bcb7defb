"""The structure the README's Code map promises: rules without Flask, one reader of the environment."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = [
    path
    for path in sorted((ROOT / "patients").glob("*.py"))
    if path.name not in ("__init__.py", "db.py")  # db.py holds the request's transaction (flask.g)
]
WEB_ONLY = ("flask", "werkzeug", "gunicorn")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_rules_know_nothing_of_the_web(path):
    web = {name for name in imported_modules(path) if name.split(".")[0] in WEB_ONLY}
    layers = {
        name for name in imported_modules(path) if name.startswith(("patients.api", "patients.ops"))
    }
    assert not web and not layers, f"{path.name} imports {sorted(web | layers)}"


def environment_reads(source: str) -> list[int]:
    """Lines that read a variable: os.environ.get / [...] as a value, os.getenv."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            if target in ("os.environ.get", "os.getenv"):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
        ):
            lines.append(node.lineno)
    return lines


def test_the_environment_is_read_in_one_module():
    sources = [ROOT / "app.py", ROOT / "gunicorn.conf.py", *ROOT.glob("patients/**/*.py")]
    sources += ROOT.glob("bench/*.py")
    readers = {
        str(path.relative_to(ROOT)): lines
        for path in sources
        if (lines := environment_reads(path.read_text())) and path.name != "config.py"
    }
    assert readers == {}
    # The check can see a read: each form it looks for is found.
    assert environment_reads("os.environ.get('A')\nos.getenv('B')\nc = os.environ['C']") == [
        1,
        2,
        3,
    ]
    assert environment_reads("os.environ['C'] = 'set, not read'") == []


def test_requests_never_import_operator_tools():
    for path in (ROOT / "patients" / "api").glob("*.py"):
        ops = {name for name in imported_modules(path) if name.startswith("patients.ops")}
        assert not ops, f"{path.name} imports {sorted(ops)}"
