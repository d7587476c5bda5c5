"""The GAN training loop, readable top to bottom in one screen: build, resume, iterate, finish.

One iteration = n_critic D steps (each on a fresh real batch) + one G step (the phases of
step.py), then the EMA and ADA's p, then the upkeep (logs, samples, evaluation, checkpoints,
rollbacks and stops: upkeep.py). `train.steps` counts G steps; `data.batch_size` is the GLOBAL
batch, split over processes. Every process draws its own latent noise and augmentation from its
own RNG (seeded by train_state.noise_seed). A signal is honoured between G steps and, in long
critic phases, between D steps (the checkpoint then records how many D steps were done).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

import distgan.run_layout as run_layout
from distgan.augment import AugmentPipe
from distgan.checkpoint import Checkpointer, CheckpointParts, torch_versions
from distgan.config import ExperimentConfig, TrainConfig
from distgan.data import Batch, TrainStream, build_train_stream
from distgan.distributed import (
    Backend,
    StopRequest,
    World,
    build_accelerator,
    build_backend,
    complete_from_launcher,
    num_machines,
    report_lost_contact,
)
from distgan.ema import GeneratorEMA
from distgan.errors import DIVERGED_EXIT_CODE, PREEMPTED_EXIT_CODE
from distgan.faults import Diverged, NonFiniteGuard
from distgan.host_memory import keep_freed_host_memory
from distgan.memory_check import check_fits
from distgan.models import build_discriminator, build_generator
from distgan.run_directory import open_run
from distgan.step import Phases, PhaseSettings, warn_batchnorm_accumulation
from distgan.tracking import log_with, logging_dir
from distgan.train_state import TrainState, noise_seed
from distgan.transfer import freeze_discriminator_blocks, plan_seed
from distgan.upkeep import Outcome, Upkeep, start_tracking

__all__ = ["PREEMPTED_EXIT_CODE", "TrainHooks", "train"]


def _ignore(*args) -> None:
    return None


@dataclass(frozen=True)
class TrainHooks:
    """Observers a caller (tests, the benchmark) hands to train(); each only looks, by default nothing."""

    on_backend: Callable[[Backend], None] = _ignore  # once, right after G and D are wrapped
    before_d_step: Callable[[Backend, Batch], None] = _ignore
    before_g_step: Callable[[Backend], None] = _ignore
    after_g_step: Callable[[Backend], None] = _ignore
    on_log: Callable[[int, dict], None] = _ignore  # every process, at log steps: (step, scalars)


def prepare_process(train: TrainConfig, device: torch.device) -> None:
    torch.autograd.set_detect_anomaly(train.detect_anomaly)
    if device.type == "cpu":
        keep_freed_host_memory()  # CPU fast path: no page faults on every step's activations


def describe_models(backend: Backend) -> str:
    return "\n".join(
        f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters\n{model}"
        for name, model in (
            ("generator", backend.generator_module),
            ("discriminator", backend.discriminator_module),
        )
    )


def run_facts(cfg: ExperimentConfig, world: World) -> dict:
    """meta.json's record of how the run was distributed, and with what."""
    dist = cfg.distributed
    return {
        "num_machines": num_machines(world.size),
        "backend": dist.backend,
        "zero_stage": dist.zero_stage if dist.backend == "deepspeed" else None,
        "mixed_precision": cfg.train.mixed_precision,
        "config_hash": cfg.hash(),
        "versions": torch_versions(),
    }


