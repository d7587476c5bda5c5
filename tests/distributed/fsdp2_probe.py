"""Is torch's FSDP2 (`fully_shard`) correct with the gradient penalty's double backward?

One D update of a WGAN-GP critic and of an R1-regularised D on a FIXED global batch: the loss
(with the penalty's `autograd.grad(..., create_graph=True)` w.r.t. the inputs) and ONE backward.
With one process the gradients are the reference; with N processes each rank takes its rows of
the batch, D is wrapped in `fully_shard`, and the full gradients (gathered from the shards) must
equal the reference. Prints one JSON line per case on rank 0.

    python tests/distributed/fsdp2_probe.py --out DIR                     # the one-process reference
    torchrun --nproc_per_node 2 tests/distributed/fsdp2_probe.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


def critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 4 * 4, 8), nn.LeakyReLU(0.2),
        nn.Linear(8, 1),
    )  # fmt: skip


def batch(global_batch: int = 8):
    rng = torch.Generator().manual_seed(1)
    real = torch.randn(global_batch, 1, 8, 8, generator=rng)
    fake = torch.randn(global_batch, 1, 8, 8, generator=rng)
    alpha = torch.rand(global_batch, 1, 1, 1, generator=rng)
    return real, fake, alpha


def loss(model: nn.Module, real, fake, alpha, kind: str, world: int) -> torch.Tensor:
    """The local share of the global mean loss (x world: DDP/FSDP average the ranks' gradients)."""
    if kind == "wgan-gp":
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        grad = torch.autograd.grad(model(x_hat).sum(), x_hat, create_graph=True)[0]
        penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return model(fake).mean() - model(real).mean() + 10 * penalty
    real = real.detach().requires_grad_(True)
    d_real = model(real)
    grad = torch.autograd.grad(d_real.sum(), real, create_graph=True)[0]
    r1 = grad.flatten(1).pow(2).sum(1).mean()
    return nn.functional.softplus(-d_real).mean() + nn.functional.softplus(model(fake)).mean() + 5 * r1


def full_gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    grads = {}
    missing = [name for name, param in model.named_parameters() if param.grad is None]
    if missing:
        raise RuntimeError(f"no gradient after the backward for {len(missing)} parameters: {missing[:3]}")
    for name, param in model.named_parameters():
        grad = param.grad
        if hasattr(grad, "full_tensor"):  # a DTensor shard: gather the whole gradient
            grad = grad.full_tensor()
        grads[name] = grad.detach().clone()
    return grads


def run_case(kind: str, rank: int, world: int, reshard: bool) -> dict[str, torch.Tensor]:
    model = critic()
    real, fake, alpha = batch()
    if world > 1:
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, nn.Conv2d | nn.Linear):
                fully_shard(layer, reshard_after_forward=reshard)
        fully_shard(model, reshard_after_forward=reshard)
        if not reshard:  # keep the unsharded weights through the penalty's first backward too
            for module in model.modules():
                if hasattr(module, "set_reshard_after_backward"):
                    module.set_reshard_after_backward(False)
        rows = slice(rank * len(real) // world, (rank + 1) * len(real) // world)
        real, fake, alpha = real[rows], fake[rows], alpha[rows]
    loss(model, real, fake, alpha, kind, world).backward()
    return full_gradients(model)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)

    args = parser.parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # reshard=False: reshard_after_forward=False and set_reshard_after_backward(False), the fix
    # suggested upstream for second-order gradients (pytorch issue 172543)
    for kind, reshard in (("wgan-gp", True), ("r1", True), ("wgan-gp", False), ("r1", False)):
        try:
            grads = run_case(kind, rank, world, reshard)
            result = {"case": kind, "world": world, "reshard": reshard, "ok": True}
            if rank == 0:
                torch.save(grads, out / f"{kind}.reshard{int(reshard)}.world{world}.pt")
        except Exception as err:  # the probe reports what fails; it is not part of distgan
            error = f"{type(err).__name__}: {err}"[:400]
            result = {"case": kind, "world": world, "reshard": reshard, "ok": False, "error": error}
        if rank == 0:
            print(json.dumps(result), flush=True)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
