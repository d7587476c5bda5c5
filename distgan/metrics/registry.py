"""Which metrics and extractors apply to which data: checked before any sample is generated.

`plan_evaluation(cfg, metrics)` resolves eval.extractor=auto, checks every
metric name and that it makes sense for the run's data, and raises one
MetricsError that says what is valid. It loads nothing and computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distgan.config import EVAL_EXTRACTORS, EVAL_METRICS, ExperimentConfig
from distgan.metrics.errors import MetricsError
from distgan.metrics.extractors import INCEPTION_HINT

FEATURE_METRICS = ("fd", "kid", "precision_recall", "density_coverage")  # need only a feature space
INCEPTION_ONLY = ("inception_score",)  # needs the FID Inception network's class probabilities
CLASSIFIER = "mnist_classifier"  # the only extractor that also predicts classes


@dataclass(frozen=True)
class EvaluationPlan:
    metrics: tuple[str, ...]  # validated metric names, in the order asked
    extractor: str  # resolved feature extractor: raw | mnist_classifier | inception
    labeler: str | None  # second output: mnist_classifier labels, inception probabilities (IS), or None
    inception_weights: str | None


def valid_metrics(cfg: ExperimentConfig) -> list[str]:
    """The metrics that apply to this run's data."""
    if cfg.data.is_toy:
        return [*FEATURE_METRICS, "mode_coverage"]
    if cfg.model.channels == 1:
        return [*FEATURE_METRICS, "class_coverage"]
    return [*FEATURE_METRICS, *INCEPTION_ONLY]


def resolve_extractor(cfg: ExperimentConfig, requested: str | None = None) -> str:
    """auto -> raw (toy 2D), mnist_classifier (1-channel images), inception (RGB, needs weights)."""
    name = requested or cfg.eval.extractor
    if name not in EVAL_EXTRACTORS:
        raise MetricsError(f"eval.extractor: unknown extractor {name!r}; valid: {list(EVAL_EXTRACTORS)}")
    channels = cfg.model.channels
    if cfg.data.is_toy:
        if name not in ("auto", "raw"):
            raise MetricsError(f"eval.extractor={name} cannot read toy 2D points; valid: auto, raw")
        return "raw"
    if name == "auto":
        if channels == 1:
            return CLASSIFIER
        if not cfg.eval.inception_weights:
            raise MetricsError(
                "no feature extractor for 3-channel images: FID needs Inception-v3 features, so supply "
                f"{INCEPTION_HINT}; or set eval.extractor=raw for pixel-space distances (not comparable to FID)"
            )
        name = "inception"
    if name == CLASSIFIER and channels != 1:
        raise MetricsError(
            f"eval.extractor=mnist_classifier reads 1-channel digits, but model.channels={channels}; "
            "valid: inception (with eval.inception_weights), raw, auto"
        )
    if name == "inception":
        if not cfg.eval.inception_weights:
            raise MetricsError(f"eval.extractor=inception needs eval.inception_weights: {INCEPTION_HINT}")
        if cfg.eval.inception_weights != "auto" and not Path(cfg.eval.inception_weights).is_file():
            raise MetricsError(f"eval.inception_weights: file not found: {cfg.eval.inception_weights}")
    return name


def plan_evaluation(cfg: ExperimentConfig, metrics: list[str] | tuple[str, ...]) -> EvaluationPlan:
    """Validate `metrics` for `cfg`'s data and resolve the extractor. Raises MetricsError."""
    if not metrics:
        raise MetricsError(f"no metrics requested; valid for this data: {valid_metrics(cfg)}")
    applicable = valid_metrics(cfg)
    for name in metrics:
        if name not in applicable:
            data = "toy 2D data" if cfg.data.is_toy else f"{cfg.model.channels}-channel images"
            known = name in EVAL_METRICS
            what = f"metric {name!r} does not apply to {data}" if known else f"unknown metric {name!r}"
            raise MetricsError(f"{what}; valid for this data: {applicable}")
    extractor = resolve_extractor(cfg)
    labeler = CLASSIFIER if "class_coverage" in metrics else None
    if "inception_score" in metrics:
        if extractor != "inception":
            raise MetricsError(
                f"metric 'inception_score' needs eval.extractor=inception (the resolved extractor is {extractor}); "
                "valid: inception with eval.inception_weights=PATH or auto"
            )
        labeler = "inception"
    return EvaluationPlan(tuple(dict.fromkeys(metrics)), extractor, labeler, cfg.eval.inception_weights)
