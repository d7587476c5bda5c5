"""The GAN training loop, readable top to bottom: setup, D steps, G step, EMA, log, checkpoint.

One iteration = n_critic D steps (each on a fresh real batch) + one G step. `train.steps`
counts G steps; `data.batch_size` is the GLOBAL batch, split over processes.

Distributed rules this loop keeps (issue "Distributed correctness" proves them):
- one backward per D step; the penalty's input gradient is taken inside that graph;
- D is frozen during the G step and run unwrapped, so neither DDP nor DeepSpeed computes or
  all-reduces D's gradients there;
- every process draws its own latent noise (seeded by seed + rank) and its own data shard.
Host syncs (`.item()`, the all-reduce of the stop flag) happen only where commented.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from distgan import metrics, objectives
from distgan.backends import build_backend
from distgan.checkpoint import (
    Checkpointer,
    latest_checkpoint,
    load_weights,
    resolve_checkpoint,
    torch_versions,
)
from distgan.config import ExperimentConfig
from distgan.data import Batch, build_train_stream
from distgan.distributed import build_accelerator
from distgan.ema import GeneratorEMA
from distgan.grids import samples_picture, save_png
from distgan.host_memory import keep_freed_host_memory
from distgan.models import build_discriminator, build_generator
from distgan.tracking import Tracker

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: checkpointed on a signal, run not finished; requeue me
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)


@dataclass
class TrainState:
    step: int = 0  # G steps done
    images_seen: int = 0  # real images consumed by D, all processes together


def d_step(backend, cfg: ExperimentConfig, batch: Batch, latent=None, alpha=None) -> dict[str, torch.Tensor]:
    """One critic update on a real batch and a fresh fake batch: ONE forward, ONE backward.

    `latent` and the penalty's `alpha` are drawn here unless given (equivalence tests fix them).
    """
    real = batch.images
    labels = batch.labels if cfg.model.num_classes > 0 else None  # unconditional: ignore labels
    if latent is None:
        latent = torch.randn(real.shape[0], cfg.model.latent_dim, device=real.device)
    with torch.no_grad():
        fake = backend.generator(latent, labels)
    fake = fake.to(real.dtype)
    if cfg.model.d_norm == "batch":
        # BatchNorm must see pure real and pure fake batches, as D sees a pure fake batch in the
        # G step; a mixed batch lets D key on batch statistics that the G step never shows it.
        d_real, d_fake = backend.discriminator(real, labels), backend.discriminator(fake, labels)
    else:  # one forward for both halves: one DDP forward per backward
        both_labels = None if labels is None else torch.cat([labels, labels])
        d_real, d_fake = backend.discriminator(torch.cat([real, fake]), both_labels).chunk(2)
    losses = objectives.discriminator_losses(
        cfg.objective,
        d_real,
        d_fake,
        penalty_critic=backend.critic_module,  # input gradients only: no DDP/DeepSpeed hooks
        real=real,
        fake=fake,
        labels=labels,
        alpha=alpha,
        loss_scale=backend.loss_scale(),
    )
    return {**losses, **backend.update("d", losses["loss"])}


def g_step(
    backend, cfg: ExperimentConfig, local_batch: int, device, latent=None, labels=None
) -> dict[str, torch.Tensor]:
    """One generator update through a frozen, unwrapped D (no D gradients, no D all-reduce)."""
    critic = backend.critic_module
    critic.requires_grad_(False)
    if latent is None:
        latent = torch.randn(local_batch, cfg.model.latent_dim, device=device)
    if labels is None and cfg.model.num_classes > 0:
        labels = torch.randint(0, cfg.model.num_classes, (local_batch,), device=device)
    losses = objectives.generator_losses(cfg.objective, critic(backend.generator(latent, labels), labels))
    out = {**losses, **backend.update("g", losses["loss"])}
    critic.requires_grad_(True)
    return out


def fixed_noise(cfg: ExperimentConfig, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same latents (and labels) for every sample grid of the run, on every process."""
    rng = torch.Generator().manual_seed(cfg.train.seed)
    latent = torch.randn(cfg.log.num_samples, cfg.model.latent_dim, generator=rng).to(device)
    labels = None
    if cfg.model.num_classes > 0:
        labels = (torch.arange(cfg.log.num_samples) % cfg.model.num_classes).to(device)
    return latent, labels


