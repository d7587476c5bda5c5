"""Evaluate a generator against real data, with every process generating and embedding its share.

No accelerate here: the caller passes its rank, world size and a
`gather(tensor) -> tensor` that concatenates equal-shaped tensors from all
ranks in rank order (accelerate's `accelerator.gather`). The main process
(rank 0) computes the metrics and returns them; other ranks return {}.

The real side streams: each rank embeds its share of the reference batch by batch, folding the
features into float64 running moments (moments.py) and keeping the feature rows only when a metric
needs them; host memory is bounded by a batch, not by the number of real images.

Reproducibility across world sizes: samples are made in fixed-size chunks;
chunk i always uses seed hash(seed, i) and labels (index % num_classes), and
chunks are dealt to ranks in contiguous blocks, so the gathered features
are the same samples, in the same order, for 1 or N processes. Real rows travel with their row
index and are put back in file order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgan.config import ExperimentConfig
from distgan.metrics.errors import MetricsError
from distgan.metrics.extractors import Extractor, build_extractor
from distgan.metrics.metric import MetricInputs
from distgan.metrics.moments import Moments
from distgan.metrics.plan import EvaluationPlan, check_sample_counts, plan_evaluation
from distgan.metrics.reference_cache import count_label, load_reference, reference_key, save_reference
from distgan.metrics.stats_file import load_stats

Gather = Callable[[torch.Tensor], torch.Tensor]
# (rank, world_size) -> this rank's share of the reference as (row indices, samples) batches; samples
# are uint8 images (n, H, W, C), float images in [-1, 1] (n, C, H, W) or 2-D points (n, 2).
RealStream = Callable[[int, int], Iterable[tuple[torch.Tensor, torch.Tensor]]]
CHUNK = 250  # samples generated and embedded at once; part of the seed scheme, so fixed
COUNT_KEY = "eval.num / eval.reference (--num / --reference)"


def chunk_seed(seed: int, chunk: int) -> int:
    """Independent, well-mixed seed for chunk `chunk` of an evaluation with seed `seed`."""
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])


def as_samples(x: torch.Tensor) -> torch.Tensor:
    """uint8 (n, H, W, C) images -> float (n, C, H, W) in [-1, 1], as the generator makes them."""
    if x.dtype == torch.uint8:
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x


def _my_chunks(total: int, rank: int, world_size: int) -> tuple[range, int]:
    """This rank's chunk indices and the rows every rank pads to (a contiguous block per rank)."""
    per_rank = math.ceil(math.ceil(total / CHUNK) / world_size)
    first = rank * per_rank
    return range(first, min(first + per_rank, math.ceil(total / CHUNK))), per_rank * CHUNK


