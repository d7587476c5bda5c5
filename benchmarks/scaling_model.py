"""Weak-scaling model on paper: where distgan's loop stops scaling, before anyone rents the nodes.

    python benchmarks/scaling_model.py            # prints README's table (Markdown) and its inputs

Per iteration a process computes for T_c (constant under weak scaling: the per-GPU batch is fixed)
and all-reduces gradients n_critic times for D and once for G; nothing else (issue 15: the stop
flag is agreed every K steps, BatchNorm stats only where read). With no overlap of communication
and backward (DDP does overlap part of it, so this is a lower bound):

    T_allreduce(S, p) = buckets(S) * 2 * log2(p) * alpha + 2 * (p - 1) / p * S / B
    efficiency(p)     = T_c / (T_c + n_critic * T_allreduce(S_D, p) + T_allreduce(S_G, p))

S: gradient bytes (fp32), B: per-GPU bus bandwidth of the link, alpha: per-hop latency (tree
latency, ring bandwidth: NCCL's two regimes), buckets: DDP's 25 MB gradient buckets.
T_c = model FLOPs per iteration / (MFU * peak). Inputs that no GPU has measured yet are marked
ASSUMED; `python -m distgan.bench gpu` measures T_c and MFU the day a GPU is lent.

Both rows are counted from distgan's shipped configs: DCGAN-64 from configs/celeba_wgan.yaml
(WGAN-GP, n_critic 5) and ResNet-128 from configs/celeba_resnet_128.yaml (SN-ResNet with
self-attention at 64 px, hinge, n_critic 2; DiffAugment's cost is negligible next to the networks).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from distgan.config import load_config
from distgan.models import build_discriminator, build_generator

H100_PEAK_TFLOPS = 989.0  # dense bf16
MFU = 0.25  # ASSUMED for these small convnets on an H100 (bench gpu measures it)
LOCAL_BATCH = 64  # images per GPU per D step (weak scaling)
BUCKET_BYTES = 25 * 2**20
# (per-GPU bus bandwidth in bytes/s, per-hop latency in s): ASSUMED typical NCCL figures.
LINKS = {
    "NVLink (H100, one 8-GPU node)": (360e9, 5e-6),
    "InfiniBand 100 Gb/s per GPU": (11e9, 8e-6),
    "InfiniBand 400 Gb/s per GPU": (45e9, 8e-6),
}
GPUS = (8, 64, 512)
MEASURED_HERE = {  # benchmarks/results/cpu2_quickstart.json: 2 CPU processes, gloo over loopback
    "small all-reduce (stop flag)": "0.38 ms",
    "quickstart gradients (G + D, 1 D step)": "3.4 ms",
}


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def iteration_flops(g_fwd: int, d_fwd: int, n_critic: int, penalty: bool) -> int:
    """Per image: a D step = G forward + D forward/backward on real and fake (+ the penalty's
    forward and double backward, ~4 D forwards); the G step = G and D forward/backward."""
    d_step = g_fwd + 2 * 3 * d_fwd + (4 * d_fwd if penalty else 0)
    return n_critic * d_step + 3 * (g_fwd + d_fwd)


def allreduce_s(size_bytes: float, p: int, bandwidth: float, alpha: float) -> float:
    buckets = max(1, math.ceil(size_bytes / BUCKET_BYTES))
    return buckets * 2 * math.log2(p) * alpha + 2 * (p - 1) / p * size_bytes / bandwidth


def models() -> dict[str, dict]:
    cfg = load_config("configs/celeba_wgan.yaml", ["data.source=embedded"])
    g, d = build_generator(cfg.model, cfg.sample_shape), build_discriminator(cfg.model, cfg.sample_shape)
    z = torch.randn(1, cfg.model.latent_dim)
    dcgan = {
        "g": g,
        "d": d,
        "g_fwd": forward_flops(g, z),
        "d_fwd": forward_flops(d, torch.randn(1, 3, 64, 64)),
        "n_critic": cfg.train.n_critic,
        "penalty": True,
        "note": "configs/celeba_wgan.yaml: WGAN-GP, n_critic 5",
    }
    rcfg = load_config("configs/celeba_resnet_128.yaml", ["data.source=embedded"])
    rg, rd = (
        build_generator(rcfg.model, rcfg.sample_shape),
        build_discriminator(rcfg.model, rcfg.sample_shape),
    )
    rg.eval()  # one-sample forward: BatchNorm in eval mode (the FLOPs are the same)
    resnet = {
        "g": rg,
        "d": rd,
        "g_fwd": forward_flops(rg, torch.randn(1, rcfg.model.latent_dim)),
        "d_fwd": forward_flops(rd, torch.randn(1, 3, 128, 128)),
        "n_critic": rcfg.train.n_critic,
        "penalty": False,
        "note": "configs/celeba_resnet_128.yaml: SN-ResNet + attention, hinge, n_critic 2",
    }
    return {"DCGAN-64": dcgan, "ResNet-128": resnet}


def main() -> None:
    rows = []
    for name, m in models().items():
        size_g = 4 * sum(p.numel() for p in m["g"].parameters())
        size_d = 4 * sum(p.numel() for p in m["d"].parameters())
        flop = LOCAL_BATCH * iteration_flops(m["g_fwd"], m["d_fwd"], m["n_critic"], m["penalty"])
        compute_s = flop / (MFU * H100_PEAK_TFLOPS * 1e12)
        print(
            f"{name}: G {size_g / 4e6:.1f} M / D {size_d / 4e6:.1f} M parameters (fp32 gradients "
            f"{size_g / 2**20:.0f} + {size_d / 2**20:.0f} MiB), {flop / 1e9:.0f} GFLOP per iteration at "
            f"{LOCAL_BATCH} images/GPU -> T_c {compute_s * 1e3:.1f} ms at MFU {MFU}; {m['note']}"
        )
        for p in GPUS:
            cells = []
            for link, (bandwidth, alpha) in LINKS.items():
                if link.startswith("NVLink") and p > 8:
                    cells.append("n/a (NVLink domain: 8 GPUs)")
                    continue
                comm = m["n_critic"] * allreduce_s(size_d, p, bandwidth, alpha) + allreduce_s(
                    size_g, p, bandwidth, alpha
                )
                cells.append(f"{compute_s / (compute_s + comm):.2f} ({comm * 1e3:.1f} ms)")
            rows.append(f"| {name} | {p} | " + " | ".join(cells) + " |")
    print("\n| model | GPUs | " + " | ".join(LINKS) + " |")
    print("|---|---|" + "---|" * len(LINKS))
    print("\n".join(rows))
    print("\nmeasured on this machine (inputs for scale):", MEASURED_HERE)


if __name__ == "__main__":
    main()
