"""The sbatch scripts refuse bad requests with a clear message before any compute.

Outside Slurm needs only bash; the rest runs real (sub-second) jobs on the test cluster.
"""

from __future__ import annotations

import json
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


# --- Checks that run before srun, with stand-ins for scontrol/srun: no Slurm cluster needed. ----------

FAKE_SCONTROL = """#!/bin/sh
case "$1 $2" in
    "show hostnames") echo n1 ;;
    "show node") echo "NodeName=n1 NodeAddr=127.0.0.1 State=IDLE" ;;
esac
"""
FAKE_SRUN = """#!/usr/bin/env bash
while [[ "$1" == --* ]]; do shift; done  # srun's own options; then run the task here, as node 0
exec "$@"
"""
ARGV_PROBE = "import json, sys\nopen('probe_argv.json', 'w').write(json.dumps(sys.argv[1:]))\n"


def _batch_job_outside_slurm(tmp_path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    """slurm_single.sbatch as Slurm would start it on one node, with scontrol/srun stand-ins on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("scontrol", FAKE_SCONTROL), ("srun", FAKE_SRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "argv_probe.py").write_text(ARGV_PROBE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "DISTGAN_"))}
    full_env = {
        **base,
        "PATH": f"{bin_dir}:{base['PATH']}",
        "PYTHONPATH": str(tmp_path),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_JOB_NODELIST": "n1",
        "SLURM_NODEID": "0",
        "DISTGAN_HOME": str(REPO),
        "DISTGAN_PYTHON": sys.executable,
        "DISTGAN_CPU": "1",
        "DISTGAN_PORT": "29999",
        **env,
    }
    return subprocess.run(
        ["bash", str(SINGLE), *args], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_distgan_entry_is_never_run_as_python_source(tmp_path):
    marker = tmp_path / "pwned"
    # Before the fix this text was pasted into `python -c` source (up to its first dot): it ran open().
    payload = "x', open('pwned', 'w'), '"
    proc = _batch_job_outside_slurm(tmp_path, [str(REPO / CONFIG)], DISTGAN_ENTRY=payload)
    assert not marker.exists(), "DISTGAN_ENTRY was executed as Python code"
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"DISTGAN_ENTRY must be a Python module name like distgan.train, got '{payload}'" in proc.stderr


@pytest.mark.parametrize("config", ["-dash.yaml", "-dir/-dash.yaml"])
def test_config_path_starting_with_a_dash_reaches_the_trainer(tmp_path, config):
    (tmp_path / config).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / config).write_text((REPO / CONFIG).read_text())
    proc = _batch_job_outside_slurm(tmp_path, [config, "train.steps=2"], DISTGAN_ENTRY="argv_probe")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "invalid option" not in proc.stderr and "unrecognized option" not in proc.stderr
    argv = json.loads((tmp_path / "probe_argv.json").read_text())
    assert argv == ["--config", str(tmp_path / config), "train.steps=2"]


def test_missing_dash_config_is_the_clear_error(tmp_path):
    proc = _batch_job_outside_slurm(tmp_path, ["-nope.yaml"], DISTGAN_ENTRY="argv_probe")
    assert proc.returncode == 2
    assert "config file not found: '-nope.yaml'" in proc.stderr
    assert not (tmp_path / "probe_argv.json").exists()  # stopped before launching anything
