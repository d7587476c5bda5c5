"""Weak-scaling model on paper: where distgan's loop stops scaling, before anyone rents the nodes.

    python benchmarks/scaling_model.py            # prints the docs' tables (Markdown) and their inputs

Per iteration a GPU computes for T_c (constant under weak scaling: the per-GPU batch is fixed) and
all-reduces gradients n_critic times for D and once for G; nothing else (the stop flag is agreed
every K steps, BatchNorm stats only where read). One all-reduce of S bytes over p GPUs:

    T_allreduce(S, p) = collectives * 2 * log2(p) * alpha + 2 * (p - 1) / p * S / B

(alpha: per-hop latency, tree; B: per-GPU bus bandwidth, ring: NCCL's two regimes).

**Overlap.** DDP packs gradients into buckets in reverse parameter order (the first bucket 1 MiB,
the others `bucket_cap_mb` = 25 MiB) and starts a bucket's all-reduce as soon as the backward pass
has produced all its gradients; the all-reduces run one after another on one stream. With bucket
k's gradients ready at t_k (the backward FLOPs of the layers before it, in backward order) and its
all-reduce taking c_k, it ends at f_k = max(f_{k-1}, t_k) + c_k; what the step waits for beyond
its backward (T_b) is max(0, f_last - T_b). A network smaller than one bucket gains nothing.

**Compression** (`distributed.comm_hook`): fp16/bf16 send 2 bytes per gradient; PowerSGD of rank r
sends r(n + m) values for an n x m gradient matrix (conv weights flattened to out x rest) when that
at least halves it (torch's `min_compression_rate` 2), everything else uncompressed, in 3
collectives per bucket (the uncompressed part, P, Q). Its extra matrix products and the
uncompressed warm-up (`start_powerSGD_iter`) are not counted.

Inputs counted from distgan's shipped configs (the FLOPs by torch's FlopCounterMode, per module);
MFU, bandwidth and latency are ASSUMED until `python -m distgan.bench gpu` measures them on a GPU.
`benchmarks/overlap_check.py` checks the overlap rule against 2 CPU processes (gloo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from distgan.config import load_config
from distgan.models import build_discriminator, build_generator

H100_PEAK_TFLOPS = 989.0  # dense bf16
MFU = 0.25  # ASSUMED for these convnets on an H100 (bench gpu measures it)
FIRST_BUCKET_BYTES = 2**20  # DDP's first bucket (torch.distributed._DEFAULT_FIRST_BUCKET_BYTES)
BUCKET_BYTES = 25 * 2**20  # DDP's bucket_cap_mb default
POWERSGD_RANK = 1  # torch's PowerSGDState default matrix_approximation_rank
# (per-GPU bus bandwidth in bytes/s, per-hop latency in s): ASSUMED typical NCCL figures.
LINKS = {
    "NVLink (one 8-GPU node)": (360e9, 5e-6),
    "IB 100 Gb/s per GPU": (11e9, 8e-6),
    "IB 400 Gb/s per GPU": (45e9, 8e-6),
}
GPUS = (8, 64, 512)
SCHEMES = ("none", "bf16", "powersgd")


@dataclass(frozen=True)
class Layer:
    """One module's parameters as DDP sees them: its gradient shapes and its backward FLOPs."""

    shapes: tuple[tuple[int, ...], ...]
    backward_flops: float  # per image, one backward through this module (2 x its forward FLOPs)


@dataclass(frozen=True)
class Network:
    layers: list[Layer]  # in backward order: the first one's gradients are ready first

    @property
    def grad_bytes(self) -> int:
        return 4 * sum(math.prod(s) for layer in self.layers for s in layer.shapes)


