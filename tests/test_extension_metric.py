"""A metric registered from one file (tests/extensions/custom_metric.py) is accepted by the config,
listed by --help-config, computed during training and logged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distgan.config import ConfigError, load_config
from distgan.registry import METRICS


@pytest.fixture
def mean_gap():
    import tests.extensions.custom_metric  # noqa: F401 - registers "mean_gap"

    yield METRICS.get("mean_gap")
    METRICS.unregister("mean_gap")


def test_a_registered_metric_is_computed_and_logged_during_training(mean_gap, tmp_path, fresh_accelerate):
    from distgan.config.describe import help_text
    from distgan.generation import load_generator
    from distgan.trainer import train

    assert "mean_gap" in help_text()  # --help-config lists the registered names
    cfg = load_config(
        "configs/toy_ring.yaml",
        ["train.steps=2", "eval.every=2", "eval.num=50", "eval.metrics=[fd,mean_gap]", "log.every=1",
         f"train.out_dir={tmp_path / 'run'}", f"eval.reference_dir={tmp_path / 'refs'}"],
    )  # fmt: skip
    assert train(cfg) == 0
    logged = json.loads((tmp_path / "run" / "eval.jsonl").read_text().splitlines()[-1])
    assert logged["step"] == 2 and "eval/fd50_raw" in logged
    # The value is the metric's own: recompute it from the checkpoint's generator and the real points.
    from distgan.data import real_examples
    from distgan.metrics.evaluation import chunk_seed

    generator = load_generator(tmp_path / "run")
    fake = generator.sample(50, seed=chunk_seed(0, 0)).double().numpy()
    real = real_examples(cfg, 50).images.double().numpy()
    expected = np.linalg.norm(fake - real.mean(axis=0), axis=1).mean()
    assert logged["eval/mean_gap50_raw"] == pytest.approx(expected, rel=1e-5)


def test_an_unregistered_metric_name_is_a_config_error_listing_the_registered_ones():
    with pytest.raises(ConfigError, match=r"eval.metrics\[0\]: unknown metric 'mean_gap'; valid: \['fd'"):
        load_config(None, ["eval.metrics=[mean_gap]"])
