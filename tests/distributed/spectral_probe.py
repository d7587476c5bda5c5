"""Run the REAL training entry point on several processes and record spectral norm's buffers.

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 \
        tests/distributed/spectral_probe.py --probe-out DIR --config FILE KEY=VALUE ...

Everything after --probe-out DIR goes to `distgan.train.main` unchanged. Each rank records G's and
D's power-iteration vectors (`..._u`, `..._v`) after every G step ("steps"), and just BEFORE and just
AFTER every `backend.sync_buffers()` (the average of every floating-point buffer, which the loop runs
only where something reads the buffers: "syncs", with the G step it followed); at the end each rank
writes DIR/rank<R>.pt with {"steps": [...], "syncs": [...], "state": {...}}.
SN_PROBE_PLANT_DESYNC=1 (a sensitivity check by hand): rank 1 starts from different u, v vectors and
the average is skipped, so the ranks' buffers must then differ.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from distgan import train as train_cli
from distgan.trainer import TrainHooks

record: dict = {"steps": [], "syncs": []}
captured: dict = {}


def power_iteration_buffers(backend) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.{name}": buffer.detach().clone()
        for prefix, module in (("g", backend.generator_module), ("d", backend.discriminator_module))
        for name, buffer in module.named_buffers()
        if name.endswith(("_u", "_v"))
    }


def instrument(backend) -> None:
    captured["backend"] = backend
    plant = os.environ.get("SN_PROBE_PLANT_DESYNC") and int(os.environ.get("RANK", "0")) == 1
    if plant:
        with torch.no_grad():
            for name, buffer in backend.discriminator_module.named_buffers():
                if name.endswith(("_u", "_v")):  # v drives torch's update: u = normalize(W v)
                    buffer.copy_(F.normalize(buffer + 0.5 * torch.randn_like(buffer), dim=0))
    original = backend.sync_buffers

    def observed_sync() -> None:
        before = power_iteration_buffers(backend)
        if not os.environ.get("SN_PROBE_PLANT_DESYNC"):
            original()
        after = power_iteration_buffers(backend)
        record["syncs"].append({"step": len(record["steps"]), "before": before, "after": after})

    backend.sync_buffers = observed_sync


def after_g_step(backend) -> None:
    record["steps"].append(power_iteration_buffers(backend))


def main() -> int:
    argv = sys.argv[1:]
    out = Path(argv[argv.index("--probe-out") + 1])
    del argv[argv.index("--probe-out") : argv.index("--probe-out") + 2]
    code = train_cli.main(argv, hooks=TrainHooks(on_backend=instrument, after_g_step=after_g_step))
    backend = captured["backend"]
    record["state"] = {
        f"{prefix}.{k}": v.detach().clone()
        for prefix, module in (("g", backend.generator_module), ("d", backend.discriminator_module))
        for k, v in module.state_dict().items()
    }
    out.mkdir(parents=True, exist_ok=True)
    torch.save(record, out / f"rank{int(os.environ.get('RANK', '0'))}.pt")
    return code


if __name__ == "__main__":
    sys.exit(main())