@dataclass(frozen=True)
class Recipe:
    name: str
    note: str
    g: Network
    d: Network
    g_forward: float  # FLOPs per image
    d_forward: float
    n_critic: int
    penalty_share: float  # D steps that add the penalty's double backward (R1 every 16: 1/16)
    local_batch: int  # images per GPU per D step

    def d_step_backward_flops_scale(self) -> float:
        """A D step's backward runs through D for the real and the fake batch (2x), plus the
        penalty's double backward (~2 more D backwards) on the steps that have it."""
        return self.local_batch * (2 + 2 * self.penalty_share)

    def iteration_flops(self) -> float:
        """Per GPU: a D step = G forward + D forward/backward on real and fake (+ the penalty:
        ~4 D forwards); the G step = G and D forward/backward."""
        d_step = self.g_forward + 6 * self.d_forward + 4 * self.d_forward * self.penalty_share
        return self.local_batch * (self.n_critic * d_step + 3 * (self.g_forward + self.d_forward))


def per_module_flops(model: nn.Module, x: torch.Tensor) -> tuple[float, dict[str, float]]:
    """Total forward FLOPs and each module's (with its children's), keyed by module path."""
    with FlopCounterMode(display=False) as counter:
        model(x)
    prefix = type(model).__name__
    by_module = {
        name.removeprefix(prefix).removeprefix("."): float(sum(ops.values()))
        for name, ops in counter.get_flop_counts().items()
        if name != "Global"
    }
    return float(counter.get_total_flops()), by_module


