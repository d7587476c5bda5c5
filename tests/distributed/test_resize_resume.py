"""Resume on another number of processes (gloo): DDP 1 -> 2 -> 1 processes, ZeRO-2 2 -> 1.

Toy data (each point identifies itself), 40 points per epoch, global batch 8:
  run A, 1 process, steps 1-3    reads 24 points of epoch 0
  run B, 2 processes, steps 4-6  reads the other 16 of epoch 0, then 4 + 4 of epoch 1
  run C, 1 process, steps 7-10   reads the other 32 of epoch 1
At the first step of B (both ranks) and C, G, D and both optimizers hold exactly the checkpoint's
values; each epoch's points are read exactly once across each change; every run finishes; the
warning that the continuation is not bitwise is printed once per resumed run. Under ZeRO-2 the
optimizer's partitions of the 2 saved ranks, joined, are the 1-process run's state exactly.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distgan.data.toy import toy_points
from tests.launching import REPO, WORKERS, accelerate_launch, cpu_env, run

pytestmark = pytest.mark.slow
PROBE = str(WORKERS / "resize_probe.py")
POINTS, BATCH = 40, 8
TOY = [
    "--config", str(REPO / "configs" / "toy_ring.yaml"), "model.g_width=8", "model.d_width=8",
    f"data.batch_size={BATCH}", f"data.toy_samples={POINTS}", "train.n_critic=1",
    "log.every=1", "log.sample_every=0", "log.num_samples=16",
]  # fmt: skip
WARNING = (
    "warning: step_{step:07d} was written by {old} and this run has {new}: the training continues validly"
)


def probe(processes: int, out: Path, name: str, steps: int, extra: tuple = ()):
    run_dir = out / "run"
    args = [
        PROBE,
        "--probe-out",
        str(out / name),
        *TOY,
        f"train.steps={steps}",
        f"train.out_dir={run_dir}",
        *extra,
    ]
    cmd = accelerate_launch(2, *args) if processes == 2 else [sys.executable, *args]
    result = run(cmd, env=cpu_env(), timeout=240)  # exit 0: the run finished
    ranks = [torch.load(out / name / f"rank{r}.pt", weights_only=False) for r in range(processes)]
    return result.stdout + result.stderr, ranks


def keys(rows: list[torch.Tensor]) -> list[bytes]:
    return [point.numpy().tobytes() for batch in rows for point in batch]


def assert_holds_the_checkpoint(first_step: dict, checkpoint: Path) -> None:
    for name, file in (("g", "generator"), ("d", "discriminator")):
        saved = load_file(str(checkpoint / f"{file}.safetensors"))
        assert saved.keys() == first_step[name].keys()
        assert all(torch.equal(saved[k], first_step[name][k]) for k in saved), f"{file} differs"
    for name, file in (("g", "optimizer.bin"), ("d", "optimizer_1.bin")):  # accelerate's prepare order
        saved = torch.load(checkpoint / "state" / file, weights_only=True)["state"]
        now = first_step["optimizers"][name]["state"]
        assert saved.keys() == now.keys() and saved
        for index, state in saved.items():
            assert all(torch.equal(state[k], now[index][k]) for k in state), f"optimizer {name}[{index}]"


def test_one_to_two_to_one_processes(tmp_path):
    everything = Counter(keys([toy_points("ring8", POINTS, 0)[0]]))
    assert len(everything) == POINTS

    out_a, (a,) = probe(1, tmp_path, "a", steps=3)
    out_b, (b0, b1) = probe(2, tmp_path, "b", steps=6)
    out_c, (c,) = probe(1, tmp_path, "c", steps=10)
    checkpoints = tmp_path / "run" / "checkpoints"

    assert "was written by" not in out_a
    assert out_b.count(WARNING.format(step=3, old="1 process", new="2 processes")) == 1, out_b[-3000:]
    assert out_c.count(WARNING.format(step=6, old="2 processes", new="1 process")) == 1, out_c[-3000:]
    for first in (b0, b1):
        assert_holds_the_checkpoint(first["first_step"], checkpoints / "step_0000003")
    assert_holds_the_checkpoint(c["first_step"], checkpoints / "step_0000006")
    assert (checkpoints / "latest").read_text().strip() == "step_0000010"

    # Epoch 0: A's 24, then B's two shares of the 16 left (8 each, 2 batches of 4, first).
    b_rows = [keys(b0["rows"]), keys(b1["rows"])]
    assert Counter(keys(a["rows"]) + b_rows[0][:8] + b_rows[1][:8]) == everything
    # Epoch 1: B's next batch on each rank, then C's 32.
    assert Counter(b_rows[0][8:] + b_rows[1][8:] + keys(c["rows"])) == everything


def joined_partitions(checkpoint: Path, tag: str, world: int) -> dict[str, torch.Tensor]:
    """The saved ZeRO partitions of every rank joined into the whole flat group (padding dropped)."""
    parts = [
        torch.load(
            checkpoint / "state" / tag / f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt", weights_only=False
        )["optimizer_state_dict"]
        for r in range(world)
    ]
    joined = {"fp32": torch.cat([p["single_partition_of_fp32_groups"][0] for p in parts])}
    for key in ("exp_avg", "exp_avg_sq"):
        slices = [p["base_optimizer_state"]["state"][0][key] for p in parts]
        joined[key] = torch.cat(
            [s[: s.numel() - p["group_paddings"][0]] for s, p in zip(slices, parts, strict=True)]
        )
    return joined


def test_zero2_two_to_one_process(tmp_path):
    everything = Counter(keys([toy_points("ring8", POINTS, 0)[0]]))
    zero2 = ("distributed.backend=deepspeed", "distributed.zero_stage=2")
    _, (a0, a1) = probe(2, tmp_path, "a", steps=3, extra=zero2)
    out_b, (b,) = probe(1, tmp_path, "b", steps=6, extra=zero2)
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000003"

    assert out_b.count(WARNING.format(step=3, old="2 processes", new="1 process")) == 1, out_b[-3000:]
    for name, file in (("g", "generator"), ("d", "discriminator")):
        saved = load_file(str(checkpoint / f"{file}.safetensors"))
        assert all(torch.equal(saved[k], b["first_step"][name][k]) for k in saved), f"{file} differs"
        joined = joined_partitions(checkpoint, file, 2)
        now = b["first_step"]["optimizers"][name]  # one process: its partition is the whole group
        state = now["base_optimizer_state"]["state"][0]
        assert joined["exp_avg"].abs().sum() > 0
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state[key][: joined[key].numel()], joined[key]), f"{file} {key}"
        assert torch.equal(
            now["single_partition_of_fp32_groups"][0][: joined["fp32"].numel()], joined["fp32"]
        )
        assert state["step"].shape == () and int(state["step"]) == 3
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_0000006"
    a_rows = keys(a0["rows"]) + keys(a1["rows"])  # 2 x 12 of epoch 0
    assert Counter(a_rows + keys(b["rows"])[:16]) == everything
