"""The GAN training loop, readable top to bottom: setup, D steps, G step, EMA, log, checkpoint.

One iteration = n_critic D steps (each on a fresh real batch) + one G step. `train.steps`
counts G steps; `data.batch_size` is the GLOBAL batch, split over processes.

Distributed rules this loop keeps (issue "Distributed correctness" proves them):
- one backward per D step; the penalty's input gradient is taken inside that graph;
- D is frozen during the G step and run unwrapped, so neither DDP nor DeepSpeed computes or
  all-reduces D's gradients there;
- every process draws its own latent noise (seeded by seed + rank) and its own data shard.
- augmentation (augment.policy) is drawn per process like the noise, independently for reals and
  fakes; ADA's p is agreed by one all-reduce every augment.interval G steps, so all ranks share it.
Host syncs (`.item()`, the all-reduce of the stop flag) happen only where commented.
Collectives only where the math needs them: gradients at every update, the stop flag every K
check points (world.StopRequest), BatchNorm running stats only before something reads them
(collectives.LazyBufferAverage: samples, evaluation, checkpoints, which include the last step).
Faults: non-finite values are flagged on the device every step and looked at only at log and
checkpoint steps (faults.py); a signal is honoured between G steps and, in long critic phases,
between D steps (the checkpoint then records how many D steps of the iteration were done).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from distgan import augment, metrics, objectives
from distgan.checkpoint import Checkpointer, TrainState
from distgan.config import ExperimentConfig
from distgan.data import Batch, TrainStream, build_train_stream, evaluation_stream, toy_modes
from distgan.distributed import (
    Backend,
    LazyBufferAverage,
    StopRequest,
    build_accelerator,
    build_backend,
    complete_from_launcher,
    num_machines,
    sum_over_ranks,
)
from distgan.ema import GeneratorEMA
from distgan.faults import DIVERGED_EXIT_CODE, Diverged, NonFiniteGuard, roll_back
from distgan.grids import samples_picture, save_png
from distgan.host_memory import keep_freed_host_memory
from distgan.models import build_discriminator, build_generator
from distgan.models.footprint import check_fits
from distgan.run_directory import open_run
from distgan.tracking import LogWindow, Tracker, log_with, logging_dir

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: checkpointed on a signal, run not finished; requeue me


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


def draw_augmentation(cfg: ExperimentConfig, count: int, device, p: float) -> augment.AugmentParams | None:
    """Per-sample augmentation parameters for `count` images, from this process's RNG (None: D sees
    them as they are)."""
    if cfg.augment.policy == "none" or p == 0.0:
        return None
    return augment.draw(cfg.augment, count, cfg.data.resolution, p, device)


def seen_by_d(images: torch.Tensor, params: augment.AugmentParams | None) -> torch.Tensor:
    return images if params is None else augment.apply(images, params)


def micro_batches(count: int, *tensors: torch.Tensor | None) -> list[tuple]:
    """Each tensor (None stays None) split into `count` equal micro-batches along the batch dim."""
    return list(zip(*(t.chunk(count) if t is not None else (None,) * count for t in tensors), strict=True))


def rows_of(params: augment.AugmentParams | None, count: int, i: int, size: int):
    """Micro-batch i's share of a batch's augmentation parameters (micro-batches of `size`)."""
    if params is None or count == 1:
        return params
    return params.select(slice(i * size, (i + 1) * size))


def mean_of(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The micro-batches' values as one step's (means of equal-sized parts: the full batch's)."""
    if len(parts) == 1:
        return parts[0]
    return {k: torch.stack([part[k].detach().float() for part in parts]).mean() for k in parts[0]}


