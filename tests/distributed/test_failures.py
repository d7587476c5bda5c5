"""Fail fast with a clear error, and never hang: the distributed failure modes a user can hit.

- a global batch not divisible by the processes (real 2-process launch), DeepSpeed without the
  package, fp16 on CPU, a contradicting DeepSpeed JSON / launcher precision, WORLD_SIZE > 1 with a
  world of one: each is an error naming the key, before any compute;
- a rank killed mid-run ends the whole job (non-zero exit, the launcher names the dead rank);
- a HUNG rank (SIGSTOP) makes the others fail after distributed.timeout_s, under DDP and DeepSpeed;
- either way the survivor says so in ONE line (the lost rank, the last complete checkpoint, which
  verifies and resumes), no traceback, and exits LOST_CONTACT_EXIT_CODE.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from distgan import distributed
from distgan.checkpoint.locate import latest_checkpoint, step_of
from distgan.config import ConfigError, load_config
from distgan.distributed import DistributedError, build_accelerator, complete_from_launcher, lost_contact
from distgan.distributed.lost_contact import report_lost_contact
from distgan.errors import LOST_CONTACT_EXIT_CODE
from distgan.train import main as train_main
from tests.launching import REPO, TINY_TRAIN, accelerate_launch, cpu_env, run, worker_pids

TIMEOUT_S = 15  # distributed.timeout_s in the dead/hung-rank tests
# Hang guards, not speed bounds: what ended a run is read from its output, since on a loaded CI
# machine the shutdown after a failure may take far longer than on an idle one.
HANG_GUARD_S = 4 * TIMEOUT_S + 60


def train_cli(*overrides: str, python_prelude: str = "") -> subprocess.CompletedProcess:
    code = f"{python_prelude}\nimport sys\nfrom distgan.train import main\nsys.exit(main(sys.argv[1:]))"
    return run([sys.executable, "-c", code, *TINY_TRAIN, *overrides], check=False, timeout=120)


@pytest.mark.slow
def test_batch_not_divisible_by_processes_fails_on_every_rank_before_training(tmp_path):
    out = tmp_path / "run"
    result = run(
        accelerate_launch(
            2, "-m", "distgan.train", *TINY_TRAIN, "data.batch_size=15", f"train.out_dir={out}"
        ),
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    message = "data.batch_size: the global batch 15 must be divisible by the number of processes (2)"
    assert result.stderr.count(message) == 2, result.stderr[-3000:]  # both ranks say why
    assert not out.exists()  # nothing was trained or written


def test_deepspeed_requested_without_the_package(tmp_path):
    block = "import sys; sys.modules['deepspeed'] = None  # `import deepspeed` now raises ImportError"
    result = train_cli("distributed.backend=deepspeed", f"train.out_dir={tmp_path}", python_prelude=block)
    assert result.returncode == 2
    assert "distributed.backend: 'deepspeed' needs the deepspeed package" in result.stderr


def test_fp16_on_cpu(tmp_path):
    result = train_cli("train.mixed_precision=fp16", f"train.out_dir={tmp_path}")
    assert result.returncode == 2
    assert "train.mixed_precision: fp16 needs a CUDA GPU" in result.stderr


def test_fp16_from_the_launcher_on_cpu_is_refused_too(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        build_accelerator(complete_from_launcher(load_config(None)))


def test_launcher_and_config_precision_must_agree(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    cfg = load_config(None, ["train.mixed_precision=bf16"])
    with pytest.raises(ConfigError, match="config says 'bf16' but accelerate launch asks for 'fp16'"):
        complete_from_launcher(cfg)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    cfg = load_config(None)
    completed = complete_from_launcher(cfg)
    assert completed.train.mixed_precision == "bf16"
    assert cfg.train.mixed_precision == "no"  # a new config: the loaded one is never written to


def test_deepspeed_json_contradicting_the_config(tmp_path):
    config = tmp_path / "ds.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    result = train_cli(
        "distributed.backend=deepspeed",
        "distributed.zero_stage=2",  # left null, the stage would be the JSON's (launcher.default_overrides)
        f"distributed.deepspeed_config={config}",
        f"train.out_dir={tmp_path}",
    )
    assert result.returncode == 2
    assert "zero_optimization.stage=1 but distgan derives 2 from distributed.zero_stage" in result.stderr


def test_world_size_above_one_but_a_world_of_one(monkeypatch, fresh_accelerate):
    """The CPU trap of FACTS.md (each process alone) must stop, not train N independent copies."""

    class AloneAccelerator:  # what each process would see under --multi_gpu without cpu=True
        num_processes = 1

        def __init__(self, **kwargs):
            pass

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("accelerate.Accelerator", AloneAccelerator)
    with pytest.raises(DistributedError, match="started 2 processes .* sees a world of 1"):
        distributed.build_accelerator(load_config(None))


# ---------------------------------------------------------------- dead and hung ranks


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def start_training(out: Path, *extra: str) -> tuple[subprocess.Popen, dict[int, int]]:
    """A long 2-process run; returns once both ranks have logged a step and a checkpoint exists."""
    command = accelerate_launch(
        2,
        "-m",
        "distgan.train",
        *TINY_TRAIN,
        "train.steps=1000000",
        f"train.out_dir={out}",
        f"distributed.timeout_s={TIMEOUT_S}",
        "checkpoint.every=2",
        *extra,
    )
    launcher = subprocess.Popen(
        command, cwd=REPO, env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    metrics, deadline = out / "metrics.jsonl", time.monotonic() + 120
    latest = out / "checkpoints" / "latest"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2 and latest.exists()):
        assert launcher.poll() is None, launcher.communicate()[0][-4000:]
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)
    pids = worker_pids(str(out))
    assert sorted(pids) == [0, 1]
    return launcher, pids


def stop_everything(launcher: subprocess.Popen, out: Path) -> None:
    if launcher.poll() is None:
        launcher.kill()
    for pid in worker_pids(str(out)).values():
        os.kill(pid, signal.SIGKILL)


def assert_survivor_named(output: str, out: Path, lost_rank: int, cause: str) -> Path:
    """Rank 0's one line names the lost rank and the last complete checkpoint (which verifies);
    no traceback from rank 0; its exit code is the documented one. Returns the checkpoint."""
    checkpoint = latest_checkpoint(out)  # checks the manifest: every file as written
    assert checkpoint is not None, output[-3000:]
    lines = [line for line in output.splitlines() if "lost contact" in line]
    assert len(lines) == 1, output[-3000:]
    assert lines[0].startswith(f"error: lost contact with rank {lost_rank} at step "), lines[0]
    assert cause in lines[0], lines[0]
    assert f"the last complete checkpoint is {checkpoint}; resubmit the same command" in lines[0], lines[0]
    assert "[rank0]: Traceback" not in output and "RuntimeError" not in output, output[-3000:]
    failures = output[output.index("Failures:") :]
    rank0 = failures[failures.index("rank      : 0") :]
    assert rank0.split("exitcode  : ", 1)[1].startswith(f"{LOST_CONTACT_EXIT_CODE} "), failures
    return checkpoint


@pytest.mark.slow
def test_killed_rank_ends_the_whole_job(tmp_path, capsys, fresh_accelerate):
    out = tmp_path / "run"
    launcher, pids = start_training(out)
    try:
        os.kill(pids[1], signal.SIGKILL)
        output = launcher.communicate(timeout=HANG_GUARD_S)[0]
    finally:
        stop_everything(launcher, out)
    assert launcher.returncode != 0
    assert not alive(pids[0])
    root_cause = output[output.index("Root Cause") :]
    assert "rank      : 1" in root_cause and "SIGKILL" in root_cause, output[-3000:]
    # ended by the launcher seeing the dead rank, not by rank 0 waiting out its collective timeout
    assert "Timed out waiting" not in output, output[-3000:]
    checkpoint = assert_survivor_named(output, out, lost_rank=1, cause="the connection was closed")
    # the checkpoint it names resumes, here on one process
    steps = step_of(checkpoint) + 1
    assert train_main([*TINY_TRAIN, f"train.out_dir={out}", f"train.steps={steps}"]) == 0
    assert f"done: {steps} steps" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ddp", "deepspeed"])
def test_hung_rank_makes_the_others_fail_after_the_timeout(tmp_path, backend):
    """SIGSTOP = a rank that is alive but silent (the case a process-group timeout exists for).
    DeepSpeed: ZeRO reduces over its own clone of the world group, which must get the timeout too."""
    out = tmp_path / "run"
    launcher, pids = start_training(out, f"distributed.backend={backend}")
    try:
        os.kill(pids[1], signal.SIGSTOP)
        stopped_at = time.monotonic()
        while alive(pids[0]) and time.monotonic() - stopped_at < HANG_GUARD_S:
            time.sleep(0.2)
        waited = time.monotonic() - stopped_at
        assert not alive(pids[0]), f"rank 0 still waiting {waited:.0f} s after its peer hung"
        os.kill(pids[1], signal.SIGKILL)  # the launcher would wait 30 s for the stopped process
        output = launcher.communicate(timeout=60)[0]
    finally:
        stop_everything(launcher, out)
    # rank 0's collective failed (a timeout: its peer was alive): no bound on the time it took
    assert launcher.returncode != 0
    assert_survivor_named(
        output, out, lost_rank=1, cause=f"no answer within distributed.timeout_s={TIMEOUT_S} s"
    )


def test_an_error_that_is_not_a_lost_peer_keeps_its_traceback():
    """Without other processes a RuntimeError is a bug, even one that reads like a lost connection."""
    err = RuntimeError("Connection reset by peer")
    world = SimpleNamespace(rank=0, size=1)
    with pytest.raises(RuntimeError) as caught:
        report_lost_contact(err, world, 3, load_config(None).distributed, lambda: None)
    assert caught.value is err


def test_the_ranks_that_never_report_the_failure_are_the_lost_ones(monkeypatch):
    store = torch.distributed.HashStore()
    monkeypatch.setattr(torch.distributed.distributed_c10d, "_get_default_store", lambda: store)
    store.set(f"{lost_contact.KEY}2", "1")  # rank 2 noticed too; ranks 1 and 3 never say so
    assert lost_contact.silent_ranks(rank=0, size=4, wait_s=0.0) == [1, 3]
    assert lost_contact.describe_lost([1, 3]) == "ranks 1, 3"
    store.set(f"{lost_contact.KEY}1", "1")
    store.set(f"{lost_contact.KEY}3", "1")
    assert lost_contact.silent_ranks(rank=0, size=4, wait_s=5.0) == []  # all reported: no wait
    assert lost_contact.describe_lost([]) == "another process"


def test_an_unreachable_store_means_its_host_is_gone(monkeypatch):
    def gone():
        raise torch.distributed.DistStoreError("Connection refused")

    monkeypatch.setattr(torch.distributed.distributed_c10d, "_get_default_store", gone)
    assert lost_contact.silent_ranks(rank=1, size=2, wait_s=0.0) is None
    assert lost_contact.describe_lost(None) == "rank 0's node (the host of the launcher's store)"
