"""Sample-quality metrics for GANs: feature extractors, FD/KID, precision-recall, class and mode coverage.

Pure torch/numpy; never imports accelerate (the caller passes rank, world size
and a gather function to `evaluate_generator`). Every reported number is keyed
by the extractor that produced it ("fd_mnist_classifier", "fd_inception",
"fd_raw"): FD with another network is not comparable to published FID.
"""

from distgan.metrics import builtin  # noqa: F401 - registers the built-in metrics in METRICS
from distgan.metrics.coverage import class_coverage, mode_coverage
from distgan.metrics.density_coverage import density_coverage
from distgan.metrics.errors import MetricsError
from distgan.metrics.evaluation import RealStream, Reference, evaluate_generator, prepare_evaluation
from distgan.metrics.frechet import frechet_distance
from distgan.metrics.inception_score import inception_score
from distgan.metrics.kid import kid
from distgan.metrics.metric import Metric, MetricInputs
from distgan.metrics.plan import default_metrics, plan_evaluation, resolve_extractor, valid_metrics
from distgan.metrics.precision_recall import precision_recall
from distgan.metrics.reference_cache import count_label, default_reference_dir
from distgan.metrics.stats_file import load_stats, save_stats

__all__ = [
    "Metric",
    "MetricInputs",
    "MetricsError",
    "RealStream",
    "default_metrics",
    "load_stats",
    "save_stats",
    "Reference",
    "class_coverage",
    "count_label",
    "default_reference_dir",
    "density_coverage",
    "inception_score",
    "evaluate_generator",
    "frechet_distance",
    "kid",
    "mode_coverage",
    "plan_evaluation",
    "prepare_evaluation",
    "precision_recall",
    "resolve_extractor",
    "valid_metrics",
]