def network_of(model: nn.Module, flops_by_module: dict[str, float]) -> Network:
    """The layers in backward order (DDP's bucket order: reverse registration), each with the
    FLOPs of its own module (the counter's figure less its children's)."""
    own = {}
    for name, module in model.named_modules():
        children = sum(
            flops_by_module.get(f"{name}.{c}" if name else c, 0.0) for c, _ in module.named_children()
        )
        own[name] = flops_by_module.get(name, 0.0) - children
    owners: dict[str, list[tuple[int, ...]]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            owners.setdefault(name.rpartition(".")[0], []).append(tuple(parameter.shape))
    return Network([Layer(tuple(shapes), 2 * own.get(m, 0.0)) for m, shapes in owners.items()][::-1])


def buckets(network: Network, bucket_bytes: int = BUCKET_BYTES) -> list[tuple[list[tuple], float]]:
    """DDP's buckets: (gradient shapes, the backward FLOPs done when the last of them is ready)."""
    out, shapes, size, done, cap = [], [], 0, 0.0, FIRST_BUCKET_BYTES
    for layer in network.layers:
        done += layer.backward_flops
        for shape in layer.shapes:
            shapes.append(shape)
            size += 4 * math.prod(shape)
            if size >= cap:
                out.append((shapes, done))
                shapes, size, cap = [], 0, bucket_bytes
    if shapes:
        out.append((shapes, done))
    return out


def wire_bytes(shapes: list[tuple], scheme: str) -> tuple[float, int]:
    """(bytes each GPU sends for these gradients under `scheme`, collectives)."""
    values = [math.prod(s) for s in shapes]
    if scheme == "none":
        return 4.0 * sum(values), 1
    if scheme in ("bf16", "fp16"):
        return 2.0 * sum(values), 1
    sent = 0.0
    for shape, n_values in zip(shapes, values, strict=True):
        rows, cols = (shape[0], n_values // shape[0]) if len(shape) > 1 else (n_values, 1)
        low_rank = POWERSGD_RANK * (rows + cols)
        sent += 4.0 * (low_rank if len(shape) > 1 and n_values >= 2 * low_rank else n_values)
    return sent, 3


def allreduce_s(size_bytes: float, p: int, bandwidth: float, alpha: float, collectives: int = 1) -> float:
    return collectives * 2 * math.log2(p) * alpha + 2 * (p - 1) / p * size_bytes / bandwidth


def exposed_comm_s(
    bucket_list: list[tuple[list[tuple], float]],
    flop_rate: float,
    flops_scale: float,
    p: int,
    link: tuple[float, float],
    scheme: str,
    overlap: bool,
    start_s: float = 0.0,
) -> float:
    """Communication time the update waits for after its backward: all of it without overlap,
    what outlasts the backward with DDP's bucketed overlap. `start_s`: backward time before the
    first of these gradients can appear (the G step's backward through the frozen D)."""
    bandwidth, alpha = link
    end_of_backward = start_s + bucket_list[-1][1] * flops_scale / flop_rate
    finished = start_s if overlap else end_of_backward
    for shapes, flops_done in bucket_list:
        sent, collectives = wire_bytes(shapes, scheme)
        ready = start_s + flops_done * flops_scale / flop_rate if overlap else end_of_backward
        finished = max(finished, ready) + allreduce_s(sent, p, bandwidth, alpha, collectives)
    return max(0.0, finished - end_of_backward)


def efficiency(recipe: Recipe, p: int, link: tuple[float, float], scheme: str, overlap: bool) -> float:
    rate = MFU * H100_PEAK_TFLOPS * 1e12
    compute_s = recipe.iteration_flops() / rate
    d_comm = exposed_comm_s(
        buckets(recipe.d), rate, recipe.d_step_backward_flops_scale(), p, link, scheme, overlap
    )
    d_input_grads_s = recipe.local_batch * recipe.d_forward / rate  # before any G gradient exists
    g_comm = exposed_comm_s(
        buckets(recipe.g), rate, recipe.local_batch, p, link, scheme, overlap, start_s=d_input_grads_s
    )
    return compute_s / (compute_s + recipe.n_critic * d_comm + g_comm)


def recipe_from(config: str, name: str, note: str, local_batch: int, penalty_share: float) -> Recipe:
    cfg = load_config(config, ["data.source=embedded"])
    g, d = build_generator(cfg.model, cfg.sample_shape), build_discriminator(cfg.model, cfg.sample_shape)
    g.eval()  # one-sample forward: BatchNorm in eval mode (the FLOPs are the same)
    g_forward, g_modules = per_module_flops(g, torch.randn(1, cfg.model.latent_dim))
    d_forward, d_modules = per_module_flops(d, torch.randn(1, *cfg.sample_shape))
    return Recipe(
        name, note, network_of(g, g_modules), network_of(d, d_modules), g_forward, d_forward,
        cfg.train.n_critic, penalty_share, local_batch,
    )  # fmt: skip


def recipes() -> list[Recipe]:
    return [
        recipe_from("configs/celeba_wgan.yaml", "DCGAN-64", "WGAN-GP, n_critic 5", 64, 1.0),
        recipe_from(
            "configs/celeba_resnet_128.yaml",
            "ResNet-128",
            "SN-ResNet + attention, hinge, n_critic 2",
            64,
            0.0,
        ),
        recipe_from(
            "configs/stylegan2_ffhq256.yaml",
            "StyleGAN2-256",
            "paper256: 8 images per GPU, lazy R1 every 16",
            8,
            1 / 16,
        ),
    ]


def main() -> None:
    all_recipes = recipes()
    for r in all_recipes:
        t_c = r.iteration_flops() / (MFU * H100_PEAK_TFLOPS * 1e12)
        print(
            f"{r.name} ({r.note}): G {r.g.grad_bytes / 4e6:.1f} M / D {r.d.grad_bytes / 4e6:.1f} M parameters "
            f"in {len(buckets(r.g))} + {len(buckets(r.d))} DDP buckets; {r.iteration_flops() / 1e9:.0f} GFLOP per "
            f"iteration at {r.local_batch} images/GPU -> T_c {t_c * 1e3:.1f} ms at MFU {MFU}"
        )
    for link_name, link in LINKS.items():
        print(f"\n{link_name}: efficiency without overlap | with DDP's overlap, by comm_hook")
        print("\n| model | GPUs | no overlap | " + " | ".join(f"overlap, {s}" for s in SCHEMES) + " |")
        print("|---|---|---|" + "---|" * len(SCHEMES))
        for r in all_recipes:
            for p in GPUS if not link_name.startswith("NVLink") else (8,):
                cells = [f"{efficiency(r, p, link, 'none', overlap=False):.2f}"]
                cells += [f"{efficiency(r, p, link, s, overlap=True):.2f}" for s in SCHEMES]
                print(f"| {r.name} | {p} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
