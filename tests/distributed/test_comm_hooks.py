"""distributed.comm_hook: compressed gradient all-reduce for G and D (fp16, bf16, PowerSGD).

- On 2 gloo processes, fp16's gradients differ from plain DDP's by fp16 rounding only, and
  PowerSGD at full rank gives the uncompressed gradients to float tolerance (it really goes
  through the hook: a rank-1 approximation is far off).
- Real training runs with each CPU hook (WGAN-GP and R1 on, two micro-batches) finish with
  finite losses.
- bf16 (NCCL only) on CPU and any hook under DeepSpeed are one clear line, exit 2.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from distgan.config import ConfigError, load_config
from distgan.distributed.world import check_backend_available
from tests.launching import REPO, TINY_TRAIN, accelerate_launch, cpu_env, free_port, run

PROBE = REPO / "tests" / "distributed" / "comm_hook_probe.py"


@pytest.mark.slow
def test_hooked_gradients_match_plain_ddp_within_the_compression_error():
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
         str(free_port()), str(PROBE)],
        cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    errors = {
        r["hook"]: r["relative_error"] for r in map(json.loads, out.stdout.split("\n")[:-1]) if "hook" in r
    }
    assert set(errors) == {"fp16", "powersgd"}, out.stdout + out.stderr[-3000:]
    assert 0 < errors["fp16"] < 2e-3  # compressed (not zero), within fp16 rounding (2**-11)
    assert errors["powersgd"] < 1e-5  # full rank: exact up to float rounding


@pytest.mark.slow
@pytest.mark.parametrize("hook", ["fp16", "powersgd"])
def test_training_with_a_hook_and_both_penalties_finishes(tmp_path, hook):
    cmd = accelerate_launch(
        2, "-m", "distgan.train", *TINY_TRAIN, "train.steps=4", f"train.out_dir={tmp_path}",
        f"distributed.comm_hook={hook}", "distributed.powersgd_warmup=2", "objective.loss=wasserstein",
        "objective.penalty=gp", "objective.r1_weight=1.0", "train.grad_accum=2", "model.num_classes=0",
    )  # fmt: skip
    run(cmd, timeout=300)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert all(math.isfinite(line["loss_d"]) and math.isfinite(line["loss_g"]) for line in lines)


def test_bf16_compression_on_cpu_is_refused_before_any_process_group():
    cfg = load_config(None, ["distributed.comm_hook=bf16"])
    with pytest.raises(ConfigError, match=r"distributed.comm_hook: bf16 compression needs NCCL"):
        check_backend_available(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["distributed.backend=deepspeed", "distributed.comm_hook=fp16"],
            "DeepSpeed reduces gradients itself",
        ),
        (["distributed.comm_hook=powersgd", "distributed.powersgd_rank=0"], "powersgd_rank: must be >= 1"),
        (["distributed.comm_hook=zip"], "distributed.comm_hook"),
    ],
)
def test_bad_hook_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
