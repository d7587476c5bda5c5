"""The hand-written PyTorch GAN loop that `python -m distgan.bench` holds the trainer against.

This is the minimal loop a careful user would write for the same experiment: the same
models (built by distgan.models), the same objective, batch, precision, n_critic and EMA,
with no accelerate, no backend, no logging, no checkpointing. It must stay independent of
the code it measures: it never imports distgan's trainer, backends or objectives, so an
overhead added there shows up as a ratio below 1. It deliberately uses no fast path either
(torch's default Adam, contiguous memory, no compile): the "naive" baseline.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from distgan.config import ExperimentConfig
from distgan.data import Batch
from distgan.models import build_discriminator, build_generator


def _autocast(cfg: ExperimentConfig, device: torch.device):
    if cfg.train.mixed_precision == "no":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.train.mixed_precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _critic_loss(cfg: ExperimentConfig, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    loss = cfg.objective.loss
    if loss == "nonsaturating":
        real_target = torch.full_like(d_real, cfg.objective.real_label)
        return F.binary_cross_entropy_with_logits(d_real, real_target) + F.binary_cross_entropy_with_logits(
            d_fake, torch.zeros_like(d_fake)
        )
    if loss == "wasserstein":
        return d_fake.mean() - d_real.mean()
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def _generator_loss(cfg: ExperimentConfig, d_fake: torch.Tensor) -> torch.Tensor:
    if cfg.objective.loss == "nonsaturating":
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return -d_fake.mean()


def _penalty(cfg, critic, real, fake, labels, device) -> torch.Tensor | None:
    """WGAN-GP and/or R1 (None without either): input gradients with a graph, ONE backward later."""
    total = None
    if "gp" in cfg.objective.penalties:
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=device)
        x_hat = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
        with _autocast(cfg, device):
            scores = critic(x_hat, labels)
        (grads,) = torch.autograd.grad(scores.float().sum(), x_hat, create_graph=True)
        norms = grads.float().flatten(1).norm(2, dim=1)
        total = cfg.objective.gp_weight * ((norms - 1.0) ** 2).mean()
    if "r1" in cfg.objective.penalties:
        x = real.detach().requires_grad_(True)
        with _autocast(cfg, device):
            scores = critic(x, labels)
        (grads,) = torch.autograd.grad(scores.float().sum(), x, create_graph=True)
        r1 = 0.5 * cfg.objective.r1_weight * grads.float().flatten(1).pow(2).sum(1).mean()
        total = r1 if total is None else total + r1
    return total


def _clock(device: torch.device) -> tuple[float, float]:
    """(wall, process CPU) seconds; a timing boundary must see the queued GPU work done."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def reference_loop(
    cfg: ExperimentConfig, batches: Iterator[Batch], warmup: int, iterations: int, device: torch.device
) -> tuple[float, float]:
    """Train `warmup` + `iterations` G steps; returns (wall, CPU) seconds the last `iterations` took.

    The only host syncs are the two timing boundaries (GPU only); none inside the loop.
    """
    torch.manual_seed(cfg.train.seed)
    generator, critic = (
        build_generator(cfg.model, cfg.sample_shape).to(device),
        build_discriminator(cfg.model, cfg.sample_shape).to(device),
    )
    adam = {"d": cfg.optim.d, "g": cfg.optim.g}
    opt_d, opt_g = (
        torch.optim.Adam(model.parameters(), lr=adam[k].lr, betas=(adam[k].beta1, adam[k].beta2))
        for k, model in (("d", critic), ("g", generator))
    )
    ema = copy.deepcopy(generator).eval().requires_grad_(False) if cfg.train.ema_decay else None
    conditional = cfg.model.num_classes > 0
    latent_dim, local_batch = cfg.model.latent_dim, cfg.data.batch_size
    start = (0.0, 0.0)
    for k in range(warmup + iterations):
        if k == warmup:
            start = _clock(device)
        for _ in range(cfg.train.n_critic_at(k)):
            batch = next(batches)
            real = batch.images.to(device)
            labels = batch.labels.to(device) if conditional else None
            with torch.no_grad(), _autocast(cfg, device):
                fake = generator(torch.randn(real.shape[0], latent_dim, device=device), labels).to(real.dtype)
            with _autocast(cfg, device):
                if cfg.model.d_norm == "batch":
                    d_real, d_fake = critic(real, labels), critic(fake, labels)
                else:
                    both = None if labels is None else torch.cat([labels, labels])
                    d_real, d_fake = critic(torch.cat([real, fake]), both).chunk(2)
            loss_d = _critic_loss(cfg, d_real.float(), d_fake.float())
            penalty = _penalty(cfg, critic, real, fake, labels, device)
            loss_d = loss_d if penalty is None else loss_d + penalty
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

        critic.requires_grad_(False)
        labels = (
            torch.randint(0, cfg.model.num_classes, (local_batch,), device=device) if conditional else None
        )
        with _autocast(cfg, device):
            d_fake = critic(generator(torch.randn(local_batch, latent_dim, device=device), labels), labels)
        loss_g = _generator_loss(cfg, d_fake.float())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        critic.requires_grad_(True)
        if ema is not None:
            with torch.no_grad():
                for e, p in zip(ema.parameters(), generator.parameters(), strict=True):
                    e.lerp_(p, 1.0 - cfg.train.ema_decay)
                for e, b in zip(ema.buffers(), generator.buffers(), strict=True):
                    e.copy_(b)
    end = _clock(device)
    return end[0] - start[0], end[1] - start[1]
