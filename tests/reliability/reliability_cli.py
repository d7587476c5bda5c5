"""The real command line, the way a user runs it, for the reliability tests: tiny toy runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOY = ["--config", str(REPO / "configs" / "toy_ring.yaml"), "model.g_width=16", "model.d_width=16"]
TOY += ["data.batch_size=32", "train.n_critic=1", "log.every=1", "log.sample_every=0", "log.num_samples=4"]
TOY += ["optim.lr_decay_start=1.0", "optim.d.lr=0.0001", "optim.g.lr=0.0001"]  # constant, known lrs


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def train(out: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "distgan.train", *TOY, f"train.out_dir={out}", *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env(),
        stdin=subprocess.DEVNULL,
    )


def start_train(out: Path, *args: str) -> subprocess.Popen:
    """A run in the background; its output goes to <out>.stdout / <out>.stderr (a pipe nobody reads
    would fill up and block the run)."""
    command = [sys.executable, "-m", "distgan.train", *TOY, f"train.out_dir={out}", *args]
    stdout, stderr = open(f"{out}.stdout", "w"), open(f"{out}.stderr", "w")  # noqa: SIM115 (the run owns them)
    return subprocess.Popen(
        command, stdout=stdout, stderr=stderr, text=True, cwd=REPO, env=env(), stdin=subprocess.DEVNULL
    )


def wait_for_output(out: Path, text: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in Path(f"{out}.stdout").read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {out}.stdout")


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a user error must be (asserts it is one line, exit 2, no traceback)."""
    lines = [
        line for line in result.stderr.strip().splitlines() if not line.startswith("[")
    ]  # DeepSpeed logs
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def metric_steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.is_file() else []


def assert_steps_unique_and_increasing(out: Path) -> None:
    steps = metric_steps(out)
    assert steps == sorted(set(steps)), steps


def snapshot(out: Path) -> dict[str, int]:
    """Every file under `out` with its size: compare before/after to prove nothing was lost."""
    return {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
