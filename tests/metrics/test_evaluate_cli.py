"""`python -m distgan.evaluate` on a real (2-step) training checkpoint: table, JSON, clear errors."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # trains a 2-step run and starts a Python process

TINY = ["model.g_width=8", "model.d_width=8", "data.batch_size=16", "log.every=1", "log.sample_every=0"]


def run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "quick"
    result = run("-m", "distgan.train", "--config", "configs/quickstart.yaml", *TINY,
                 "train.steps=2", f"train.out_dir={out}")  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


def test_evaluate_prints_and_writes_every_requested_metric(run_dir):
    metrics = ["fd", "kid", "precision_recall", "class_coverage"]
    result = run("-m", "distgan.evaluate", "--checkpoint", str(run_dir), "--metrics", *metrics,
                 "--num", "300", "--seed", "1")  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = run_dir / "eval" / "step_0000002.json"  # the documented default location
    assert f"wrote {out}" in result.stdout
    report = json.loads(out.read_text())
    expected = {
        "fd_mnist_classifier", "kid_mnist_classifier", "kid_std_mnist_classifier",
        "precision_mnist_classifier", "recall_mnist_classifier",
        "classes_covered_mnist_classifier", "kl_generated_vs_real_mnist_classifier",
    }  # fmt: skip
    assert expected <= set(report)
    assert report["extractor"] == "mnist_classifier" and report["metrics"] == metrics
    assert report["step"] == 2 and report["num_generated"] == 300 and report["seed"] == 1
    assert report["fd_mnist_classifier"] > 0 and 0 <= report["precision_mnist_classifier"] <= 1
    for key in expected:  # the printed table holds the same numbers
        assert key in result.stdout
    # Count-named keys, and the real side cached under $DISTGAN_CACHE (tests/conftest.py) for reuse.
    assert report["fd300_mnist_classifier"] == report["fd_mnist_classifier"]
    assert report["reference"].startswith(os.environ["DISTGAN_CACHE"]) and os.path.isfile(report["reference"])


def test_bad_metric_is_a_clear_error_before_anything_is_generated(run_dir, tmp_path, capsys):
    from distgan.evaluate import main  # in-process: the error path exits before accelerate or sampling

    out = tmp_path / "never.json"
    checkpoint = str(run_dir / "checkpoints" / "step_0000002")
    assert main(["--checkpoint", checkpoint, "--metrics", "fd", "mode_coverage", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'mode_coverage' does not apply to 1-channel images" in err
    assert (
        "valid for this data: ['fd', 'kid', 'precision_recall', 'density_coverage', 'class_coverage']" in err
    )
    assert not out.exists()
    assert main(["--checkpoint", checkpoint, "--extractor", "inception"]) == 2
    assert "eval.extractor=inception needs eval.inception_weights" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "nope")]) == 2
    assert "not a checkpoint" in capsys.readouterr().err