@dataclass
class Training:
    """The components of one run, built once (`assemble`), and the iteration's own steps."""

    cfg: ExperimentConfig
    backend: Backend
    phases: Phases
    augment: AugmentPipe
    ema: GeneratorEMA | None
    checkpointer: Checkpointer
    state: TrainState
    device: torch.device  # where batches go

    def resume(self, checkpoint: Path | None, rank: int) -> TrainState:
        """The checkpoint's state on every rank (RNG too), or step 0 with per-rank noise."""
        if checkpoint is not None:
            self.checkpointer.restore(checkpoint)
        else:
            torch.manual_seed(noise_seed(self.cfg.train.seed, rank))
        return self.state

    def set_learning_rates(self, state: TrainState) -> None:
        """A function of the step and the rollbacks alone, so a resume stays exact."""
        optim = self.cfg.optim
        factor = optim.lr_factor(state.step, self.cfg.train.steps) * state.lr_scale
        self.backend.set_learning_rates(optim.learning_rates(factor))

    def discriminator_phase(self, state: TrainState, stream, stop: StopRequest, guard: NonFiniteGuard, hooks):
        """The iteration's D steps (from state.critic_steps on); None if a signal stopped it."""
        n_critic, device = self.cfg.train.n_critic_at(state.step), self.device
        while state.critic_steps < n_critic:
            batch = next(stream).to(device)
            hooks.before_d_step(self.backend, batch)
            d_losses = self.phases.discriminator_step(
                batch, regularize=self.phases.regularize_d(state.images_seen)
            )
            self.augment.observe(d_losses)
            guard.watch(d_losses)
            state.images_seen += self.cfg.data.batch_size
            state.critic_steps += 1
            if state.critic_steps < n_critic and stop.poll():  # a long critic phase still stops
                return None
        return d_losses

    def end_iteration(self, state: TrainState, world: World) -> int:
        """Count the G step, move ADA's p (an all-reduce on its interval), update the EMA; return
        the iteration's real images (all processes)."""
        images = self.cfg.train.n_critic_at(state.step) * self.cfg.data.batch_size
        state.step, state.critic_steps = state.step + 1, 0
        self.augment.adjust(state.step, world)
        if self.ema is not None:  # images are GLOBAL: the same average for any world size
            self.ema.update(self.backend.generator_module, state.step, state.images_seen - images, images)
        return images


def assemble(
    cfg: ExperimentConfig,
    accelerator,
    world: World,
    stream: TrainStream,
    hooks,
    verbose: bool,
    resume_from=None,
):
    """Networks (the same init on every rank, or train.init_from's weights), distributed; phases;
    what checkpoints hold."""
    torch.manual_seed(cfg.train.seed)
    generator = build_generator(cfg.model, cfg.sample_shape)
    discriminator = build_discriminator(cfg.model, cfg.sample_shape)
    seed = plan_seed(cfg.train, resume_from)  # a resume keeps its own weights
    seed.load(generator, discriminator, cfg.model, cfg.sample_shape, accelerator.print)
    freeze_discriminator_blocks(discriminator, cfg.model.arch, cfg.train.freeze_d)  # before the wrap
    backend = build_backend(accelerator, cfg, generator, discriminator)
    hooks.on_backend(backend)
    warn_batchnorm_accumulation(cfg.train.grad_accum, backend, cfg.local_batch(world.size), accelerator.print)
    if verbose:
        accelerator.print(describe_models(backend))
    ema = GeneratorEMA.of(cfg.train, backend.generator_module)
    seed.load_ema(ema.model if ema is not None else None)
    augment = AugmentPipe(cfg.augment, cfg.data.resolution, cfg.data.batch_size, world.device)
    weights = {
        run_layout.GENERATOR: backend.generator_module,
        run_layout.DISCRIMINATOR: backend.discriminator_module,
    }
    if ema is not None:
        weights[run_layout.GENERATOR_EMA] = ema.model
    state = TrainState()
    phases = Phases(backend, PhaseSettings.of(cfg), augment, world)
    parts = CheckpointParts(
        backend,
        shared=[state, augment] + ([phases.path_length] if phases.settings.path_length else []),
        per_rank={"data": stream, "augment": augment.tally},
        weights=weights,
        restored_weights=tuple(
            n for n in weights if n == run_layout.GENERATOR_EMA or not backend.writes_weights
        ),
        facts=run_facts(cfg, world) | {"init_from": seed.record},
        texts={run_layout.CONFIG: yaml.safe_dump(cfg.to_dict(), sort_keys=False)},
    )
    checkpointer = Checkpointer(cfg.train.out_dir, accelerator, parts, cfg.checkpoint.keep_last)
    return Training(cfg, backend, phases, augment, ema, checkpointer, state, world.device)


