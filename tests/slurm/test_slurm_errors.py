"""The sbatch scripts refuse bad requests with a clear message before any compute.

Outside Slurm needs only bash; the rest runs real (sub-second) jobs on the test cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MULTINODE = REPO / "launch" / "slurm_multinode.sbatch"
SINGLE = REPO / "launch" / "slurm_single.sbatch"
CONFIG = "configs/quickstart.yaml"


@pytest.mark.parametrize("script", [MULTINODE, SINGLE], ids=lambda p: p.name)
def test_outside_slurm_is_an_error_with_the_sbatch_line(script: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(["bash", str(script), CONFIG], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not inside a Slurm job (SLURM_JOB_ID is unset)" in proc.stderr
    assert "sbatch" in proc.stderr and f"launch/{script.name}" in proc.stderr


def _failed_job_output(cluster, tmp_path: Path, script: Path, nodes: int, args: list[str], **env: str) -> str:
    out = tmp_path / "job.out"
    env = {"DISTGAN_CPU": "1", "DISTGAN_PYTHON": sys.executable, **env}
    job = cluster.submit(script, args, nodes=nodes, output=out, cwd=REPO, env=env)
    fields = cluster.wait_job(job, timeout_s=30)
    text = out.read_text()
    assert fields["JobState"] == "FAILED", text
    assert fields["ExitCode"] == "2:0", text
    assert fields["Restarts"] == "0"
    assert "srun" not in text and "distgan-slurm: node" not in text  # stopped before launching anything
    return text


@pytest.mark.slurm
def test_missing_config_fails_the_job_before_srun(slurm_cluster, tmp_path):
    text = _failed_job_output(
        slurm_cluster, tmp_path, MULTINODE, 2, ["configs/no_such.yaml", "train.steps=2"]
    )
    assert "config file not found: 'configs/no_such.yaml'" in text


@pytest.mark.slurm
def test_node_count_mismatch_fails_the_job(slurm_cluster, tmp_path):
    text = _failed_job_output(slurm_cluster, tmp_path, MULTINODE, 2, [CONFIG], DISTGAN_NODES="3")
    assert "DISTGAN_NODES=3 but the allocation has 2 node(s)" in text


@pytest.mark.slurm
def test_single_node_script_refuses_two_nodes(slurm_cluster, tmp_path):
    text = _failed_job_output(slurm_cluster, tmp_path, SINGLE, 2, [CONFIG])
    assert "runs on one node but the allocation has 2" in text


@pytest.mark.slurm
def test_python_without_distgan_fails_the_job(slurm_cluster, tmp_path):
    bare = tmp_path / "bare-python"  # this interpreter without site-packages: no accelerate, no distgan
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    bare.chmod(0o755)
    text = _failed_job_output(slurm_cluster, tmp_path, SINGLE, 1, [CONFIG], DISTGAN_PYTHON=str(bare))
    assert "cannot run distgan" in text
