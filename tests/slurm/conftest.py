"""Fixtures for the Slurm tests: one real two-node cluster per test session.

Without Slurm (or without root, which slurmd needs) the tests skip with the reason;
with CI set (CI=true) they fail instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

try:
    from .slurm_cluster import LocalSlurmCluster, missing_binaries
except ImportError:  # tests/ is not a package: pytest put this directory on sys.path
    from slurm_cluster import LocalSlurmCluster, missing_binaries


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable_reason() -> str | None:
    missing = missing_binaries()
    if missing:
        return (
            f"Slurm is not installed (missing {', '.join(missing)}); "
            "install it with `sudo bash .ci/setup_slurm.sh` (Debian slurm-wlm + munge)"
        )
    if os.geteuid() != 0:
        return "the Slurm tests start slurmd, which must run as root"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running two-node cluster (n1, n2; 4 CPUs each); its daemons are stopped afterwards."""
    reason = _unavailable_reason()
    if reason:
        if _in_ci():
            pytest.fail(f"CI is set but the Slurm tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="distgan-slurm-") as tmp:
        cluster = LocalSlurmCluster(Path(tmp))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
