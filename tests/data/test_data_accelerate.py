"""A real 2-process `accelerate launch` reads a local parquet source through the streaming path."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from data_helpers import cfg_for, image_keys

from distgan.data import real_examples

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_accelerate_launch_reads_disjoint_complete_shares(celeba_dir, tmp_path):
    # 126 rows in 3 files, 2 processes: split by examples, 63 per process = 9 local batches of 7.
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cmd = [
        launcher,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(REPO / "tests" / "data" / "accelerate_reader.py"),
        "--path",
        str(celeba_dir),
        "--out",
        str(tmp_path),
        "--batches",
        "9",
    ]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2], "accelerate did not form a 2-process world"
    assert all(r["shapes"] == [[7, 3, 64, 64]] for r in ranks)
    assert all("split by examples" in r["describe"] for r in ranks)
    assert all((r["state"]["epoch"], r["state"]["index"]) == (0, 63) for r in ranks)
    a, b = (set(r["keys"]) for r in ranks)
    assert len(a) == len(b) == 63 and not a & b
    everything = set(
        image_keys(
            real_examples(
                cfg_for("data.source=parquet", f"data.path={celeba_dir}", config="configs/celeba_dcgan.yaml"),
                126,
            ).images
        )
    )
    assert a | b == everything
