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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgan.config import ExperimentConfig
from distgan.metrics.coverage import class_coverage, mode_coverage
from distgan.metrics.density_coverage import density_coverage
from distgan.metrics.errors import MetricsError
from distgan.metrics.extractors import Extractor, build_extractor
from distgan.metrics.frechet import feature_statistics, frechet_distance_from_statistics
from distgan.metrics.inception_score import inception_score
from distgan.metrics.kid import kid
from distgan.metrics.precision_recall import precision_recall
from distgan.metrics.reference_cache import count_label, load_reference, reference_key, save_reference
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


@dataclass
class Reference:
    """Everything about the real side of an evaluation, built once and reusable across evaluations."""

    plan: EvaluationPlan
    num: int  # generated samples per evaluation
    extractor: Extractor
    labeler: Extractor | None  # classifier for class_coverage, inception for IS, or None
    real_feats: torch.Tensor  # (num_real, D), on every rank
    real_labels: torch.Tensor | None  # classifier predictions (or class probabilities) of the real samples
    modes: tuple[torch.Tensor, float] | None  # toy mixture (means, std) for mode_coverage
    real_stats: tuple[np.ndarray, np.ndarray] | None = None  # mean, cov of real_feats (cached with them)
    cache_file: Path | None = None  # the reference file these came from or went to


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
    cache_dir: str | Path | None = None,
) -> Reference:
    """Validate the request, load the extractors and embed `num` real examples (shared by all ranks).

    Call it at setup (e.g. before training when eval.every > 0): every user
    mistake (metric, extractor, weights file, too little real data) then shows
    before any compute is spent, and later evaluations reuse the real features.
    real: the real examples, an object with `.images` (the caller loads them: metrics never
      imports the data stack; `distgan.data.evaluation_data` gives them with the modes), or a
      function returning that object, called only when `cache_dir` holds no reference yet.
    modes: (means, std) of the toy mixture, needed for mode_coverage.
    cache_dir: keep the real sample, its features and statistics here (reference_cache.py) and
      reuse them in later evaluations and runs; None computes them every time.
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
    if plan.labeler == "inception":
        extractor.probabilities = True
    key = reference_key(cfg, plan.extractor, plan.labeler, num, cfg.eval.reference_seed)
    cached = load_reference(Path(cache_dir), key) if cache_dir is not None else None
    if world_size > 1 and gather is not None:  # all ranks take the same path (embedding holds collectives)
        found = gather(torch.tensor([cached is not None], dtype=torch.long, device=device))
        cached = cached if bool(found.all()) else None
    if cached is not None:
        feats, labels = (
            cached.features.to(device),
            (None if cached.second is None else cached.second.to(device)),
        )
        stats = (cached.mean.numpy(), cached.cov.numpy())
        return Reference(plan, num, extractor, labeler, feats, labels, modes, stats, cached.path)
    images = (real() if callable(real) else real).images
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
    stats = feature_statistics(feats.cpu())
    path = None
    if cache_dir is not None and rank == 0:
        mean, cov = (torch.from_numpy(np.asarray(a)) for a in stats)
        path = save_reference(Path(cache_dir), key, images[:n_real], feats, mean, cov, labels)
    return Reference(plan, num, extractor, labeler, feats, labels, modes, stats, path)


def _compute(ref: Reference, cfg: ExperimentConfig, fake_f, fake_labels, seed: int, kid_subsets: int) -> dict:
    """The metrics, on the main process, from gathered features.

    Keys name the metric, the number of generated samples and the extractor, like StyleGAN's
    `fid50k_full`: fid10k_inception (FID only with the Inception network; fd1k_mnist_classifier
    otherwise), kid10k_inception, kid10k_std_inception, precision10k_/recall10k_, density10k_/
    coverage10k_, is10k_inception/is10k_std_inception. The earlier keys without a count
    (fd_X, kid_X, kid_std_X, precision_X, recall_X) are kept for existing readers.
    """
    name = ref.plan.extractor
    n = count_label(len(fake_f))
    results: dict[str, Any] = {
        "extractor": name,
        "num_generated": len(fake_f),
        "num_real": len(ref.real_feats),
        "reference_seed": cfg.eval.reference_seed,
    }
    if ref.cache_file is not None:
        results["reference"] = str(ref.cache_file)
    real_f, fake_f = ref.real_feats.cpu(), fake_f.cpu()
    for metric in ref.plan.metrics:
        if metric == "fd":
            real_stats = ref.real_stats or feature_statistics(real_f)
            value = frechet_distance_from_statistics(*real_stats, *feature_statistics(fake_f))
            results[f"{'fid' if name == 'inception' else 'fd'}{n}_{name}"] = results[f"fd_{name}"] = value
        elif metric == "kid":
            mean, std = kid(real_f, fake_f, subsets=kid_subsets, seed=seed)
            results[f"kid{n}_{name}"], results[f"kid{n}_std_{name}"] = mean, std
            results[f"kid_{name}"], results[f"kid_std_{name}"] = mean, std
        elif metric == "precision_recall":
            pr = precision_recall(real_f, fake_f, k=3)
            results[f"precision{n}_{name}"], results[f"recall{n}_{name}"] = pr["precision"], pr["recall"]
            results[f"precision_{name}"], results[f"recall_{name}"] = pr["precision"], pr["recall"]
        elif metric == "density_coverage":
            dc = density_coverage(real_f, fake_f)
            results[f"density{n}_{name}"], results[f"coverage{n}_{name}"] = dc["density"], dc["coverage"]
        elif metric == "inception_score":
            mean, std = inception_score(fake_labels.cpu())
            results[f"is{n}_{name}"], results[f"is{n}_std_{name}"] = mean, std
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
