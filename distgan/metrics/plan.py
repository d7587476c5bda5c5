"""Which metrics and extractors apply to which data: checked before any sample is generated.

`plan_evaluation(cfg, metrics)` resolves eval.extractor=auto, checks every metric name against
`distgan.registry.METRICS` and that it makes sense for the run's data and extractor, and raises one
MetricsError that says what is valid. It loads nothing and computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distgan.config import EVAL_EXTRACTORS, ExperimentConfig
from distgan.metrics.errors import MetricsError
from distgan.metrics.extractors import INCEPTION_HINT
from distgan.metrics.metric import Metric
from distgan.registry import METRICS

CLASSIFIER = "mnist_classifier"  # the only extractor that also predicts classes


@dataclass(frozen=True)
class EvaluationPlan:
    metrics: tuple[str, ...]  # validated metric names, in the order asked
    extractor: str  # resolved feature extractor: raw | mnist_classifier | inception
    labeler: str | None  # second output: mnist_classifier labels, inception probabilities (IS), or None
    inception_weights: str | None
    resize: str  # legacy | clean (eval.resize)

    def entries(self) -> list[tuple[str, Metric]]:
        return [(name, METRICS.get(name)) for name in self.metrics]

    @property
    def needs_real_features(self) -> bool:
        """False when every metric reads only the real mean and covariance (FID from a .npz)."""
        return any(metric.real_features for _, metric in self.entries())


def data_kind(cfg: ExperimentConfig) -> str:
    return "points" if cfg.data.is_toy else ("gray" if cfg.model.channels == 1 else "rgb")


def valid_metrics(cfg: ExperimentConfig, extractor: str | None = None) -> list[str]:
    """The registered metrics that apply to this run's data (and to `extractor`, when given: the
    Inception Score only with Inception): the default list of `python -m distgan.evaluate`."""
    kind = data_kind(cfg)
    return [
        name
        for name, metric in METRICS.items()
        if metric.default
        and kind in metric.data
        and (extractor is None or metric.extractors is None or extractor in metric.extractors)
    ]


def default_metrics(cfg: ExperimentConfig) -> list[str]:
    """valid_metrics for the extractor eval.extractor resolves to (without loading anything)."""
    try:
        extractor = resolve_extractor(cfg)
    except MetricsError:
        extractor = None  # the plan says what is wrong with it
    return valid_metrics(cfg, extractor)


def check_sample_counts(plan: EvaluationPlan, num: int, num_real: int | None, where: str) -> None:
    """Refuse counts too small for a metric to mean anything (eval.num=5 with KID, say)."""
    for name, metric in plan.entries():
        real_ok = num_real is None or not metric.real_features or num_real >= metric.min_samples
        if num < metric.min_samples or not real_ok:
            got = f"{num} generated" + ("" if real_ok else f", {num_real} real")
            raise MetricsError(
                f"{where}: metric {name!r} needs at least {metric.min_samples} samples per side, got {got}; "
                "raise the count or drop the metric"
            )


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
    kind = data_kind(cfg)
    for name in metrics:
        if name not in METRICS or kind not in METRICS.get(name).data:
            data = {"points": "toy 2D data", "gray": "1-channel images", "rgb": "3-channel images"}[kind]
            what = (
                f"metric {name!r} does not apply to {data}" if name in METRICS else f"unknown metric {name!r}"
            )
            raise MetricsError(f"{what}; valid for this data: {applicable}")
    extractor = resolve_extractor(cfg)
    labelers = set()
    for name in metrics:
        metric = METRICS.get(name)
        if metric.extractors is not None and extractor not in metric.extractors:
            raise MetricsError(
                f"metric {name!r} needs eval.extractor={' or '.join(metric.extractors)} (the resolved "
                f"extractor is {extractor}); valid: inception with eval.inception_weights=PATH or auto"
            )
        if metric.labeler is not None:
            labelers.add(metric.labeler)
    if len(labelers) > 1:
        raise MetricsError(f"eval.metrics: {sorted(labelers)} need two second networks at once; pick one")
    resize = cfg.eval.resize
    if resize == "clean" and (extractor != "inception" or cfg.eval.inception_weights == "auto"):
        raise MetricsError(
            "eval.resize=clean resizes for the TorchScript FID Inception (as clean-fid does): it needs "
            f"eval.extractor=inception with eval.inception_weights=PATH (resolved extractor: {extractor}, "
            f"weights: {cfg.eval.inception_weights}); valid otherwise: eval.resize=legacy"
        )
    labeler = next(iter(labelers), None)
    plan = EvaluationPlan(
        tuple(dict.fromkeys(metrics)), extractor, labeler, cfg.eval.inception_weights, resize
    )
    if str(cfg.eval.reference).endswith(".npz") and plan.needs_real_features:
        rows = [name for name, metric in plan.entries() if metric.real_features]
        raise MetricsError(
            f"eval.reference={cfg.eval.reference} holds only mu and sigma, but {rows} need the real "
            "feature rows; valid with a .npz reference: fd (and inception_score)"
        )
    return plan
