"""Real multi-process launches for the tests: `accelerate launch` on CPU (gloo).

FACTS.md: on a machine without CUDA, `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu
--num_processes N` forms one real N-process gloo world. Every launch gets a free port so tests
(and other suites on the same machine) never collide, and one CPU thread per process so two
processes on two cores do not oversubscribe them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).resolve().parent / "distributed"
# Tiny models and batches: every test run of the trainer takes seconds.
TINY_OVERRIDES = [
    "model.g_width=8",
    "model.d_width=8",
    "data.batch_size=16",
    "log.every=1",
    "log.sample_every=0",
    "log.num_samples=16",
]
TINY_TRAIN = ["--config", str(REPO / "configs" / "quickstart.yaml"), *TINY_OVERRIDES, "checkpoint.every=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ACCELERATE_USE_CPU="1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        WANDB_MODE="disabled",
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


ONE_MACHINE = ("--num_machines", "1", "--mixed_precision", "no")


def accelerate_launch(
    num_processes: int, *args: str, port: int | None = None, flags: tuple = ONE_MACHINE
) -> list[str]:
    """`accelerate launch --multi_gpu ...` with every flag given (no 'defaults used' warning)."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(num_processes),
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port or free_port()),
        *flags,
        *args,
    ]


def run(cmd: list[str], timeout: float = 240, env: dict | None = None, check: bool = True):
    result = subprocess.run(
        cmd, cwd=REPO, env=env or cpu_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)}\nexit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


def worker_pids(marker: str) -> dict[int, int]:
    """{global rank: pid} of the training processes whose command line contains `marker`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = dict(
                item.split(b"=", 1) for item in (entry / "environ").read_bytes().split(b"\0") if b"=" in item
            )
        except OSError:
            continue
        if marker.encode() in cmdline and b"TORCHELASTIC_RUN_ID" in environ and b"RANK" in environ:
            found[int(environ[b"RANK"])] = int(entry.name)
    return found