def train(
    cfg: ExperimentConfig,
    resume: str = "auto",
    verbose: bool = False,
    *,
    overwrite: bool = False,
    allow_config_change: bool = False,
    stream: TrainStream | None = None,
    accelerator=None,
    hooks: TrainHooks = TrainHooks(),
) -> int:
    """Run (or continue) training: 0 when finished, PREEMPTED_EXIT_CODE on a signal, DIVERGED_EXIT_CODE
    when non-finite values could not be rolled back. `stream`: the data (default: the configured
    source, this process's shard); `accelerator`: one the caller built (tests observe or fake ranks)."""
    # Join the world; the launcher's settings complete the config, which the world size then checks.
    cfg = complete_from_launcher(cfg)
    run_dir = Path(cfg.train.out_dir)
    accelerator = accelerator or build_accelerator(cfg, log_with(cfg.log), project_dir=logging_dir(run_dir))
    world = World.of(accelerator)
    local_batch = cfg.validate(world_size=world.size).local_batch(world.size)  # split over the real world
    check_fits(cfg, world.size, world.device)  # absurd sizes (ConfigError) before any data or model
    prepare_process(cfg.train, world.device)
    stop = StopRequest(accelerator, cfg.distributed.stop_check_s)  # a signal during set-up counts too
    lock, resume_from = open_run(cfg, accelerator, resume, overwrite, allow_config_change)  # before any data

    # Load the training set first: a bad source fails here, before any model is built.
    stream = stream or build_train_stream(cfg, world.rank, world.size)
    accelerator.print(stream.describe())

    # Construct networks, phases and checkpointed parts; resume, or start fresh.
    run = assemble(cfg, accelerator, world, stream, hooks, verbose, resume_from)
    state = run.resume(resume_from, world.rank)
    tracker = start_tracking(cfg, run_dir, world, accelerator, state.step if resume_from else None)
    upkeep = Upkeep(
        cfg, world, run.backend, run.ema, run.checkpointer, tracker, stop, accelerator, run.augment, stream,
        hooks.on_log,
    )  # fmt: skip

    # Train: the D steps, one G step, EMA and ADA's p; then logs, samples, evaluation, checkpoints.
    exit_code = 0
    try:
        while state.step < cfg.train.steps:
            run.set_learning_rates(state)
            d_losses = run.discriminator_phase(state, stream, stop, upkeep.guard, hooks)
            if d_losses is None:  # stopped mid-phase: the resume continues these D steps
                exit_code = upkeep.stop_with_checkpoint(state, saved=False)
                break
            hooks.before_g_step(run.backend)
            g_losses = run.phases.generator_step(
                local_batch, world.device, regularize=run.phases.regularize_g(state.step)
            )
            hooks.after_g_step(run.backend)
            images = run.end_iteration(state, world)
            if upkeep.after_iteration(state, d_losses, g_losses, images) is Outcome.STOPPED:
                exit_code = PREEMPTED_EXIT_CODE
                break
    except Diverged as err:
        accelerator.print(f"error: {err}")
        exit_code = DIVERGED_EXIT_CODE
    except RuntimeError as err:  # a peer died or hung (one line, LOST_CONTACT_EXIT_CODE); else re-raised
        exit_code = report_lost_contact(err, world, state.step, cfg.distributed, run.checkpointer.latest)
    finally:
        stop.restore()
        tracker.close()
        if lock is not None:
            lock.release()
    if exit_code == 0:
        accelerator.print(f"done: {state.step} steps, {state.images_seen} images; run directory {run_dir}")
    accelerator.end_training()
    return exit_code
