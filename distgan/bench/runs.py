"""The measurements behind `python -m distgan.bench`, one function each, and its result rows.

- `time_trainer`: the REAL `distgan.trainer.train()` (backend, d_step, g_step, EMA, logging, stop
  flag, all of it) fed by a `TimedStream`; its window runs from the first batch of iteration W to
  the first batch of iteration W+S, so it holds exactly S whole iterations of the loop.
- `time_reference`: the hand-written loop of reference.py over the same batches.
- `time_d_steps`: the real `d_step` with the real backend, for the penalty's cost.
- `collective_costs`: the per-iteration collectives of a multi-process run (stop flag, buffers).
Timed runs return (wall, process-CPU) seconds: on a shared machine the CPU seconds of a
one-thread run are the load-robust twin of the wall clock. Every function leaves the process as
it found it (except that train() on CPU sets host_memory.py's allocator thresholds, process-wide).
`row`/`table` shape the results; no CLI, no JSON files, no launching here.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import statistics
import tempfile
import time
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from distgan.config import ExperimentConfig, override
from distgan.data import Batch, build_train_stream
from distgan.distributed import launched_world_size

# the performance goals (docs/performance.md)
TARGETS = {"overhead_ratio": 0.97, "weak_scaling_efficiency": 0.85, "loader_to_consumption": 3.0}


def reset_accelerate() -> None:
    """Accelerate keeps process-wide singleton state: clear it so the next train() starts fresh."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


def device_sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def load_batches(
    cfg: ExperimentConfig, num: int, synthetic: bool, rank: int = 0, world: int = 1
) -> list[Batch]:
    """`num` local batches held in memory: read from the configured source, or random of the same shape.

    Both runs of a comparison consume these, so neither pays for loading (measured on its own).
    """
    local = cfg.local_batch(world)
    if synthetic:
        gen = torch.Generator().manual_seed(cfg.train.seed + rank)
        shape = cfg.sample_shape
        classes = max(cfg.model.num_classes, 1)
        return [
            Batch(
                torch.rand(local, *shape, generator=gen) * 2 - 1,
                torch.randint(0, classes, (local,), generator=gen),
            )
            for _ in range(num)
        ]
    stream = build_train_stream(cfg, rank, world)
    try:
        return [next(stream) for _ in range(num)]
    finally:
        stream.close()


def batch_index_of_iteration(cfg: ExperimentConfig, iteration: int) -> int:
    """Index (0-based) of the first real batch that G-step iteration `iteration` consumes."""
    return sum(cfg.train.n_critic_at(k) for k in range(iteration))


def images_in_window(cfg: ExperimentConfig, warmup: int, iterations: int) -> int:
    """Real images D consumes, all processes together, in iterations [warmup, warmup + iterations)."""
    batches = batch_index_of_iteration(cfg, warmup + iterations) - batch_index_of_iteration(cfg, warmup)
    return batches * cfg.data.batch_size