@torch.no_grad()
def save_sample_grid(model, noise, out_dir: Path, step: int) -> Path:
    was_training = model.training
    model.eval()
    samples = model(*noise)
    model.train(was_training)
    return save_png(samples_picture(samples), out_dir / "samples" / f"step_{step:07d}.png")


class StopRequest:
    """Remembers SIGUSR1/SIGTERM/SIGINT so the loop can checkpoint and exit; 2nd SIGINT aborts."""

    def __init__(self, accelerator) -> None:
        self.accelerator = accelerator
        self.signal_name: str | None = None
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.accelerator.set_trigger()

    def agreed(self) -> bool:
        """True on every rank once any rank got a signal (one all-reduce: a host sync)."""
        if self.accelerator.num_processes == 1:
            return self.signal_name is not None
        return self.accelerator.check_trigger()

    def restore(self) -> None:
        """After the final checkpoint a late duplicate signal (Slurm and the launcher both forward
        SIGUSR1) must not kill the process mid-exit; otherwise give back the default handlers."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN if self.signal_name else signal.SIG_DFL)


def evaluate(backend, ema, cfg: ExperimentConfig, reference, accelerator) -> dict:
    """Every process generates and embeds its share; rank 0 gets the metrics (others: {})."""
    model = ema.model if ema is not None else backend.generator_module
    was_training = model.training
    model.eval()
    results = metrics.evaluate_generator(
        model,
        cfg,
        cfg.eval.metrics,
        cfg.eval.num,
        accelerator.process_index,
        accelerator.num_processes,
        accelerator.gather,
        accelerator.device,
        reference=reference,
    )
    model.train(was_training)
    return results


def num_machines(world_size: int) -> int:
    """Machines in the world: torchrun / accelerate launch export LOCAL_WORLD_SIZE per machine."""
    return max(1, world_size // int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))


def train(cfg: ExperimentConfig, resume: str = "auto", verbose: bool = False) -> int:
    """Run (or continue) training. Returns 0 when finished, PREEMPTED_EXIT_CODE on a signal."""
    # Set up the process group and check the config against the real world size.
    accelerator = build_accelerator(cfg)
    cfg.validate(world_size=accelerator.num_processes)
    rank, world = accelerator.process_index, accelerator.num_processes
    out_dir = Path(cfg.train.out_dir)
    local_batch = cfg.data.batch_size // world
    torch.autograd.set_detect_anomaly(cfg.train.detect_anomaly)
    if accelerator.device.type == "cpu":
        keep_freed_host_memory()  # CPU fast path: no page faults on every step's activations

    # A bad --resume path fails here, before any data is read.
    resume_from = {"auto": lambda: latest_checkpoint(out_dir), "never": lambda: None}.get(
        resume, lambda: resolve_checkpoint(resume)
    )()

    # Load the training set first: a bad source fails here, before any model is built.
    stream = build_train_stream(cfg, rank, world)
    accelerator.print(stream.describe())

    # Construct networks (same init on every rank), then distribute them.
    torch.manual_seed(cfg.train.seed)
    generator, discriminator = build_generator(cfg), build_discriminator(cfg)
    if cfg.train.channels_last and cfg.model.arch == "dcgan":
        generator = generator.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last)
    backend = build_backend(accelerator, cfg, generator, discriminator)
    if cfg.train.compile:
        backend.generator, backend.discriminator = (
            torch.compile(backend.generator),
            torch.compile(backend.discriminator),
        )
    ema = GeneratorEMA(backend.generator_module, cfg.train.ema_decay) if cfg.train.ema_decay else None
    if verbose:
        for name, model in (
            ("generator", backend.generator_module),
            ("discriminator", backend.critic_module),
        ):
            accelerator.print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters\n{model}")

    # Resume, or start fresh with a different noise stream on every process.
    state = TrainState()
    checkpointer = Checkpointer(out_dir, accelerator, backend, cfg.checkpoint.keep_last)
    if resume_from is not None:
        meta, rank_state = checkpointer.load(resume_from)  # also restores every rank's RNG
        state = TrainState(step=meta["step"], images_seen=meta["images_seen"])
        stream.load_state_dict(rank_state["data"])
        if ema is not None:
            load_weights(ema.model, resume_from / "generator_ema.safetensors")
        accelerator.print(f"resumed from {resume_from} at step {state.step}")
    else:
        torch.manual_seed(cfg.train.seed * 1000 + rank + 1)
    if accelerator.is_main_process:
        cfg.save_yaml(out_dir / "config.yaml")
    tracker = Tracker(cfg, out_dir, accelerator.is_main_process, state.step if resume_from else None)
    noise = fixed_noise(cfg, accelerator.device)
    reference = None
    if cfg.eval.every:  # extractor and real features once; a bad metric name fails before step 1
        reference = metrics.prepare_evaluation(
            cfg, cfg.eval.metrics, cfg.eval.num, rank, world, accelerator.gather, accelerator.device
        )
    stop = StopRequest(accelerator)

    def save_checkpoint() -> Path:
        weights = {"generator": backend.generator_module, "discriminator": backend.critic_module}
        if ema is not None:
            weights["generator_ema"] = ema.model
        meta = {
            "images_seen": state.images_seen,
            "world_size": world,
            "num_machines": num_machines(world),
            "backend": cfg.distributed.backend,
            "mixed_precision": cfg.train.mixed_precision,
            "config_hash": cfg.hash(),
            "versions": torch_versions(),
        }
        config_yaml = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        return checkpointer.save(state.step, weights, meta, {"data": stream.state_dict()}, config_yaml)

    # Train.
    sums: dict[str, torch.Tensor] = {}
    interval_start, interval_images, interval_steps = time.perf_counter(), 0, 0
    exit_code = 0
    while state.step < cfg.train.steps:
        for _ in range(cfg.train.n_critic_at(state.step)):
            batch = next(stream).to(accelerator.device)
            d_losses = d_step(backend, cfg, batch)
            state.images_seen += cfg.data.batch_size
            interval_images += cfg.data.batch_size
        g_losses = g_step(backend, cfg, local_batch, accelerator.device)
        backend.sync_buffers()  # BatchNorm running stats: one all-reduce so every rank holds the same
        state.step += 1
        if ema is not None:
            ema.update(backend.generator_module, state.step)
        interval_steps += 1

        # Scalars stay on the device between log steps (no host sync on the hot path).
        step_scalars = {("loss_d" if k == "loss" else k): v for k, v in d_losses.items()}
        step_scalars.update({("loss_g" if k == "loss" else k): v for k, v in g_losses.items()})
        for key, value in step_scalars.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float()
        finished = state.step == cfg.train.steps
        if state.step % cfg.log.every == 0 or finished:
            elapsed = time.perf_counter() - interval_start
            scalars = {k: float(v.item()) / interval_steps for k, v in sums.items()}  # log-step host sync
            scalars.update(
                images_seen=state.images_seen,
                images_per_sec=interval_images / max(elapsed, 1e-9),
                lr_d=backend.optimizers["d"].param_groups[0]["lr"],
                lr_g=backend.optimizers["g"].param_groups[0]["lr"],
                eta_sec=elapsed / interval_steps * (cfg.train.steps - state.step),
                **{f"data_{k}": v for k, v in stream.stats.items()},
            )
            tracker.log(state.step, scalars)
            sums, interval_start, interval_images, interval_steps = {}, time.perf_counter(), 0, 0
        if accelerator.is_main_process and (
            finished or (cfg.log.sample_every and state.step % cfg.log.sample_every == 0)
        ):
            sampler = ema.model if ema is not None else backend.generator_module
            tracker.log_picture(state.step, "samples", save_sample_grid(sampler, noise, out_dir, state.step))
        if reference is not None and (finished or state.step % cfg.eval.every == 0):
            results = evaluate(backend, ema, cfg, reference, accelerator)  # collective: every rank
            tracker.log_summary(state.step, {f"eval/{k}": v for k, v in results.items()})
        saved = finished or bool(cfg.checkpoint.every and state.step % cfg.checkpoint.every == 0)
        if saved:
            save_checkpoint()
        if not finished and stop.agreed():
            accelerator.print(f"{stop.signal_name or 'stop signal'}: checkpointing at step {state.step}")
            if not saved:
                save_checkpoint()
            exit_code = PREEMPTED_EXIT_CODE
            break

    stop.restore()
    tracker.close()
    if exit_code == 0:
        accelerator.print(f"done: {state.step} steps, {state.images_seen} images; run directory {out_dir}")
    accelerator.end_training()
    return exit_code
