"""Gradients through distgan's DDP communication hooks vs plain DDP, on 2 gloo processes.

For each hook a small conv D is wrapped twice in DDP (same init): once plain, once with
`distgan.distributed.compression.register_comm_hook`. Both take the same per-rank batches for a
few steps (PowerSGD: past its warm-up) and the gradients of the last step are compared. Rank 0
prints one JSON line per hook: the largest difference relative to the largest gradient.

    torchrun --nproc_per_node 2 tests/distributed/comm_hook_probe.py
"""

from __future__ import annotations

import json

import torch
import torch.distributed as dist
from torch import nn

from distgan.config import load_config
from distgan.distributed.compression import register_comm_hook

STEPS = 4


def critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 6), nn.Linear(6, 1)
    )


def last_gradients(model: nn.Module, rank: int) -> list[torch.Tensor]:
    for step in range(STEPS):
        x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(100 * step + rank))
        model.zero_grad()
        model(x).pow(2).mean().backward()
    return [p.grad.clone() for p in model.parameters()]


def main() -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    reference = last_gradients(nn.parallel.DistributedDataParallel(critic()), rank)
    # full rank: the largest matrix here is 6 x 64, so rank 6 spans it (PowerSGD then is exact)
    for hook in ("fp16", "powersgd"):
        settings = load_config(None, [f"distributed.comm_hook={hook}", "distributed.powersgd_rank=6",
                                      "distributed.powersgd_warmup=2"]).distributed  # fmt: skip
        model = nn.parallel.DistributedDataParallel(critic())
        register_comm_hook(model, settings)
        grads = last_gradients(model, rank)
        scale = max(float(g.abs().max()) for g in reference)
        error = max(float((g - r).abs().max()) for g, r in zip(grads, reference, strict=True)) / scale
        if rank == 0:
            print(json.dumps({"hook": hook, "relative_error": error}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