class TimedStream:
    """Stands in for TrainStream inside train(): same interface, plus a clock at two batch indices.

    Serves `source` (a list of batches, cycled, or a real TrainStream) and records
    (perf_counter(), process_time()) when batch `start` and batch `stop` are requested (after a GPU sync there,
    so queued work is inside the window it belongs to).
    """

    def __init__(self, source: list[Batch] | Iterator[Batch], start: int, stop: int, device) -> None:
        self.inner = source if not isinstance(source, list) else None
        self._cycle = itertools.cycle(source) if isinstance(source, list) else None
        self.start, self.stop, self.device = start, stop, device
        self.count = 0
        self.marks: dict[int, tuple[float, float]] = {}

    def __iter__(self) -> TimedStream:
        return self

    def __next__(self) -> Batch:
        if self.count in (self.start, self.stop):
            device_sync(self.device)
            self.marks[self.count] = (time.perf_counter(), time.process_time())
        self.count += 1
        return next(self._cycle) if self.inner is None else next(self.inner)

    def seconds(self) -> tuple[float, float]:
        (wall0, cpu0), (wall1, cpu1) = self.marks[self.start], self.marks[self.stop]
        return wall1 - wall0, cpu1 - cpu0

    def state_dict(self) -> dict:
        return self.inner.state_dict() if self.inner is not None else {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        raise RuntimeError("a benchmark run never resumes")

    @property
    def stats(self) -> dict:
        return self.inner.stats if self.inner is not None else {}

    def describe(self) -> str:
        return "benchmark: timed stream" + (
            f" over {self.inner.describe()}" if self.inner else " (in memory)"
        )

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def bench_config(cfg: ExperimentConfig, steps: int, out_dir: str) -> ExperimentConfig:
    """The run's config: its own directory, checkpoint and sample grid only after the timed window."""
    return override(
        cfg,
        [
            f"train.steps={steps}",
            f"train.out_dir={out_dir}",
            "checkpoint.every=0",
            "checkpoint.keep_last=1",
            "log.sample_every=0",
            "log.wandb.mode=disabled",
            "eval.every=0",
        ],
        world_size=launched_world_size(),
    )


def time_trainer(
    cfg: ExperimentConfig,
    source: list[Batch] | Iterator[Batch],
    warmup: int,
    iterations: int,
    device,
    run_dir: str | None = None,
) -> tuple[float, float]:
    """Seconds that `iterations` whole iterations of the real train() loop take after `warmup`.

    `run_dir`: the run directory, shared by all ranks of a multi-process run (default: a temp dir).
    """
    from distgan.trainer import train

    stream = TimedStream(
        source,
        batch_index_of_iteration(cfg, warmup),
        batch_index_of_iteration(cfg, warmup + iterations),
        device,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="distgan-bench-") as tmp:
            run_cfg = bench_config(
                cfg, warmup + iterations + 1, run_dir or tmp
            )  # +1: the stop mark is requested
            reset_accelerate()
            with contextlib.redirect_stdout(io.StringIO()):  # the trainer's console lines, not ours
                code = train(run_cfg, resume="never", stream=stream)
            if code != 0:
                raise RuntimeError(f"train() returned {code} during the benchmark")
    finally:
        reset_accelerate()
    return stream.seconds()


def time_reference(
    cfg: ExperimentConfig, batches: list[Batch], warmup: int, iterations: int, device
) -> tuple[float, float]:
    from distgan.bench.reference import reference_loop

    return reference_loop(cfg, itertools.cycle(batches), warmup, iterations, device)


def penalty_variants(cfg: ExperimentConfig) -> tuple[ExperimentConfig, ExperimentConfig]:
    """(critic step WITH the WGAN-GP penalty, the same step without it) on the config's models."""
    configured = "gp" in cfg.objective.penalties
    weight = cfg.objective.gp_weight if configured else 10.0  # the paper's lambda
    world = launched_world_size()
    return tuple(
        override(
            cfg,
            [
                "objective.loss=wasserstein",
                "objective.penalty=gp",
                "objective.r1_weight=0",
                f"objective.gp_weight={w}",
            ],
            world,
        )
        for w in (weight, 0.0)
    )


def time_d_steps(
    cfg: ExperimentConfig, batches: list[Batch], steps: int, rounds: int
) -> list[tuple[float, float]]:
    """Per round: (seconds per D step with the penalty, without), real backend and d_step, alternated."""
    from distgan.distributed import build_accelerator, build_backend, complete_from_launcher
    from distgan.models import build_discriminator, build_generator
    from distgan.step import d_step

    with_gp, plain = penalty_variants(cfg)
    reset_accelerate()
    try:
        accelerator = build_accelerator(complete_from_launcher(cfg))
        torch.manual_seed(cfg.train.seed)
        backend = build_backend(
            accelerator,
            cfg,
            build_generator(cfg.model, cfg.sample_shape),
            build_discriminator(cfg.model, cfg.sample_shape),
        )
        device_batches = [b.to(accelerator.device) for b in batches]
        feed = itertools.cycle(device_batches)

        def run(variant: ExperimentConfig) -> float:
            device_sync(accelerator.device)
            start = time.perf_counter()
            for _ in range(steps):
                d_step(backend, variant, next(feed))
            device_sync(accelerator.device)
            return (time.perf_counter() - start) / steps

        run(with_gp), run(plain)  # warm-up: allocator, kernels, autograd graphs
        results = []
        for r in range(rounds):
            order = (with_gp, plain) if r % 2 == 0 else (plain, with_gp)
            timed = {id(v): run(v) for v in order}
            results.append((timed[id(with_gp)], timed[id(plain)]))
        return results
    finally:
        reset_accelerate()


class _CountFlops(TorchDispatchMode):
    """Adds up torch's FLOP formulas (matmuls, convolutions) for every op that runs below autograd.

    torch's FlopCounterMode also tracks modules with backward hooks, which break the penalty's
    `autograd.grad` on a leaf input; counting at the dispatch level alone sees the forward, the
    backward and the double backward alike.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def model_flops_per_iteration(cfg: ExperimentConfig, batches: list[Batch], device) -> int:
    """Model FLOPs of one iteration (n_critic D steps + 1 G step) of the hand-written loop."""
    with _CountFlops() as counter:
        time_reference(cfg, batches, 0, 1, device)
    return counter.total


def collective_costs(accelerator, cfg: ExperimentConfig, calls: int) -> dict[str, float]:
    """Microseconds per iteration of the loop's collectives in the current world, one kind at a time.

    The stop flag and the BatchNorm buffers are the loop's own; the gradient all-reduce (one flat
    tensor per model, D n_critic times) is what DDP has to move anyway, for scale.
    """
    from distgan.distributed import average_buffers
    from distgan.models import build_discriminator, build_generator

    generator, critic = (
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )
    grads = [torch.zeros(sum(p.numel() for p in m.parameters())) for m in (generator, critic)]
    n_critic = cfg.train.n_critic

    def per_call(step) -> float:
        accelerator.wait_for_everyone()
        start = time.perf_counter()
        for _ in range(calls):
            step()
        device_sync(accelerator.device)
        return (time.perf_counter() - start) / calls * 1e6

    def gradients() -> None:
        for _ in range(n_critic):
            torch.distributed.all_reduce(grads[1])
        torch.distributed.all_reduce(grads[0])

    return {
        "stop_flag_allreduce_us": per_call(accelerator.check_trigger),  # StopRequest.agreed()
        "buffer_allreduce_us": per_call(lambda: average_buffers([generator, critic])),  # sync_buffers()
        "gradient_allreduce_us": per_call(gradients),
    }


# ---------------------------------------------------------------- result rows and the table


def spread(values: list[float]) -> dict:
    return {"runs": values, "min": min(values), "median": statistics.median(values), "max": max(values)}


def row(label: str, value, unit: str = "", target: float | None = None, note: str = "", **extra) -> dict:
    met = None if target is None or value is None else bool(value >= target)
    return {"label": label, "value": value, "unit": unit, "target": target, "met": met, "note": note, **extra}


def max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def shown(r: dict) -> str:
    value = r["value"]
    if value is None:
        return "n/a"
    text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
    if "runs" in r and len(r["runs"]) > 1:
        text += f"  [{r['min']:.3g} .. {r['max']:.3g}]"
    return f"{text} {r['unit']}".rstrip()


def table(rows: dict[str, dict]) -> str:
    lines = [f"{'measure':<52} {'value  [min .. max]':<34} {'target':<12}", "-" * 100]
    for r in rows.values():
        target = "" if r["target"] is None else f">= {r['target']:g} " + ("met" if r["met"] else "MISSED")
        lines.append(f"{r['label']:<52} {shown(r):<34} {target:<12} {r['note']}".rstrip())
    return "\n".join(lines)
