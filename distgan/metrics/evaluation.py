"""Evaluate a generator against real data, with every process generating and embedding its share.

No accelerate here: the caller passes its rank, world size and a
`gather(tensor) -> tensor` that concatenates equal-shaped tensors from all
ranks in rank order (accelerate's `accelerator.gather`). The main process
(rank 0) computes the metrics and returns them; other ranks return {}.

Reproducibility across world sizes: samples are made in fixed-size chunks;
chunk i always uses seed hash(seed, i) and labels (index % num_classes), and
chunks are dealt to ranks in contiguous blocks, so the gathered features
are the same samples, in the same order, for 1 or N processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distgan.config import ExperimentConfig
from distgan.metrics.coverage import class_coverage, mode_coverage
from distgan.metrics.errors import MetricsError
from distgan.metrics.extractors import Extractor, build_extractor
from distgan.metrics.frechet import frechet_distance
from distgan.metrics.kid import kid
from distgan.metrics.precision_recall import precision_recall
from distgan.metrics.registry import EvaluationPlan, plan_evaluation

Gather = Callable[[torch.Tensor], torch.Tensor]
CHUNK = 250  # samples generated and embedded at once; part of the seed scheme, so fixed


def chunk_seed(seed: int, chunk: int) -> int:
    """Independent, well-mixed seed for chunk `chunk` of an evaluation with seed `seed`."""
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])


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
    local_l = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=device)
    if world_size == 1:
        return local_f, (local_l if labeler is not None else None)
    if gather is None:
        raise ValueError("evaluate_generator: world_size > 1 needs gather (e.g. accelerator.gather)")
    # Ranks must send equal shapes: pad to the largest share, then keep each rank's real rows.
    pad = padded_rows - local_f.shape[0]
    all_f = gather(torch.cat([local_f, local_f.new_zeros(pad, local_f.shape[1])]))
    all_l = gather(torch.cat([local_l, local_l.new_full((pad,), -1)])) if labeler is not None else None
    keep = []
    for r in range(world_size):
        rows = sum(min(CHUNK, total - i * CHUNK) for i in _my_chunks(total, r, world_size)[0])
        keep.append(torch.arange(r * padded_rows, r * padded_rows + rows, device=all_f.device))
    keep_idx = torch.cat(keep)
    return all_f[keep_idx], (all_l[keep_idx] if all_l is not None else None)


@dataclass
class Reference:
    """Everything about the real side of an evaluation, built once and reusable across evaluations."""

    plan: EvaluationPlan
    num: int  # generated samples per evaluation
    extractor: Extractor
    labeler: Extractor | None  # classifier for class_coverage, or None
    real_feats: torch.Tensor  # (num_real, D), on every rank
    real_labels: torch.Tensor | None  # classifier predictions on the real samples
    modes: tuple[torch.Tensor, float] | None  # toy mixture (means, std) for mode_coverage


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
    modes: tuple[torch.Tensor, float] | None = None,
) -> Reference:
    """Validate the request, load the extractors and embed `num` real examples (shared by all ranks).

    Call it at setup (e.g. before training when eval.every > 0): every user
    mistake (metric, extractor, weights file, too little real data) then shows
    before any compute is spent, and later evaluations reuse the real features.
    real: the real examples, an object with `.images` (the caller loads them: metrics never
      imports the data stack; `distgan.data.evaluation_data` gives them with the modes).
    modes: (means, std) of the toy mixture, needed for mode_coverage.
    """
    plan = plan_evaluation(cfg, metrics)
    if real is None:
        raise ValueError("prepare_evaluation: pass the real examples (distgan.data.evaluation_data)")
    if "mode_coverage" in plan.metrics and modes is None:
        raise ValueError("prepare_evaluation: mode_coverage needs the toy mixture's modes")
    device = torch.device(device)
    shape = cfg.sample_shape
    extractor = build_extractor(plan.extractor, shape, device, plan.inception_weights)
    labeler = None
    if plan.labeler is not None:
        labeler = (
            extractor if plan.labeler == plan.extractor else build_extractor(plan.labeler, shape, device)
        )
    images = real.images
    n_real = min(num, len(images))
    if n_real < 2:
        raise MetricsError(f"evaluation needs at least 2 real examples, the data gave {len(images)}")
    feats, labels = embed_shared(
        lambda i, start, stop: images[start:stop],
        n_real,
        extractor,
        labeler,
        rank,
        world_size,
        gather,
        device,
    )
    return Reference(plan, num, extractor, labeler, feats, labels, modes)


def _compute(ref: Reference, cfg: ExperimentConfig, fake_f, fake_labels, seed: int, kid_subsets: int) -> dict:
    """The metrics, on the main process, from gathered features."""
    name = ref.plan.extractor
    results: dict[str, Any] = {
        "extractor": name,
        "num_generated": len(fake_f),
        "num_real": len(ref.real_feats),
    }
    real_f, fake_f = ref.real_feats.cpu(), fake_f.cpu()
    for metric in ref.plan.metrics:
        if metric == "fd":
            results[f"fd_{name}"] = frechet_distance(real_f, fake_f)
        elif metric == "kid":
            mean, std = kid(real_f, fake_f, subsets=kid_subsets, seed=seed)
            results[f"kid_{name}"], results[f"kid_std_{name}"] = mean, std
        elif metric == "precision_recall":
            pr = precision_recall(real_f, fake_f, k=3)
            results[f"precision_{name}"], results[f"recall_{name}"] = pr["precision"], pr["recall"]
        elif metric == "class_coverage":
            coverage = class_coverage(fake_labels.cpu(), ref.real_labels.cpu(), ref.labeler.num_classes)
            for key, value in coverage.items():
                results[f"{key}_{ref.plan.labeler}"] = value
        elif metric == "mode_coverage":
            means, std = ref.modes
            results.update(mode_coverage(fake_f, means, std))
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
    modes: tuple[torch.Tensor, float] | None = None,
    reference: Reference | None = None,
    kid_subsets: int = 100,
) -> dict[str, Any]:
    """Metrics of `generator` against real examples: the dict on rank 0, {} on other ranks.

    generator: anything with `sample(n, labels=None, seed=None)` returning samples in
      the data's range, and `num_classes` (0 = unconditional); pass it in eval mode.
    metrics: names from `distgan.metrics.valid_metrics(cfg)`; checked before any sampling.
    real, modes: see `prepare_evaluation`; real's `.labels` are not used (class histograms of
      both sets come from the same classifier, so its errors cancel).
    reference: from `prepare_evaluation` with the same metrics and num (reused across
      calls during training); built here when None.
    Every rank must call this with the same arguments (it holds collectives).
    """
    if reference is None:
        reference = prepare_evaluation(
            cfg, metrics, num, rank, world_size, gather, device, real=real, modes=modes
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
