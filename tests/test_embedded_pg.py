"""The embedded default's data folder must be reachable by the user PostgreSQL runs as."""

import os
import tempfile
from pathlib import Path

import pytest

from patients.ops.embedded_pg import Cluster


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
def test_a_folder_inside_a_private_home_is_out_of_reach():
    private = Path(tempfile.mkdtemp(prefix="home-"))  # 0700, owned by root, like /root
    try:
        assert not Cluster(private / "checkout" / ".pgdata", socket_dir=private).reachable()
        private.chmod(0o755)
        assert Cluster(private / "checkout" / ".pgdata", socket_dir=private).reachable()
    finally:
        private.rmdir()


def test_a_failed_server_command_says_why(tmp_path):
    cluster = Cluster(tmp_path / "never-initialised", socket_dir=tmp_path)
    with pytest.raises(RuntimeError, match="pg_ctl failed"):
        cluster._run("pg_ctl", "stop", "-D", str(tmp_path / "never-initialised"))
