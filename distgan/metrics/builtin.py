"""The metrics distgan ships, registered in `distgan.registry.METRICS` when this module is imported.

Result keys name the metric, the number of generated samples, the reference and the extractor,
like StyleGAN's `fid50k_full`: fid10k_inception (FID only with the Inception network; fd1k_raw
otherwise), kid10k_inception and kid10k_std_inception, precision10k_/recall10k_, density10k_/
coverage10k_, is10k_inception; class coverage and Stacked MNIST's modes name their classifier
(classes_covered_mnist_classifier, stacked_modes_mnist_per_channel). With the default reference and
resize the keys without a count (fd_X, kid_X, precision_X, ...) are written too, for existing readers.
"""

from __future__ import annotations

from distgan.metrics.coverage import class_coverage, mode_coverage
from distgan.metrics.density_coverage import DEFAULT_K, density_coverage
from distgan.metrics.frechet import feature_statistics, frechet_distance_from_statistics
from distgan.metrics.inception_score import DEFAULT_SPLITS, inception_score
from distgan.metrics.kid import kid
from distgan.metrics.metric import Metric, MetricInputs
from distgan.metrics.precision_recall import precision_recall
from distgan.metrics.stacked_modes import stacked_modes
from distgan.registry import METRICS

PR_K = 3  # Kynkäänniemi et al. 2019


def _plain(inputs: MetricInputs, **values: float) -> dict:
    """The keys without a count (fd_raw, ...), only where they cannot be mistaken for another protocol."""
    return {f"{name}_{inputs.extractor}": v for name, v in values.items()} if inputs.plain_keys else {}


def _fd(inputs: MetricInputs) -> dict:
    value = frechet_distance_from_statistics(
        *inputs.real_statistics, *feature_statistics(inputs.fake_features.cpu())
    )
    return {inputs.key("fid" if inputs.extractor == "inception" else "fd"): value, **_plain(inputs, fd=value)}


def _kid(inputs: MetricInputs) -> dict:
    mean, std = kid(
        inputs.real_features.cpu(), inputs.fake_features.cpu(), inputs.kid_subsets, seed=inputs.seed
    )
    return {inputs.key("kid"): mean, inputs.key("kid", "std"): std, **_plain(inputs, kid=mean, kid_std=std)}


def _precision_recall(inputs: MetricInputs) -> dict:
    pr = precision_recall(inputs.real_features.cpu(), inputs.fake_features.cpu(), k=PR_K)
    return {
        inputs.key("precision"): pr["precision"], inputs.key("recall"): pr["recall"],
        **_plain(inputs, precision=pr["precision"], recall=pr["recall"]),
    }  # fmt: skip


def _density_coverage(inputs: MetricInputs) -> dict:
    dc = density_coverage(inputs.real_features.cpu(), inputs.fake_features.cpu())
    return {inputs.key("density"): dc["density"], inputs.key("coverage"): dc["coverage"]}


def _inception_score(inputs: MetricInputs) -> dict:
    mean, std = inception_score(inputs.fake_predictions.cpu())
    return {inputs.key("is"): mean, inputs.key("is", "std"): std}


def _class_coverage(inputs: MetricInputs) -> dict:
    coverage = class_coverage(
        inputs.fake_predictions.cpu(), inputs.real_predictions.cpu(), inputs.num_classes
    )
    return {f"{key}_{inputs.labeler}": value for key, value in coverage.items()}


def _stacked_modes(inputs: MetricInputs) -> dict:
    scores = stacked_modes(inputs.fake_predictions)
    return {f"stacked_{key}_{inputs.labeler}": value for key, value in scores.items()}


def _mode_coverage(inputs: MetricInputs) -> dict:
    means, std = inputs.modes
    return mode_coverage(inputs.fake_features.cpu(), means, std)


METRICS.register("fd", Metric(_fd, real_features=False, min_samples=10))
METRICS.register("kid", Metric(_kid, min_samples=50))
METRICS.register("precision_recall", Metric(_precision_recall, min_samples=10 * PR_K))
METRICS.register("density_coverage", Metric(_density_coverage, min_samples=10 * DEFAULT_K))
METRICS.register(
    "inception_score",
    Metric(_inception_score, data=("rgb",), extractors=("inception",), labeler="inception",
           real_features=False, min_samples=10 * DEFAULT_SPLITS),
)  # fmt: skip
METRICS.register(
    "class_coverage",
    Metric(_class_coverage, data=("gray",), labeler="mnist_classifier", min_samples=10),
)
# Stacked MNIST only (data.source=stacked_mnist), so not in the default list of other RGB data.
METRICS.register(
    "stacked_modes",
    Metric(_stacked_modes, data=("rgb",), labeler="mnist_per_channel", real_features=False,
           min_samples=10, default=False),
)  # fmt: skip
METRICS.register("mode_coverage", Metric(_mode_coverage, data=("points",), min_samples=10))