def embed_shared(
    make_chunk: Callable[[int, int, int], torch.Tensor],
    total: int,
    extractor: Extractor,
    labeler: Extractor | None,
    rank: int,
    world_size: int,
    gather: Gather | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features (total, D) and predicted labels (total,) or None, identical on every rank."""
    chunks, padded_rows = _my_chunks(total, rank, world_size)
    feats, labels = [], []
    for i in chunks:
        start, stop = i * CHUNK, min((i + 1) * CHUNK, total)
        x = make_chunk(i, start, stop)
        f, pred = extractor.embed(x)
        if labeler is not None and labeler is not extractor:
            _, pred = labeler.embed(x)
        feats.append(f.float().to(device))
        if labeler is not None:
            labels.append(pred.to(device))
    local_f = torch.cat(feats) if feats else torch.zeros(0, extractor.feature_dim, device=device)
    pred_shape = tuple(getattr(labeler, "prediction_shape", ()))  # () labels, (K,) probabilities
    pred_dtype = torch.float32 if pred_shape else torch.long
    local_l = torch.cat(labels) if labels else torch.zeros((0, *pred_shape), dtype=pred_dtype, device=device)
    if world_size == 1:
        return local_f, (local_l if labeler is not None else None)
    if gather is None:
        raise ValueError("evaluate_generator: world_size > 1 needs gather (e.g. accelerator.gather)")
    # Ranks must send equal shapes: pad to the largest share, then keep each rank's real rows.
    pad = padded_rows - local_f.shape[0]
    all_f = gather(torch.cat([local_f, local_f.new_zeros(pad, local_f.shape[1])]))
    all_l = None
    if labeler is not None:
        all_l = gather(torch.cat([local_l, local_l.new_full((pad, *local_l.shape[1:]), -1)]))
    keep = []
    for r in range(world_size):
        rows = sum(min(CHUNK, total - i * CHUNK) for i in _my_chunks(total, r, world_size)[0])
        keep.append(torch.arange(r * padded_rows, r * padded_rows + rows, device=all_f.device))
    keep_idx = torch.cat(keep)
    return all_f[keep_idx], (all_l[keep_idx] if all_l is not None else None)


def _gather_rows(local: torch.Tensor, world_size: int, gather: Gather | None, fill: float) -> torch.Tensor:
    """Every rank's rows, concatenated in rank order (ranks may hold different counts)."""
    if world_size == 1:
        return local
    if gather is None:
        raise ValueError("evaluation: world_size > 1 needs gather (e.g. accelerator.gather)")
    counts = gather(torch.tensor([local.shape[0]], dtype=torch.long, device=local.device)).tolist()
    padded = torch.cat([local, local.new_full((max(counts) - local.shape[0], *local.shape[1:]), fill)])
    everyone = gather(padded).reshape(world_size, max(counts), *local.shape[1:])
    return torch.cat([everyone[r, : counts[r]] for r in range(world_size)])


def _merge_moments(moments: Moments, world_size: int, gather: Gather | None, device) -> Moments:
    """The moments of every rank's share, merged in rank order (the same on every rank)."""
    if world_size == 1:
        return moments
    if gather is None:
        raise ValueError("evaluation: world_size > 1 needs gather (e.g. accelerator.gather)")
    dim = moments.mean.shape[0]
    counts = gather(torch.tensor([moments.count], dtype=torch.long, device=device)).tolist()
    means = gather(torch.from_numpy(moments.mean).to(device)[None]).cpu().numpy()
    scatters = gather(torch.from_numpy(moments.scatter).to(device)[None]).cpu().numpy()
    merged = Moments(dim)
    for r in range(world_size):
        merged.merge(counts[r], means[r], scatters[r])
    return merged


@dataclass
class RealSide:
    statistics: tuple[np.ndarray, np.ndarray]  # mean (D,), covariance (D, D), float64
    features: torch.Tensor | None  # (N, D) in row order, when a metric needs them
    predictions: torch.Tensor | None  # the labeler's output for the rows
    count: int


def embed_reference(
    stream: RealStream,
    extractor: Extractor,
    labeler: Extractor | None,
    keep_rows: bool,
    rank: int,
    world_size: int,
    gather: Gather | None,
    device: torch.device,
) -> RealSide:
    """Embed this rank's share batch by batch; statistics (and rows, if kept) of all ranks, on every rank."""
    moments = Moments(extractor.feature_dim)
    rows, feats, preds = [], [], []
    for indices, samples in stream(rank, world_size):
        x = as_samples(samples)
        f, pred = extractor.embed(x)
        if labeler is not None and labeler is not extractor:
            _, pred = labeler.embed(x)
        moments.add(f)
        if keep_rows:
            rows.append(indices.to(device))
            feats.append(f.float().to(device))
        if labeler is not None and keep_rows:
            preds.append(pred.to(device))
    moments = _merge_moments(moments, world_size, gather, device)
    if moments.count < 2:
        raise MetricsError(f"evaluation needs at least 2 real examples, the data gave {moments.count}")
    if not keep_rows:
        return RealSide(moments.statistics(), None, None, moments.count)
    dim = extractor.feature_dim
    no_rows = torch.zeros(0, dtype=torch.long, device=device)
    order = _gather_rows(torch.cat(rows) if rows else no_rows, world_size, gather, -1)
    no_feats = torch.zeros(0, dim, device=device)
    features = _gather_rows(torch.cat(feats) if feats else no_feats, world_size, gather, 0)
    predictions = None
    if labeler is not None:
        shape = tuple(getattr(labeler, "prediction_shape", ()))  # () labels, (K,) probabilities
        empty = torch.zeros((0, *shape), dtype=torch.float32 if shape else torch.long, device=device)
        predictions = _gather_rows(torch.cat(preds) if preds else empty, world_size, gather, -1)
    sort = torch.argsort(order)  # file order, whatever the world size
    return RealSide(
        moments.statistics(),
        features[sort],
        None if predictions is None else predictions[sort],
        moments.count,
    )


def in_memory_stream(images: torch.Tensor) -> RealStream:
    """A RealStream over samples already in memory (small references, tests)."""

    def stream(rank: int, world_size: int):
        per_rank = math.ceil(len(images) / world_size)
        first = rank * per_rank
        for start in range(first, min(first + per_rank, len(images)), CHUNK):
            stop = min(start + CHUNK, first + per_rank, len(images))
            yield torch.arange(start, stop), images[start:stop]

    return stream


@dataclass
class Reference:
    """Everything about the real side of an evaluation, built once and reusable across evaluations."""

    plan: EvaluationPlan
    num: int  # generated samples per evaluation
    extractor: Extractor
    labeler: Extractor | None  # classifier for class_coverage, inception for IS, or None
    real_feats: torch.Tensor | None  # (num_real, D), on every rank; None when no metric needs rows
    real_labels: torch.Tensor | None  # classifier predictions (or class probabilities) of the real rows
    modes: tuple[torch.Tensor, float] | None  # toy mixture (means, std) for mode_coverage
    real_stats: tuple[np.ndarray, np.ndarray]  # mean, cov of the real features (float64)
    cache_file: Path | None = None  # the reference file these came from or went to
    num_real: int = 0
    tag: str = ""  # what the result keys say about the reference: "", "_full", "_real5k", "_npz"


def _reference_tag(reference: str, count: int | None, num: int) -> str:
    if reference.endswith(".npz"):
        return "_npz"
    if count is None:
        return "_full"
    return "" if count == num else f"_real{count_label(count)}"


def _check_finite(stats: tuple[np.ndarray, np.ndarray], features, where: str) -> None:
    parts = [*stats] + ([features.cpu().numpy()] if features is not None else [])
    if not all(np.isfinite(p).all() for p in parts):
        raise MetricsError(
            f"the real features ({where}) contain NaN or inf: the extractor or the real data is broken, "
            "not the generator"
        )


def prepare_evaluation(
    cfg: ExperimentConfig,
    metrics: list[str],
    num: int,
    rank: int = 0,
    world_size: int = 1,
    gather: Gather | None = None,
    device: str | torch.device = "cpu",
    *,
    real=None,
    real_stream: RealStream | None = None,
    modes: tuple[torch.Tensor, float] | None = None,
    cache_dir: str | Path | None = None,
) -> Reference:
    """Validate the request, load the extractors and embed the real side (shared by all ranks).

    Call it at setup (e.g. before training when eval.every > 0): every user
    mistake (metric, extractor, weights file, too few samples) then shows
    before any compute is spent, and later evaluations reuse the real side.
    The reference is what cfg.eval.reference says: a random sample of `num` rows (""), N rows, the
    whole split (full), or mu/sigma from a .npz file.
    real_stream: this rank's share of the real rows in batches (`distgan.data.evaluation_stream`;
      metrics never imports the data stack), read only when `cache_dir` holds no reference yet.
    real: alternatively the real examples in memory, an object with `.images` (or a function
      returning it); its first `num` rows are the reference.
    modes: (means, std) of the toy mixture, needed for mode_coverage.
    cache_dir: keep the real features and statistics here (reference_cache.py) and reuse them in
      later evaluations and runs; None computes them every time.
    """
    plan = plan_evaluation(cfg, metrics)
    if "mode_coverage" in plan.metrics and modes is None:
        raise ValueError("prepare_evaluation: mode_coverage needs the toy mixture's modes")
    ref_setting = str(cfg.eval.reference)
    count = num if ref_setting == "" else cfg.eval.reference_count()
    check_sample_counts(plan, num, count if count else None, COUNT_KEY)
    device = torch.device(device)
    shape = cfg.sample_shape
    extractor = build_extractor(plan.extractor, shape, device, plan.inception_weights, plan.resize)
    labeler = None
    if plan.labeler is not None:
        labeler = (
            extractor if plan.labeler == plan.extractor else build_extractor(plan.labeler, shape, device)
        )
    if plan.labeler == "inception":
        extractor.probabilities = True

    def reference(stats, feats, labels, path, n_real) -> Reference:
        tag = _reference_tag(ref_setting, count, num)
        return Reference(plan, num, extractor, labeler, feats, labels, modes, stats, path, n_real, tag)

    if ref_setting.endswith(".npz"):  # statistics only: FD (and IS, which reads no real side)
        return reference(load_stats(ref_setting, extractor.feature_dim), None, None, Path(ref_setting), 0)
    keep_rows = plan.needs_real_features
    key = reference_key(cfg, plan.extractor, plan.labeler, count, cfg.eval.reference_seed, plan.resize)
    cached = None
    if cache_dir is not None:
        cached = load_reference(Path(cache_dir), key, extractor.feature_dim, keep_rows)
    if world_size > 1 and gather is not None:  # all ranks take the same path (embedding holds collectives)
        found = gather(torch.tensor([cached is not None], dtype=torch.long, device=device))
        cached = cached if bool(found.all()) else None
    if cached is not None:
        feats = None if cached.features is None else cached.features.to(device)
        labels = None if cached.second is None else cached.second.to(device)
        check_sample_counts(plan, num, cached.num_real, COUNT_KEY)
        return reference(
            (cached.mean.numpy(), cached.cov.numpy()), feats, labels, cached.path, cached.num_real
        )
    if real_stream is None:
        if real is None:
            raise ValueError("prepare_evaluation: pass real_stream (distgan.data.evaluation_stream) or real")
        images = (real() if callable(real) else real).images
        if count is not None:
            images = images[:count]
        real_stream = in_memory_stream(images)
    side = embed_reference(real_stream, extractor, labeler, keep_rows, rank, world_size, gather, device)
    where = f"data.path={cfg.data.path!r}, split {cfg.data.split}"
    _check_finite(side.statistics, side.features, where)
    check_sample_counts(plan, num, side.count, COUNT_KEY)
    path = None
    if cache_dir is not None and rank == 0:
        mean, cov = (torch.from_numpy(np.asarray(a)) for a in side.statistics)
        path = save_reference(Path(cache_dir), key, side.features, mean, cov, side.predictions, side.count)
    return reference(side.statistics, side.features, side.predictions, path, side.count)


def _compute(ref: Reference, cfg: ExperimentConfig, fake_f, fake_labels, seed: int, kid_subsets: int) -> dict:
    """The metrics, on the main process, from gathered features: each entry of METRICS computes its own."""
    name = ref.plan.extractor
    n = count_label(len(fake_f))
    clean = "_clean" if ref.plan.resize == "clean" else ""
    results: dict[str, Any] = {
        "extractor": name,
        "num_generated": len(fake_f),
        "num_real": ref.num_real,
        "reference_seed": cfg.eval.reference_seed,
        "resize": ref.plan.resize,
    }
    if ref.cache_file is not None:
        results["reference"] = str(ref.cache_file)
    inputs = MetricInputs(
        fake_features=fake_f.cpu(),
        fake_predictions=None if fake_labels is None else fake_labels.cpu(),
        real_features=None if ref.real_feats is None else ref.real_feats.cpu(),
        real_statistics=ref.real_stats,
        real_predictions=None if ref.real_labels is None else ref.real_labels.cpu(),
        num_classes=int(getattr(ref.labeler, "num_classes", 0)),
        modes=ref.modes,
        extractor=name,
        labeler=ref.plan.labeler,
        seed=seed,
        kid_subsets=kid_subsets,
        key=lambda metric, part="": f"{metric}{n}{ref.tag}{clean}{'_' + part if part else ''}_{name}",
        plain_keys=not ref.tag and not clean,
    )
    for _, metric in ref.plan.entries():
        results.update(metric.compute(inputs))
    return results


def evaluate_generator(
    generator: torch.nn.Module,
    cfg: ExperimentConfig,
    metrics: list[str],
    num: int,
    rank: int = 0,
    world_size: int = 1,
    gather: Gather | None = None,
    device: str | torch.device = "cpu",
    *,
    seed: int = 0,
    real=None,
    real_stream: RealStream | None = None,
    modes: tuple[torch.Tensor, float] | None = None,
    reference: Reference | None = None,
    kid_subsets: int = 100,
) -> dict[str, Any]:
    """Metrics of `generator` against real examples: the dict on rank 0, {} on other ranks.

    generator: anything with `sample(n, labels=None, seed=None)` returning samples in
      the data's range, and `num_classes` (0 = unconditional); pass it in eval mode.
    metrics: names registered in `distgan.registry.METRICS` that apply to the data (see
      `distgan.metrics.valid_metrics(cfg)`); checked before any sampling.
    real, real_stream, modes: see `prepare_evaluation`; real's `.labels` are not used (class
      histograms of both sets come from the same classifier, so its errors cancel).
    reference: from `prepare_evaluation` with the same metrics and num (reused across
      calls during training); built here when None.
    Every rank must call this with the same arguments (it holds collectives).
    """
    if reference is None:
        reference = prepare_evaluation(
            cfg,
            metrics,
            num,
            rank,
            world_size,
            gather,
            device,
            real=real,
            real_stream=real_stream,
            modes=modes,
        )
    elif reference.plan.metrics != tuple(dict.fromkeys(metrics)) or reference.num != num:
        raise ValueError("evaluate_generator: `reference` was prepared for other metrics or another num")
    num_classes = int(getattr(generator, "num_classes", 0))

    def generate(i: int, start: int, stop: int) -> torch.Tensor:
        labels = torch.arange(start, stop) % num_classes if num_classes > 0 else None
        return generator.sample(stop - start, labels=labels, seed=chunk_seed(seed, i)).float()

    with torch.no_grad():
        feats, labels = embed_shared(
            generate,
            num,
            reference.extractor,
            reference.labeler,
            rank,
            world_size,
            gather,
            torch.device(device),
        )
    if rank != 0:
        return {}
    results = _compute(reference, cfg, feats, labels, seed, kid_subsets)
    results["seed"] = seed
    return results
