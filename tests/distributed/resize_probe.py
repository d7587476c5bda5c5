"""Run the REAL training entry point and dump what this rank saw, for the resize-resume tests.

    [accelerate launch ...] tests/distributed/resize_probe.py --probe-out DIR --config ... KEY=VALUE ...

Everything after --probe-out DIR goes to `distgan.train.main` unchanged. Each rank writes
DIR/rank<R>.pt with:
  rows        the real examples of every D step, in order (toy points: each one identifies itself)
  first_step  G's and D's state dicts and both optimizers' states just before the first D step
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from distgan import train as train_cli
from distgan.trainer import TrainHooks

record: dict = {"rows": [], "first_step": None}


def cloned(value):
    """A snapshot: every tensor copied (state dicts hold the live tensors, DeepSpeed's also views)."""
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: cloned(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cloned(v) for v in value)
    return value


def before_d_step(backend, batch) -> None:
    record["rows"].append(batch.images.detach().cpu().clone())
    if record["first_step"] is None:
        record["first_step"] = {
            "g": {k: v.detach().cpu().clone() for k, v in backend.generator_module.state_dict().items()},
            "d": {k: v.detach().cpu().clone() for k, v in backend.discriminator_module.state_dict().items()},
            "optimizers": {name: cloned(opt.state_dict()) for name, opt in backend.optimizers.items()},
        }


def main() -> int:
    argv = sys.argv[1:]
    out = Path(argv[argv.index("--probe-out") + 1])
    del argv[argv.index("--probe-out") : argv.index("--probe-out") + 2]
    code = train_cli.main(argv, hooks=TrainHooks(before_d_step=before_d_step))
    out.mkdir(parents=True, exist_ok=True)
    torch.save(record, out / f"rank{os.environ.get('RANK', '0')}.pt")
    return code


if __name__ == "__main__":
    sys.exit(main())
