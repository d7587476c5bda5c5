"""Short real trainings of the unconditional image recipes, with thresholds a broken recipe fails.

Thresholds come from measured healthy runs (CPU, torch 2.13, train.seed 0), with margin, and from
the same runs with a planted fault (the adversarial loss's sign flipped in objectives.py):
  configs/mnist_uncond.yaml, 300 G steps (lr decaying from step 150), raw G and EMA, 1,000 samples
  against 1,000 embedded digits on the shipped classifier's features:
      FD: raw 8.8, EMA 8.7; sign flipped 124 (both)
      classes covered: 10, 10; sign flipped 1
  configs/stacked_mnist.yaml, 1,000 G steps (lr decaying from step 500; at 600 steps the healthy
  recipe covers only 40-68 triples), raw G and EMA, 2,000 samples, each channel read by the shipped
  classifier (uniform triples would cover about 865 of the 1,000 at this count):
      triples covered: raw 380, EMA 386; sign flipped 1
      KL to uniform: raw 1.43, EMA 1.39; sign flipped 6.91 (log 1000: one triple)
The full recipes are scored over 5 seeds in docs/quality.md.
"""

import pytest
import torch

from distgan.config import load_config
from distgan.data import evaluation_data
from distgan.metrics import evaluate_generator
from tests.test_quality_short import trained


def scored(recipe: str, steps: int, metrics: list[str], num: int, tmp_path) -> dict[str, dict]:
    """{'generator': scores, 'generator_ema': scores} of a short run of configs/RECIPE.yaml."""
    cfg = load_config(
        f"configs/{recipe}.yaml",
        [
            f"train.out_dir={tmp_path}",
            f"train.steps={steps}",
            "log.every=100",
            "log.sample_every=0",
            "checkpoint.every=0",
        ],
    )
    models = trained(cfg)
    real, modes = evaluation_data(cfg, 1000)
    with torch.no_grad():
        return {
            name: evaluate_generator(model, cfg, metrics, num, seed=1, real=real, modes=modes)
            for name, model in models.items()
        }


@pytest.mark.slow  # ~30 s of CPU
def test_mnist_uncond_short_run_draws_every_digit_near_the_real_features(tmp_path, fresh_accelerate):
    for name, result in scored("mnist_uncond", 300, ["fd", "class_coverage"], 1000, tmp_path).items():
        assert result["fd_mnist_classifier"] < 25.0, (name, result)  # healthy 7.6-7.9, flipped 124
        assert result["classes_covered_mnist_classifier"] >= 8, (name, result)  # healthy 10, flipped 1


@pytest.mark.slow  # ~100 s of CPU
def test_stacked_mnist_short_run_covers_hundreds_of_digit_triples(tmp_path, fresh_accelerate):
    for name, result in scored("stacked_mnist", 1000, ["stacked_modes"], 2000, tmp_path).items():
        assert result["stacked_modes_mnist_per_channel"] >= 150, (name, result)  # healthy 380-386, flipped 1
        assert result["stacked_kl_mnist_per_channel"] < 3.0, (name, result)  # healthy 1.4, flipped 6.9
