"""What the loop does between iterations: logs, sample grids, evaluation, checkpoints, stops.

`Upkeep.after_iteration` runs after every G step and decides, from the step alone, what is due
(`log.every`, `log.sample_every`, `eval.every`, `checkpoint.every`, always the last step). Host
syncs happen only here, and only on those steps: the non-finite flag (faults.NonFiniteGuard),
the log scalars, the throttled stop flag (world.StopRequest). BatchNorm running stats are
averaged over processes only around what reads them (collectives.LazyBufferAverage).
A state that is not finite is never logged nor checkpointed: it rolls back, or stops (exit 3).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

import distgan.run_layout as run_layout
from distgan import metrics
from distgan.augment import AugmentPipe
from distgan.checkpoint import Checkpointer
from distgan.config import ExperimentConfig, ModelConfig
from distgan.data import TrainStream, evaluation_stream, toy_modes
from distgan.distributed import Backend, LazyBufferAverage, StopRequest, World
from distgan.ema import GeneratorEMA
from distgan.errors import PREEMPTED_EXIT_CODE
from distgan.faults import NonFiniteGuard, roll_back
from distgan.grids import samples_picture, save_png
from distgan.tracking import LogWindow, TrackedRun, Tracker, cut_history_to, start_fresh_history
from distgan.train_state import TrainState


class Outcome(enum.Enum):
    GO_ON = "go on"
    ROLLED_BACK = "rolled back"  # the state is the last good checkpoint's: start the iteration again
    STOPPED = "stopped"  # checkpointed on a signal: exit PREEMPTED_EXIT_CODE


def due(step: int, every: int, finished: bool) -> bool:
    """True at the last step and every `every` steps (0 = only at the last step)."""
    return finished or bool(every and step % every == 0)


def fixed_noise(
    count: int, model: ModelConfig, seed: int, device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same latents (and labels) for every sample grid of the run, on every process."""
    rng = torch.Generator().manual_seed(seed)
    latent = torch.randn(count, model.latent_dim, generator=rng).to(device)
    labels = (torch.arange(count) % model.num_classes).to(device) if model.num_classes > 0 else None
    return latent, labels


@torch.no_grad()
def save_sample_grid(model, noise, run_dir: Path, step: int) -> Path:
    was_training = model.training
    model.eval()
    samples = model(*noise)
    model.train(was_training)
    return save_png(samples_picture(samples, model.num_classes), run_layout.sample_grid(run_dir, step))


def prepare_reference(cfg: ExperimentConfig, world: World):
    """Extractor and real side, once; a bad metric name fails here, before step 1 (None: off)."""
    if not cfg.eval.every:
        return None
    metrics.plan_evaluation(cfg, cfg.eval.metrics)  # names and extractor before the real data is read
    modes = toy_modes(cfg.data.path) if cfg.data.is_toy else None
    count = cfg.eval.reference_count()  # rows of the real side (None: the whole split)
    # The real rows are streamed only when the reference cache holds none for this key.
    return metrics.prepare_evaluation(
        cfg, cfg.eval.metrics, cfg.eval.num, world.rank, world.size, world.gather, world.device,
        real_stream=evaluation_stream(cfg, count), modes=modes, cache_dir=metrics.default_reference_dir(cfg),
    )  # fmt: skip


def start_tracking(cfg: ExperimentConfig, run_dir: Path, world: World, accelerator, resumed_step) -> Tracker:
    """The resolved config in the run directory and the trackers; a resumed run's history is cut
    back to its checkpoint (the steps after it are logged again, each once)."""
    if world.is_main:
        cfg.save_yaml(run_dir / run_layout.CONFIG)
        if resumed_step is not None:
            cut_history_to(run_dir, resumed_step)
        else:
            start_fresh_history(run_dir)
    run = TrackedRun(run_dir, world.is_main, cfg.train.steps, resumed_step, cfg.to_dict())
    return Tracker(cfg.log, run, accelerator)


