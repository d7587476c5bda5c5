"""Run the REAL training entry point with instruments attached; dump what each rank observed.

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 \
        tests/distributed/trainer_probe.py --probe-out DIR --config configs/quickstart.yaml KEY=VALUE ...

Everything after --probe-out DIR is passed to `distgan.train.main` unchanged. The instruments only
observe (train()'s TrainHooks and DDP/autograd hooks), so the run is the one users get. Each rank writes
DIR/rank<R>.pt with:
  latents[step]          the latent batch G received in each D step and G step, with its phase
  images[step]           the real local batch of each D step
  comm_calls[model][phase]   DDP communication-hook invocations (all-reduces of gradient buckets)
  grad_hooks[model][phase]   gradients accumulated into the model's parameters
  d_grad_unchanged       per G step: D's .grad tensors identical before and after it
  logs                   (step, scalars) of every log step, as this rank computed them
  all_reduces[who]       torch.distributed.all_reduce calls by who asked: "stop" (StopRequest),
                         "buffers" (the BatchNorm average), else the calling function's name
  stop_values            per stop-flag all-reduce, the agreed [flag, seconds per check point, cost]
  state                  final g.* and d.* parameters and buffers
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from distgan import train as train_cli
from distgan.trainer import TrainHooks

record: dict = {
    "latents": [],
    "images": [],
    "comm_calls": {"g": defaultdict(int), "d": defaultdict(int)},
    "grad_hooks": {"g": defaultdict(int), "d": defaultdict(int)},
    "d_grad_unchanged": [],
    "logs": [],
    "all_reduces": defaultdict(int),
    "stop_values": [],
}
phase = {"now": "setup"}
captured = {}


def count_all_reduces() -> None:
    """Tag every torch.distributed.all_reduce with the loop concern that asked for it."""
    all_reduce = torch.distributed.all_reduce

    def counted(*args, **kwargs):
        frame, who = sys._getframe(1), sys._getframe(1).f_code.co_name
        while frame is not None:
            name = frame.f_code.co_qualname
            if name.startswith("StopRequest."):
                who = "stop"
                break
            if name == "average_buffers":
                who = "buffers"
                break
            frame = frame.f_back
        record["all_reduces"][who] += 1
        out = all_reduce(*args, **kwargs)
        if who == "stop":  # the agreed values: the test recomputes K from them
            record["stop_values"].append(args[0].tolist())
        return out

    torch.distributed.all_reduce = counted


def instrument(backend) -> None:
    captured["backend"] = backend
    if os.environ.get("PROBE_PLANT_NO_BUFFER_SYNC"):  # sensitivity check: the BatchNorm test must fail
        backend.sync_buffers = lambda: None
    for name, wrapped, module in (
        ("g", backend.generator, backend.generator_module),
        ("d", backend.discriminator, backend.discriminator_module),
    ):
        if isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):

            def counting_hook(state, bucket, name=name):
                record["comm_calls"][name][phase["now"]] += 1
                return allreduce_hook(state, bucket)

            wrapped.register_comm_hook(None, counting_hook)
        for param in module.parameters():
            param.register_post_accumulate_grad_hook(
                lambda p, name=name: record["grad_hooks"][name].__setitem__(
                    phase["now"], record["grad_hooks"][name][phase["now"]] + 1
                )
            )
    backend.generator_module.register_forward_pre_hook(
        lambda module, args: record["latents"].append((phase["now"], args[0].detach().cpu().clone()))
    )


def main() -> int:
    argv = sys.argv[1:]
    out = Path(argv[argv.index("--probe-out") + 1])
    del argv[argv.index("--probe-out") : argv.index("--probe-out") + 2]
    d_grads_before: list = []

    def before_d_step(backend, batch) -> None:
        phase["now"] = "d"
        record["images"].append(batch.images.detach().cpu().clone())

    def before_g_step(backend) -> None:
        phase["now"] = "g"
        d_grads_before[:] = [
            None if p.grad is None else p.grad.clone() for p in backend.discriminator_module.parameters()
        ]

    def after_g_step(backend) -> None:
        if os.environ.get("PROBE_SYNC_EVERY_STEP"):  # the reference: BatchNorm averaged every step
            backend.sync_buffers()
        after = [p.grad for p in backend.discriminator_module.parameters()]
        record["d_grad_unchanged"].append(
            all(
                (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
                for a, b in zip(d_grads_before, after, strict=True)
            )
        )
        phase["now"] = "after"

    hooks = TrainHooks(
        on_backend=instrument,
        before_d_step=before_d_step,
        before_g_step=before_g_step,
        after_g_step=after_g_step,
        on_log=lambda step, scalars: record["logs"].append((step, dict(scalars))),
    )
    count_all_reduces()
    code = train_cli.main(argv, hooks=hooks)
    backend = captured["backend"]
    record["state"] = {
        f"{prefix}.{k}": v.detach().float().cpu().clone()
        for prefix, module in (("g", backend.generator_module), ("d", backend.discriminator_module))
        for k, v in module.state_dict().items()
    }
    record["comm_calls"] = {k: dict(v) for k, v in record["comm_calls"].items()}
    record["grad_hooks"] = {k: dict(v) for k, v in record["grad_hooks"].items()}
    record["all_reduces"] = dict(record["all_reduces"])
    out.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    torch.save(record, out / f"rank{rank}.pt")
    return code


if __name__ == "__main__":
    sys.exit(main())