def critic_losses(
    backend, cfg: ExperimentConfig, real, labels, latent, alpha, real_params, fake_params, r1_due: bool
) -> dict[str, torch.Tensor]:
    """D's losses on one (micro-)batch of real images and fakes made from `latent`, each seen
    through its own augmentation. The penalty sees the critic through the real batch's
    augmentation: R1 is the gradient of D(T(x)) w.r.t. x (WGAN-GP: the interpolates of the
    un-augmented batches, seen through the real's T)."""
    with torch.no_grad():
        fake = backend.generator(latent, labels)
    fake = fake.to(real.dtype)
    critic = backend.critic_module  # input gradients only: no DDP/DeepSpeed hooks
    penalty_critic = (
        critic if real_params is None else (lambda x, y: critic(augment.apply(x, real_params), y))
    )
    seen_real, seen_fake = seen_by_d(real, real_params), seen_by_d(fake, fake_params)
    if cfg.model.d_norm == "batch":
        # BatchNorm must see pure real and pure fake batches, as D sees a pure fake batch in the
        # G step; a mixed batch lets D key on batch statistics that the G step never shows it.
        d_real, d_fake = backend.discriminator(seen_real, labels), backend.discriminator(seen_fake, labels)
    else:  # one forward for both halves: one DDP forward per backward
        both_labels = None if labels is None else torch.cat([labels, labels])
        d_real, d_fake = backend.discriminator(torch.cat([seen_real, seen_fake]), both_labels).chunk(2)
    losses = objectives.discriminator_losses(
        cfg.objective,
        d_real,
        d_fake,
        penalty_critic=penalty_critic,
        real=real,
        fake=fake,
        labels=labels,
        alpha=alpha,
        loss_scale=backend.loss_scale(),
        r1_due=r1_due,
    )
    if cfg.augment.policy == "ada":  # ADA's overfitting measure r_t on this step's (augmented) reals
        losses["augment_rt"] = torch.sign(d_real.detach().float()).mean()
    return losses