@dataclass
class Upkeep:
    cfg: ExperimentConfig
    world: World
    backend: Backend
    ema: GeneratorEMA | None
    checkpointer: Checkpointer
    tracker: Tracker
    stop: StopRequest
    accelerator: object
    augment: AugmentPipe  # its scalars (ADA's p) join the log
    stream: TrainStream  # its counters (epoch, skipped examples) join the log as data_*
    on_log: Callable[[int, dict], None]  # TrainHooks.on_log

    def __post_init__(self) -> None:
        self.run_dir = Path(self.cfg.train.out_dir)
        self.window, self.guard = LogWindow(), NonFiniteGuard(self.world.device)
        self.noise, self.reference = (
            fixed_noise(self.cfg.log.num_samples, self.cfg.model, self.cfg.train.seed, self.world.device),
            prepare_reference(self.cfg, self.world),
        )
        modules = {"g": self.backend.generator_module, "d": self.backend.discriminator_module}
        self.buffers = LazyBufferAverage(modules, self._average_buffers)

    def _average_buffers(self) -> None:  # collective; the EMA generator shows G's averaged stats too
        self.backend.sync_buffers()
        if self.ema is not None:
            self.ema.copy_buffers(self.backend.generator_module)

    def shown_generator(self) -> torch.nn.Module:
        """What samples and evaluations show: the EMA generator when there is one."""
        return self.ema.model if self.ema is not None else self.backend.generator_module

    def tripped(self, check_state: bool) -> bool:
        return self.guard.tripped(self.accelerator, self.backend, self.ema, check_state=check_state)

    def after_iteration(self, state: TrainState, d_losses: dict, g_losses: dict, images: int) -> Outcome:
        cfg, finished = self.cfg, state.step == self.cfg.train.steps
        self.guard.watch(g_losses)
        self.window.add(d_losses, g_losses, images=images)
        self.tracker.advance(state.step)  # the progress bar on a terminal; nothing otherwise
        saving, logging = (
            due(state.step, cfg.checkpoint.every, finished),
            due(state.step, cfg.log.every, finished),
        )
        if (saving or logging) and self.tripped(check_state=saving):
            # never log or checkpoint NaN: roll back to the last good checkpoint, or give up
            detected_at, self.window = state.step, LogWindow()
            roll_back(cfg.train, state, self.checkpointer, self.world.rank)
            self.tracker.rollback(state.step, detected_at, state.rollbacks, state.lr_scale)
            return Outcome.ROLLED_BACK
        if logging:
            scalars = self.window.scalars(steps_left=cfg.train.steps - state.step)  # log-step host sync
            scalars.update(
                images_seen=state.images_seen, **self.backend.learning_rates(), **self.augment.scalars()
            )
            self.on_log(state.step, scalars)
            self.tracker.log(
                state.step, {**scalars, **{f"data_{k}": v for k, v in self.stream.stats.items()}}
            )
        sampling = due(state.step, cfg.log.sample_every, finished)
        evaluating = self.reference is not None and due(state.step, cfg.eval.every, finished)
        reading = sampling or evaluating or saving
        with self.buffers.averaged(keep=finished) if reading else nullcontext() as own:
            if self.world.is_main and sampling:
                grid = save_sample_grid(self.shown_generator(), self.noise, self.run_dir, state.step)
                self.tracker.log_picture(state.step, "samples", grid)
            if evaluating:  # a collective: every rank evaluates its share
                self.tracker.log_summary(state.step, {f"eval/{k}": v for k, v in self.evaluate().items()})
            if saving:
                self.checkpointer.save(state.step, own)
        if not finished and self.stop.agreed():  # an all-reduce only every K steps (world.StopRequest)
            self.stop_with_checkpoint(state, saved=saving)
            return Outcome.STOPPED
        return Outcome.GO_ON

    def evaluate(self) -> dict:
        """Every process generates and embeds its share; rank 0 gets the metrics (others: {})."""
        model, cfg, world = self.shown_generator(), self.cfg, self.world
        was_training = model.training
        model.eval()
        results = metrics.evaluate_generator(
            model, cfg, cfg.eval.metrics, cfg.eval.num, world.rank, world.size, world.gather, world.device,
            reference=self.reference,
        )  # fmt: skip
        model.train(was_training)
        return results

    def stop_with_checkpoint(self, state: TrainState, saved: bool) -> int:
        """The preemption checkpoint: the state so far (mid-critic-phase too), then exit 75. A state
        that is not finite is never written: the last good checkpoint stays `latest`."""
        diverged = not saved and self.tripped(check_state=True)
        where = f"step {state.step}" + (f" after {state.critic_steps} D steps" if state.critic_steps else "")
        signal_name = self.stop.signal_name or "stop signal"
        if diverged:
            self.accelerator.print(
                f"{signal_name} at {where}: not checkpointing non-finite values; latest stays"
            )
        else:
            self.accelerator.print(f"{signal_name}: checkpointing at {where}")
        with self.buffers.averaged(keep=True) as own:  # own: this rank's BatchNorm stats
            if not (saved or diverged):
                self.checkpointer.save(state.step, own)
        return PREEMPTED_EXIT_CODE
