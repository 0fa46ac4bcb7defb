"""schemathesis' own CLI (`st run`, the pinned 4.32.5) against a live gunicorn: every check, every
phase, bounded.

Every check means the conformance ones (status, content type, headers, body schema), the
negative ones (a request the description forbids must be refused: `negative_data_rejection`; one
it allows must not be: `positive_data_acceptance`), methods (`unsupported_method`, `Allow`
headers), authentication (`ignored_auth`) and no 5xx anywhere; every phase means the examples,
the coverage phase (boundaries, duplicated parameters, unexpected methods), fuzzing, and the
stateful phase, which follows the description's links (the list's ids to the record and the
block, the block's answer to the record). Bounded by examples and steps in
tests/schemathesis.toml (no time budget: that would make it repeat until spent), and by a
timeout here. Any failure fails the test with schemathesis' own report.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import report

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "schemathesis.toml"
ST = Path(sys.executable).with_name("st")
# The run takes 10 to 25 s on the shared two cores; past this something is wrong.
TIMEOUT_SECONDS = 90


@pytest.fixture(scope="module")
def pro_admin(sql, app):
    """A Pro clinic's admin token, for a clinic with patients to list, read, block and export."""
    from tests.conftest import Clinic

    clinic = Clinic(sql, app.extensions["dui_keys"])
    doctor = clinic.add_doctor()
    for n in range(3):
        patient = clinic.add_patient(f"Fuzz Paciente {n}", f"+5037000{n:04d}", dui="12345678-9")
        clinic.add_appointment(patient, doctor, "2026-01-02")
    return clinic.headers("admin")["Authorization"]


def test_schemathesis_finds_no_failure(live_server, pro_admin, request, tmp_path):
    command = [
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        f"{live_server.url}/api/openapi.json",
        "--url",
        live_server.url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--header",
        f"Authorization: {pro_admin}",
        "--request-timeout",
        "15",
        "--report-dir",
        str(tmp_path),
    ]
    timeout = TIMEOUT_SECONDS
    examples = os.environ.get("FUZZ_EXAMPLES")
    if examples:  # FUZZ_EXAMPLES=200 for a deeper run (tests/schemathesis.toml has 30)
        command += ["--max-examples", examples]
        timeout *= max(1, int(examples) / 30)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    output = done.stdout + done.stderr
    summary = re.search(r"Test cases:\s*\n\s*(.+)", output)
    report(request, f"schemathesis: {summary[1].strip() if summary else 'no summary'}")
    assert done.returncode == 0, output[-12000:]
    # Not vacuous: every phase ran, and the stateful phase followed the links.
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}", output), output[-4000:]
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", output)
    assert links and int(links[1]) >= 4 and links[1] == links[3], output[-4000:]