def d_step(
    backend, cfg: ExperimentConfig, batch: Batch, latent=None, alpha=None, *, augment_p: float = 1.0,
    augment_params=None, r1_due: bool = True,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """One critic update on a real batch and a fresh fake batch: per micro-batch (train.grad_accum)
    ONE forward and ONE backward, all-reduced only on the last; one optimizer step.

    `latent`, the penalty's `alpha` and the (real, fake) `augment_params` are drawn here unless
    given (equivalence tests fix them); real and fake get independent augmentations.
    """
    real = batch.images
    labels = batch.labels if cfg.model.num_classes > 0 else None  # unconditional: ignore labels
    if latent is None:
        latent = torch.randn(real.shape[0], cfg.model.latent_dim, device=real.device)
    real_params, fake_params = augment_params or (
        draw_augmentation(cfg, real.shape[0], real.device, augment_p),
        draw_augmentation(cfg, real.shape[0], real.device, augment_p),
    )
    count, parts, size = cfg.train.grad_accum, [], real.shape[0] // cfg.train.grad_accum
    for i, (real_i, labels_i, latent_i, alpha_i) in enumerate(
        micro_batches(count, real, labels, latent, alpha)
    ):
        last = i == count - 1
        with backend.accumulating("d", last):  # no all-reduce before the last micro-batch
            parts.append(critic_losses(
                backend, cfg, real_i, labels_i, latent_i, alpha_i,
                rows_of(real_params, count, i, size), rows_of(fake_params, count, i, size),
                r1_due,
            ))  # fmt: skip
            stepped = backend.update("d", parts[-1]["loss"], first=i == 0, last=last)
    return {**mean_of(parts), **stepped}


def g_step(
    backend, cfg: ExperimentConfig, local_batch: int, device, latent=None, labels=None, *,
    augment_p: float = 1.0, augment_params=None,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """One generator update through a frozen, unwrapped D (no D gradients, no D all-reduce), in
    train.grad_accum micro-batches with one all-reduce and one optimizer step. D sees the fakes
    through a fresh augmentation (differentiable: G learns through it)."""
    critic = backend.critic_module
    critic.requires_grad_(False)
    if latent is None:
        latent = torch.randn(local_batch, cfg.model.latent_dim, device=device)
    if labels is None and cfg.model.num_classes > 0:
        labels = torch.randint(0, cfg.model.num_classes, (local_batch,), device=device)
    params = (
        augment_params
        if augment_params is not None
        else draw_augmentation(cfg, local_batch, device, augment_p)
    )
    count, parts, size = cfg.train.grad_accum, [], local_batch // cfg.train.grad_accum
    for i, (latent_i, labels_i) in enumerate(micro_batches(count, latent, labels)):
        last = i == count - 1
        with backend.accumulating("g", last):
            fake = backend.generator(latent_i, labels_i)
            seen = seen_by_d(fake, rows_of(params, count, i, size))
            parts.append(objectives.generator_losses(cfg.objective, critic(seen, labels_i)))
            stepped = backend.update("g", parts[-1]["loss"], first=i == 0, last=last)
    critic.requires_grad_(True)
    return {**mean_of(parts), **stepped}


def warn_batchnorm_accumulation(
    cfg: ExperimentConfig, backend: Backend, local_batch: int, accelerator
) -> None:
    """With BatchNorm, micro-batches normalise with their own statistics: not the full batch's."""
    if cfg.train.grad_accum == 1:
        return
    modules = [*backend.generator_module.modules(), *backend.critic_module.modules()]
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in modules):
        accelerator.print(
            f"warning: train.grad_accum={cfg.train.grad_accum} with BatchNorm: each micro-batch of "
            f"{local_batch // cfg.train.grad_accum} normalises with its own statistics, so the update is "
            f"not the one a batch of {local_batch} per process would give (README: gradient accumulation)"
        )


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
    return save_png(samples_picture(samples, model.num_classes), out_dir / "samples" / f"step_{step:07d}.png")


def averaged_generator(backend: Backend, ema) -> torch.nn.Module:
    """What samples and evaluations show: the EMA generator when there is one."""
    return ema.model if ema is not None else backend.generator_module


def prepare_process(cfg: ExperimentConfig, device: torch.device) -> None:
    torch.autograd.set_detect_anomaly(cfg.train.detect_anomaly)
    if device.type == "cpu":
        keep_freed_host_memory()  # CPU fast path: no page faults on every step's activations


def fresh_start(cfg: ExperimentConfig, rank: int) -> TrainState:
    """Step 0, with a different latent-noise stream on every process (same init was drawn before)."""
    torch.manual_seed(cfg.train.seed * 1000 + rank + 1)
    return TrainState(augment_p=cfg.augment.p_start if cfg.augment.policy == "ada" else 0.0)


def augment_probability(cfg: ExperimentConfig, state: TrainState) -> float:
    """The probability of each augmentation op: DiffAugment always, ADA its adaptive p."""
    return {"none": 0.0, "diffaugment": 1.0, "ada": state.augment_p}[cfg.augment.policy]


def adapted_p(cfg: ExperimentConfig, p: float, tally: augment.RealSignTally, world: int) -> float:
    """ADA's new p from every process's r_t since the last adjustment. ONE all-reduce and a host
    sync, every augment.interval G steps; every rank gets the same sums, so the same p."""
    sign_sum, steps = sum_over_ranks(tally.totals.clone()).tolist()
    tally.reset()
    images = round(steps / world) * cfg.data.batch_size  # D steps of one process x the global batch
    return augment.adjusted_p(p, sign_sum / steps, cfg.augment.target, images, cfg.augment.speed_images)


def r1_due(cfg: ExperimentConfig, images_seen: int) -> bool:
    """Lazy R1: the penalty on D steps 0, N, 2N, ... of the run (N = objective.r1_every)."""
    return (images_seen // cfg.data.batch_size) % cfg.objective.r1_every == 0


def update_average(
    ema: GeneratorEMA, generator, cfg: ExperimentConfig, state: TrainState, n_critic: int
) -> None:
    """The EMA after G step state.step; its images are GLOBAL (all processes), so an average by
    images is the same for any world size with the same data.batch_size."""
    step_images = n_critic * cfg.data.batch_size
    ema.update(generator, state.step, state.images_seen - step_images, step_images)


def build_ema(cfg: ExperimentConfig, generator) -> GeneratorEMA | None:
    train_cfg = cfg.train
    if not (train_cfg.ema_decay or train_cfg.ema_images):
        return None
    return GeneratorEMA(generator, train_cfg.ema_decay, train_cfg.ema_images, train_cfg.ema_rampup)


def evaluate_now(backend: Backend, ema, cfg: ExperimentConfig, reference, accelerator) -> dict:
    """Evaluation during training: every process generates and embeds its share; rank 0 gets the
    metrics (others: {})."""
    model = averaged_generator(backend, ema)
    was_training = model.training
    model.eval()
    results = metrics.evaluate_generator(
        model, cfg, cfg.eval.metrics, cfg.eval.num, accelerator.process_index, accelerator.num_processes,
        accelerator.gather, accelerator.device, reference=reference,
    )  # fmt: skip
    model.train(was_training)
    return results


def prepare_reference(cfg: ExperimentConfig, accelerator):
    """Extractor and real side, once; a bad metric name fails here, before step 1 (None: off)."""
    if not cfg.eval.every:
        return None
    metrics.plan_evaluation(cfg, cfg.eval.metrics)  # names and extractor before the real data is read
    modes = toy_modes(cfg.data.path) if cfg.data.is_toy else None
    count = cfg.eval.reference_count()  # rows of the real side (None: the whole split)
    # The real rows are streamed only when the reference cache holds none for this key.
    return metrics.prepare_evaluation(
        cfg, cfg.eval.metrics, cfg.eval.num, accelerator.process_index, accelerator.num_processes,
        accelerator.gather, accelerator.device, real_stream=evaluation_stream(cfg, count),
        modes=modes, cache_dir=metrics.default_reference_dir(cfg),
    )  # fmt: skip


def describe_models(backend: Backend) -> str:
    return "\n".join(
        f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters\n{model}"
        for name, model in (("generator", backend.generator_module), ("discriminator", backend.critic_module))
    )


def stop_with_checkpoint(
    checkpointer: Checkpointer, state: TrainState, stop, accelerator, saved: bool, diverged: bool, own=None
) -> int:
    """The preemption checkpoint: the state so far (mid-critic-phase too), then exit 75. A state
    that is not finite is never written: the last good checkpoint stays `latest`."""
    where = f"step {state.step}" + (f" after {state.critic_steps} D steps" if state.critic_steps else "")
    signal_name = stop.signal_name or "stop signal"
    if diverged:
        accelerator.print(f"{signal_name} at {where}: not checkpointing non-finite values; latest stays")
    else:
        accelerator.print(f"{signal_name}: checkpointing at {where}")
    if not (saved or diverged):
        checkpointer.save(state, own)  # own: this rank's BatchNorm stats (LazyBufferAverage)
    return PREEMPTED_EXIT_CODE


def due(step: int, every: int, finished: bool) -> bool:
    """True at the last step and every `every` steps (0 = only at the last step)."""
    return finished or bool(every and step % every == 0)


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
    """Run (or continue) training. Returns 0 when finished, PREEMPTED_EXIT_CODE on a signal,
    DIVERGED_EXIT_CODE when non-finite values could not be rolled back.

    `stream`: the data to train on (default: the configured source, this process's shard).
    `accelerator`: one the caller built for this config (tests wrap one to observe or fake ranks).
    """
    # Join the world; the launcher's settings complete the config, which the world size then checks.
    cfg = complete_from_launcher(cfg)
    out_dir = Path(cfg.train.out_dir)
    accelerator = accelerator or build_accelerator(cfg, log_with(cfg), project_dir=logging_dir(out_dir))
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    local_batch = cfg.validate(world_size=world).local_batch(world)  # the batch splits over the real world
    check_fits(cfg, world, device)  # absurd sizes (ConfigError) before any data is read or model built
    prepare_process(cfg, device)
    stop = StopRequest(accelerator, cfg.distributed.stop_check_s)  # a signal during set-up counts too
    lock, resume_from = open_run(cfg, accelerator, resume, overwrite, allow_config_change)  # before any data

    # Load the training set first: a bad source fails here, before any model is built.
    stream = stream or build_train_stream(cfg, rank, world)
    accelerator.print(stream.describe())

    # Construct networks (same init on every rank), then distribute them.
    torch.manual_seed(cfg.train.seed)
    backend = build_backend(accelerator, cfg, build_generator(cfg), build_discriminator(cfg))
    hooks.on_backend(backend)
    warn_batchnorm_accumulation(cfg, backend, local_batch, accelerator)
    ema = build_ema(cfg, backend.generator_module)
    tally = augment.RealSignTally(device) if cfg.augment.policy == "ada" else None  # ADA's r_t sums
    if verbose:
        accelerator.print(describe_models(backend))

    # Resume, or start fresh with a different noise stream on every process.
    checkpointer = Checkpointer(
        out_dir,
        accelerator,
        backend,
        cfg,
        ema,
        stream,
        num_machines(world),
        {"augment": tally} if tally else None,
    )
    state = checkpointer.restore(resume_from) if resume_from else fresh_start(cfg, rank)  # RNG too
    backend.set_learning_rates(cfg.optim.learning_rates(state.lr_scale))
    if accelerator.is_main_process:
        cfg.save_yaml(out_dir / "config.yaml")
    tracker = Tracker(
        cfg, out_dir, accelerator.is_main_process, state.step if resume_from else None, accelerator
    )
    noise, reference = fixed_noise(cfg, device), prepare_reference(cfg, accelerator)
    guard = NonFiniteGuard(device)

    def average_buffers() -> None:  # collective; the EMA generator shows G's averaged stats too
        backend.sync_buffers()
        if ema is not None:
            ema.copy_buffers(backend.generator_module)

    # BatchNorm running stats: averaged over processes only where something reads them.
    buffers = LazyBufferAverage({"g": backend.generator_module, "d": backend.critic_module}, average_buffers)

    # Train: n_critic D steps, one G step, EMA; then log, samples, evaluation, checkpoint, stop check.
    window, exit_code = LogWindow(), 0
    try:
        while state.step < cfg.train.steps:
            if cfg.optim.lr_decay_start < 1.0:  # a function of the step alone: resume stays exact
                factor = cfg.optim.lr_factor(state.step, cfg.train.steps) * state.lr_scale
                backend.set_learning_rates(cfg.optim.learning_rates(factor))
            n_critic = cfg.train.n_critic_at(state.step)
            p = augment_probability(cfg, state)
            while state.critic_steps < n_critic:
                batch = next(stream).to(device)
                hooks.before_d_step(backend, batch)
                r1 = r1_due(cfg, state.images_seen)
                d_losses = d_step(backend, cfg, batch, augment_p=p, r1_due=r1)
                if tally is not None:
                    tally.add(d_losses["augment_rt"])
                guard.watch(d_losses)
                state.images_seen += cfg.data.batch_size
                state.critic_steps += 1
                if state.critic_steps < n_critic and stop.poll():  # a long critic phase still stops
                    break
            if state.critic_steps < n_critic:  # stopped mid-phase: resume continues these D steps
                diverged = guard.tripped(accelerator, backend, ema, check_state=True)
                with buffers.averaged(keep=True) as own:
                    exit_code = stop_with_checkpoint(
                        checkpointer, state, stop, accelerator, False, diverged, own
                    )
                break
            hooks.before_g_step(backend)
            g_losses = g_step(backend, cfg, local_batch, device, augment_p=p)
            hooks.after_g_step(backend)
            guard.watch(g_losses)
            state.step, state.critic_steps = state.step + 1, 0
            if tally is not None and state.step % cfg.augment.interval == 0:
                state.augment_p = adapted_p(cfg, state.augment_p, tally, world)  # all-reduce + host sync
            if ema is not None:
                update_average(ema, backend.generator_module, cfg, state, n_critic)
            window.add(d_losses, g_losses, images=n_critic * cfg.data.batch_size)
            tracker.advance(state.step)  # the progress bar on a terminal; nothing otherwise

            finished = state.step == cfg.train.steps
            saving = due(state.step, cfg.checkpoint.every, finished)
            if (saving or due(state.step, cfg.log.every, finished)) and guard.tripped(
                accelerator, backend, ema, check_state=saving
            ):  # never log or checkpoint NaN: roll back to the last good checkpoint, or give up
                detected_at, window = state.step, LogWindow()
                state = roll_back(cfg, state, checkpointer, backend, rank)
                tracker.rollback(state.step, detected_at, state.rollbacks, state.lr_scale)
                continue
            if due(state.step, cfg.log.every, finished):
                scalars = window.scalars(steps_left=cfg.train.steps - state.step)  # log-step host sync
                scalars.update(images_seen=state.images_seen, **backend.learning_rates())
                if cfg.augment.policy == "ada":
                    scalars["augment_p"] = state.augment_p
                hooks.on_log(state.step, scalars)
                tracker.log(state.step, {**scalars, **{f"data_{k}": v for k, v in stream.stats.items()}})
            sampling = due(state.step, cfg.log.sample_every, finished)
            evaluating = reference is not None and due(state.step, cfg.eval.every, finished)
            with (
                buffers.averaged(keep=finished) if sampling or evaluating or saving else nullcontext() as own
            ):
                if accelerator.is_main_process and sampling:
                    grid = save_sample_grid(averaged_generator(backend, ema), noise, out_dir, state.step)
                    tracker.log_picture(state.step, "samples", grid)
                if evaluating:  # a collective: every rank evaluates its share
                    results = evaluate_now(backend, ema, cfg, reference, accelerator)
                    tracker.log_summary(state.step, {f"eval/{k}": v for k, v in results.items()})
                if saving:
                    checkpointer.save(state, own)
            if not finished and stop.agreed():  # an all-reduce only every K steps (world.StopRequest)
                diverged = not saving and guard.tripped(accelerator, backend, ema, check_state=True)
                with buffers.averaged(keep=True) as own:
                    exit_code = stop_with_checkpoint(
                        checkpointer, state, stop, accelerator, saving, diverged, own
                    )
                break
    except Diverged as err:
        accelerator.print(f"error: {err}")
        exit_code = DIVERGED_EXIT_CODE
    finally:
        stop.restore()
        tracker.close()
        if lock is not None:
            lock.release()
    if exit_code == 0:
        accelerator.print(f"done: {state.step} steps, {state.images_seen} images; run directory {out_dir}")
    accelerator.end_training()
    return exit_code
