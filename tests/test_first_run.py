"""A newcomer's first run: `make run`'s export lines, every README example pasted after them, and
Ctrl-C through a pipe whose reader is gone.

The module starts one `python -m patients.ops.dev serve` (what `make run` runs) on a data folder,
a port and an env file of its own, reads the `export` lines it prints, and runs every fenced shell
block of README.md that calls `$BASE` with bash after them, as a reader pasting them would. So the
README and the code cannot drift: a renamed variable, a typo (`$PATIENT`), a demo patient that is
not there or an example answering 4xx fails here.
"""

import contextlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from patients.ops.embedded_pg import Cluster

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```", re.M | re.S)
EXPORTED = ["BASE", "ADMIN_TOKEN", "STAFF_TOKEN", "PATIENT_ID", "DATABASE_URL"]
WEBHOOK = ["WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET"]

pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shell_blocks() -> list[str]:
    return [m["body"] for m in FENCE.finditer(README.read_text()) if m["lang"] in ("sh", "bash")]


def session_members(sid: int) -> list[int]:
    """Processes of a session (field 6 of /proc/<pid>/stat), still alive and not zombies."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class DevRun:
    """`make run` in a corner of its own: data, socket, port and .env nobody else uses."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="devrun-"))
        self.root.chmod(0o755)  # the postgres user (when we are root) walks down to the data
        self.datadir = self.root / "pgdata"
        self.env_file = self.root / "env"
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "PG"))}
        for name in ("DATABASE_URL", "JWT_SECRET", "DUI_KEYS", "HOST", "GUNICORN_CONTROL_SOCKET"):
            env.pop(name, None)
        env.update(
            PORT=str(self.port),
            PGDATA_DIR=str(self.datadir),
            WEB_CONCURRENCY="2",
            LOG_LEVEL="WARNING",  # no access log lines: the pipe stays quiet once the lines are out
            PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "patients.ops.dev", "serve", "--env-file", str(self.env_file)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGINT to it is a terminal's Ctrl-C
        )
        self.lines: list[str] = []
        self.gunicorn_pid = None
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        # Stops reading once the last export line is out; the test closes the pipe later.
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith("export WHATSAPP_"):
                break
        self.ready.set()

    def wait_ready(self, timeout=120) -> dict:
        assert self.ready.wait(timeout), "\n".join(self.lines[-40:])
        exports = {}
        for line in self.lines:
            if line.startswith("export "):
                for word in shlex.split(line)[1:]:
                    name, _, value = word.partition("=")
                    exports[name] = value
        assert set(exports) == set(EXPORTED + WEBHOOK), "\n".join(self.lines[-40:])
        owner = self.cluster().socket_dir / "make-run.pid"
        self.gunicorn_pid = int(owner.read_text().split()[1])  # in a session of its own
        return exports

    def cluster(self) -> Cluster:
        return Cluster(self.datadir)

    def close(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.gunicorn_pid and alive(self.gunicorn_pid):  # `make run` killed, gunicorn not
            os.killpg(self.gunicorn_pid, signal.SIGKILL)
        with_cluster = self.cluster()
        with_cluster.stop("immediate")
        shutil.rmtree(with_cluster.socket_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def dev_run():
    run = DevRun()
    try:
        yield run
    finally:
        run.close()


@pytest.fixture(scope="module")
def exports(dev_run):
    return dev_run.wait_ready()


def get(exports, path, role="STAFF"):
    host, port = exports["BASE"].removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {exports[role + '_TOKEN']}"})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def test_the_export_lines_come_last(dev_run, exports):
    printed = [line for line in dev_run.lines if line.strip()]
    names = [shlex.split(line)[1].partition("=")[0] for line in printed[-6:]]
    assert names == EXPORTED + WEBHOOK[:1]
    assert exports["BASE"] == f"http://127.0.0.1:{dev_run.port}"
    assert exports["DATABASE_URL"] == dev_run.cluster().url


def test_it_listens_on_loopback_only(dev_run, exports):
    # /proc/net/tcp: local address in hex, state 0A = LISTEN; 0100007F is 127.0.0.1.
    listening = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port = local.split(":")
        if state == "0A" and int(port, 16) == dev_run.port:
            listening.add(address)
    assert listening == {"0100007F"}
    six = Path("/proc/net/tcp6").read_text() if Path("/proc/net/tcp6").exists() else ""
    assert f":{dev_run.port:04X} " not in six


def test_the_env_file_has_demo_webhook_values(dev_run, exports):
    text = dev_run.env_file.read_text()
    assert f"WHATSAPP_VERIFY_TOKEN={exports['WHATSAPP_VERIFY_TOKEN']}\n" in text
    assert f"WHATSAPP_APP_SECRET={exports['WHATSAPP_APP_SECRET']}\n" in text
    assert re.search(r"^JWT_SECRET=\S{32,}$", text, re.M)
    assert re.search(r"^DUI_KEYS=\S{44}$", text, re.M)


def test_the_demo_data_holds_what_the_examples_look_for(exports):
    status, found = get(exports, "/api/patients?search=7765-4321")
    assert status == 200
    assert [(p["id"], p["full_name"], p["phone"]) for p in found["patients"]] == [
        (exports["PATIENT_ID"], "Juan Pérez", "+50377654321")
    ]
    status, blocked = get(exports, "/api/patients?blocked=true")
    assert status == 200 and blocked["total"] >= 1
    assert all(p["is_blocked"] for p in blocked["patients"])
    status, record = get(exports, f"/api/patients/{exports['PATIENT_ID']}", "ADMIN")
    assert status == 200
    assert len(record["appointments"]) >= 2 and record["dui"] is not None
    assert any(a["doctors"] is not None for a in record["appointments"])


def test_the_readme_stays_in_the_repository():
    text = README.read_text()
    assert "../" not in text
    assert "CONTRACT.md" not in text
    assert "/work/" not in text
    for line in text.splitlines():
        for match in re.finditer(r"(\S*)flask --app", line):
            assert match[1].endswith(".venv/bin/"), line


def test_readme_examples_use_the_exported_names():
    for block in shell_blocks():
        if "curl" not in block:
            continue
        # Our API's address is $BASE (another service's, like Supabase's JWKS, has its own name).
        for line in block.splitlines():
            if not line.startswith("export BASE="):
                assert "127.0.0.1" not in line and "localhost" not in line, line
        assert "$TOKEN" not in block and "$PATIENT/" not in block, block


# Every curl reports its status and URL on stderr, whatever the example does with stdout.
CURL_WRAPPER = r"""
set -euo pipefail
curl() { command curl -sS --write-out '%{stderr}HTTP %{http_code} %{method} %{url_effective}\n' "$@"; }
"""


def test_every_readme_example_answers_2xx(exports, tmp_path):
    blocks = [block for block in shell_blocks() if "$BASE" in block and "export BASE=" not in block]
    assert len(blocks) >= 8
    lines = [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]
    script = CURL_WRAPPER + "\n".join(lines) + "\n"
    for number, block in enumerate(blocks, 1):
        script += f"\necho '--- block {number}' >&2\n{block}\n"
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,  # the export example writes pacientes.csv here; the import reads it back
        env={k: v for k, v in os.environ.items() if k not in ("TOKEN", "PATIENT")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    calls = re.findall(r"^HTTP (\d{3}) (\S+) (\S+)$", result.stderr, re.M)
    expected = sum(len(re.findall(r"(?:^|\$\(|[|;&]\s*)\s*curl\s", b, re.M)) for b in blocks)
    assert len(calls) == expected, result.stderr[-3000:]
    failed = [call for call in calls if not call[0].startswith("2")]
    assert failed == [], result.stderr[-3000:]


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_through_a_closed_pipe_stops_everything(dev_run, exports):
    """`make run 2>&1 | tee log`, then Ctrl-C: tee dies first, so every later print fails."""
    cluster = dev_run.cluster()
    assert cluster.running()
    gunicorn = int((cluster.socket_dir / "make-run.pid").read_text().split()[1])
    processes = [gunicorn, *children(gunicorn)]
    assert len(processes) == 3  # the master and WEB_CONCURRENCY=2 workers
    dev_run.process.stdout.close()  # the reader is gone
    os.killpg(dev_run.process.pid, signal.SIGINT)  # what the terminal sends its process group
    # Bounded by PostgreSQL's shutdown checkpoint, seconds on a busy disk (not a speed test).
    assert dev_run.process.wait(90) == 130
    assert [pid for pid in processes if alive(pid)] == []  # gunicorn and its workers: gone
    assert session_members(dev_run.process.pid) == []
    assert not cluster.running()
    assert not (cluster.datadir / "postmaster.pid").exists()


def test_make_stop_after_make_run_was_killed():
    """`kill -9` of `make run` leaves its gunicorn and PostgreSQL: status says so, stop ends both."""
    run = DevRun()
    try:
        exports = run.wait_ready()
        run.process.stdout.close()
        gunicorn_pid = int((run.cluster().socket_dir / "make-run.pid").read_text().split()[1])
        run.process.kill()
        run.process.wait(10)

        def dev(command):
            return subprocess.run(
                [sys.executable, "-m", "patients.ops.dev", command],
                cwd=ROOT,
                env=run.env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        status = dev("status")
        assert status.returncode == 0, status.stderr
        assert f"make run: not running, but its gunicorn (pid {gunicorn_pid}) is: make stop" in (
            status.stdout
        )
        assert "embedded PostgreSQL: running" in status.stdout
        assert get(exports, "/healthz")[0] == 200  # still serving, orphaned
        stopped = dev("stop")
        assert stopped.stdout.splitlines() == [
            f"stopped a leftover gunicorn (pid {gunicorn_pid})",
            f"stopped the embedded PostgreSQL ({run.datadir})",
        ]
        assert not alive(gunicorn_pid)
        assert not run.cluster().running()
        assert dev("stop").stdout == "nothing of this checkout is running\n"
    finally:
        run.close()


def test_the_own_database_recipe_works(database_url, tmp_path):
    """The README's "your own database" block, on the tests' database: only the lines naming the
    database and the address change (to a throwaway one and a free port)."""
    (block,) = [b for b in shell_blocks() if "export BASE=" in b]
    port = free_port()
    lines = []
    for line in block.splitlines():
        if line.startswith("export DATABASE_URL="):
            line = f"export DATABASE_URL={shlex.quote(database_url)}"
        elif line.startswith("export BASE="):
            line = f"export BASE=http://127.0.0.1:{port}"
        lines.append(line)
    assert sum(line.startswith("export ") for line in lines) == 4
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "DUI_", "GUNICORN_"))}
    env.update(PORT=str(port), WEB_CONCURRENCY="1", LOG_LEVEL="WARNING")
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    # Files, not pipes: the recipe's background gunicorn keeps its output open after bash ends.
    with out_path.open("w") as out, err_path.open("w") as err:
        recipe = subprocess.Popen(
            ["bash", "-c", CURL_WRAPPER + "\n".join(lines)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # the recipe's `gunicorn &` stays in this group: stopped below
        )
    try:
        recipe.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(recipe.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while session_members(recipe.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    out, err = out_path.read_text(), err_path.read_text()
    assert recipe.returncode == 0, err[-3000:]
    calls = re.findall(r"^HTTP (\d{3}) (\S+) (\S+)$", err, re.M)
    assert [(status, url.split("?")[0]) for status, _, url in calls] == [
        ("200", f"http://127.0.0.1:{port}/healthz"),
        ("200", f"http://127.0.0.1:{port}/api/patients"),
    ], err[-3000:]
    assert json.loads(out.splitlines()[-1]) == {"patients": [], "total": 0, "page": 1, "limit": 50}
    assert session_members(recipe.pid) == []
