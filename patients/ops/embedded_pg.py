"""A private PostgreSQL cluster in a folder: the embedded default, and the tests' throwaway database.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the `postgres`
system user (created by Debian's package) and every server command runs as that user. The server
listens on a Unix socket only, in a short directory (socket paths are limited to ~100 bytes).
"""

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from patients.config import embedded_settings

SOCKET_PORT = 5432  # only names the socket file; no TCP port is opened


def find_bindir() -> Path:
    """Where initdb/pg_ctl live: $PG_BINDIR, the PATH, or Debian's newest /usr/lib/postgresql/N/bin."""
    configured = embedded_settings()["bindir"]
    if configured:
        return Path(configured)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    if candidates:
        return Path(candidates[-1])
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: install Debian's `postgresql` package "
        "(or set DATABASE_URL to an existing server)"
    )


class Cluster:
    def __init__(self, datadir: str | os.PathLike, socket_dir: str | os.PathLike | None = None):
        self.datadir = Path(datadir).absolute()
        if socket_dir is None:
            digest = hashlib.sha256(str(self.datadir).encode()).hexdigest()[:10]
            socket_dir = Path(tempfile.gettempdir()) / f"pgapi-{digest}"
        self.socket_dir = Path(socket_dir)
        self.bindir = find_bindir()
        self.owner = self._owner()

    # -- who runs the server -------------------------------------------------------------
    def _owner(self) -> pwd.struct_passwd:
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid())
        try:
            return pwd.getpwnam("postgres")
        except KeyError as exc:
            raise RuntimeError(
                "running as root needs the `postgres` system user (Debian's postgresql package)"
            ) from exc

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        kwargs = {}
        if os.geteuid() == 0:
            kwargs = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            check=False,
            capture_output=True,
            text=True,
            cwd="/",
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
            **kwargs,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def reachable(self) -> bool:
        """Can the server's user walk down to the data folder? (Not from inside root's 0700 home.)"""
        if os.geteuid() != 0:
            return True
        for folder in self.datadir.parents:
            if not folder.exists():  # made by us later, with the usual 0755
                continue
            info = folder.stat()
            if info.st_uid == self.owner.pw_uid:
                allowed = info.st_mode & 0o100
            elif info.st_gid == self.owner.pw_gid:
                allowed = info.st_mode & 0o010
            else:
                allowed = info.st_mode & 0o001
            if not allowed:
                return False
        return True

    def _own_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        path.chmod(0o700)

    # -- life cycle ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port={SOCKET_PORT}"

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.datadir), check=False).returncode == 0

    def init(self) -> None:
        self._own_dir(self.datadir)
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",  # socket-only, in a 0700 directory: only its owner (and root) reach it
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )

    def start(self, fsync: bool = True) -> None:
        if not self.initialised():
            self.init()
        if self.running():
            return
        self._own_dir(self.socket_dir)
        options = f"-k {self.socket_dir} -p {SOCKET_PORT} -c listen_addresses=''"
        if not fsync:  # throwaway clusters (tests) trade durability for speed
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        result = self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.datadir),
            "-l",
            str(self.datadir / "server.log"),
            "-o",
            options,
            check=False,
        )
        if result.returncode != 0:
            log = (self.datadir / "server.log").read_text(errors="replace")[-2000:]
            said = [line for line in (result.stderr + log).splitlines() if line.strip()]
            # The first line is what a one-line report shows: the server's last word, its log.
            raise RuntimeError(
                f"PostgreSQL did not start ({said[-1] if said else 'no message'}; "
                f"see {self.datadir / 'server.log'})\n{result.stderr}\n{log}"
            )

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.datadir), check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def throwaway_cluster(prefix: str = "pgt-") -> Cluster:
    """A started cluster in a fresh temporary folder, for tests: fast, not durable.

    Its data and socket share the folder, so `destroy()` leaves nothing behind.
    """
    root = tempfile.mkdtemp(prefix=prefix)  # 0700: handed to the server's user below
    cluster = Cluster(os.path.join(root, "data"), socket_dir=root)
    os.chown(root, cluster.owner.pw_uid, cluster.owner.pw_gid)
    cluster.start(fsync=False)
    return cluster


def project_cluster() -> Cluster:
    """The embedded default: `.pgdata/` beside app.py (or $PGDATA_DIR).

    As root in a checkout the `postgres` user cannot reach (a clone under /root, mode 0700), the
    data goes to /var/lib/patients-api/<checkout hash>/ instead, and we say so.
    """
    root = Path(__file__).resolve().parents[2]
    configured = embedded_settings()["datadir"]
    cluster = Cluster(configured or root / ".pgdata")
    if not configured and not cluster.reachable():
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:10]
        fallback = Path("/var/lib/patients-api") / digest / "pgdata"
        fallback.parent.mkdir(parents=True, exist_ok=True)
        print(
            f"{cluster.datadir} is out of the postgres user's reach; using {fallback}",
            file=sys.stderr,
        )
        cluster = Cluster(fallback)
    return cluster


def start_embedded(say=None) -> tuple[str, Cluster | None]:
    """The embedded default, the one place it is started: (its URL, the cluster if we started it).

    Whoever gets a cluster back started it and stops it when done (gunicorn's master on exit,
    `make run` on Ctrl-C, a CLI command at its end); None means it was already running.
    """
    cluster = project_cluster()
    if cluster.running():
        return cluster.url, None
    if say is not None:
        say(f"starting the embedded PostgreSQL in {cluster.datadir}")
    cluster.start()
    return cluster.url, cluster
