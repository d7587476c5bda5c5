"""Checks the scaling model's overlap rule (benchmarks/scaling_model.py) on 2 CPU processes (gloo).

    OMP_NUM_THREADS=1 python benchmarks/overlap_check.py [--config configs/celeba_wgan.yaml]
        [--batch 8] [--bucket-mb 1] [--repeats 30] [--out benchmarks/results/cpu2_overlap_check.json]

Both processes run D's update of the config (forward + backward on a batch) four ways, each
repeated and timed by its median:
  compute    no communication at all (each process alone, at the same time as the other);
  serial     backward, then each DDP bucket all-reduced one after another (no overlap);
  ddp        torch DDP with `--bucket-mb` buckets: each bucket all-reduced as soon as it is ready.
Measured inputs of the model: each gradient's ready time in the backward (hooks), each bucket's
all-reduce time alone. The model's prediction for `ddp` is compute + what the serial stream of
all-reduces outlasts the backward (scaling_model.exposed_comm_s with measured times); the script
prints it next to the measured `ddp` time. On 2 shared cores the all-reduce threads compete with
the backward for the CPU, which a GPU (communication on its own engine) does not do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaling_model import Layer, Network, buckets  # noqa: E402

from distgan.config import load_config  # noqa: E402
from distgan.models import build_discriminator  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/celeba_wgan.yaml")
    p.add_argument("--batch", type=int, default=8, help="images per process")
    p.add_argument("--bucket-mb", type=float, default=1.0, help="DDP bucket_cap_mb")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu2_overlap_check.json"))
    return p.parse_args(argv)


def interleaved_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Each function timed `repeats` times, in turns (a change of machine load hits all alike)."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            dist.barrier()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def worker(rank: int, args: argparse.Namespace, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    cfg = load_config(args.config, ["data.source=embedded"])
    model = build_discriminator(cfg.model, cfg.sample_shape)
    images = torch.randn(args.batch, *cfg.sample_shape)
    params = [p for p in model.parameters() if p.requires_grad]

    def update(net):
        net.zero_grad(set_to_none=True)
        net(images).mean().backward()

    # When each gradient is ready, measured by hooks over a few backward passes.
    ready: dict[int, list[float]] = {i: [] for i in range(len(params))}
    start = [0.0]
    hooks = [
        p.register_post_accumulate_grad_hook(lambda _p, i=i: ready[i].append(time.perf_counter() - start[0]))
        for i, p in enumerate(params)
    ]
    for _ in range(max(5, args.repeats // 3)):
        model.zero_grad(set_to_none=True)
        out = model(images).mean()
        start[0] = time.perf_counter()
        out.backward()
    for h in hooks:
        h.remove()
    backward_s = statistics.median(max(ready[i][k] for i in ready) for k in range(len(ready[0])))
    # DDP's bucket order: reverse registration; one "layer" per parameter with its measured ready time.
    order = list(range(len(params)))[::-1]
    ready_s = [statistics.median(ready[i]) for i in order]
    increments = [b - a for a, b in zip([0.0, *ready_s[:-1]], ready_s, strict=True)]
    network = Network(
        [Layer((tuple(params[i].shape),), max(d, 0.0)) for i, d in zip(order, increments, strict=True)]
    )
    bucket_list = buckets(network, int(args.bucket_mb * 2**20))
    flats = [torch.zeros(sum(torch.Size(s).numel() for s in shapes)) for shapes, _ in bucket_list]
    reduce_each = {k: (lambda f=f: dist.all_reduce(f)) for k, f in enumerate(flats)}
    allreduce = list(interleaved_medians(reduce_each, args.repeats).values())

    def serial():
        update(model)
        for f in flats:
            dist.all_reduce(f)

    ddp = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    measured = interleaved_medians(
        {"compute": lambda: update(model), "serial": serial, "ddp": lambda: update(ddp)}, args.repeats
    )
    compute, serial_s, ddp_s = measured["compute"], measured["serial"], measured["ddp"]

    finished = 0.0  # the model's rule with measured ready times and all-reduce times
    for (_, ready_at), cost in zip(bucket_list, allreduce, strict=True):
        finished = max(finished, ready_at) + cost
    exposed = max(0.0, finished - backward_s)
    if rank == 0:
        results.update(
            compute_s=compute,
            backward_s=backward_s,
            buckets=len(bucket_list),
            bucket_mib=[round(f.numel() * 4 / 2**20, 3) for f in flats],
            allreduce_s=allreduce,
            serial_measured_s=serial_s,
            serial_predicted_s=compute + sum(allreduce),
            ddp_measured_s=ddp_s,
            ddp_predicted_s=compute + exposed,
        )
    dist.destroy_process_group()


def main(argv=None) -> int:
    args = parse_args(argv)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args, port, results), nprocs=2, join=True)
        figures = dict(results)
    record = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/overlap_check.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "load_average_1min": os.getloadavg()[0],
        "config": args.config,
        "batch_per_process": args.batch,
        "bucket_mb": args.bucket_mb,
        **figures,
    }
    for key in ("compute_s", "serial_measured_s", "serial_predicted_s", "ddp_measured_s", "ddp_predicted_s"):
        print(f"{key:20s} {figures[key] * 1e3:8.1f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
