"""`python -m distgan.evaluate` at paper scale, on a 1-step toy run: reference statistics exported
and read back (.npz with mu and sigma), malformed files refused, exported folders and Hub ids
evaluated, and the default metric list following the extractor."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from distgan.config import load_config
from distgan.evaluate import main
from distgan.metrics import default_metrics
from tests.hub_stand_in import HubStandIn
from tests.launching import REPO, cpu_env

EVAL = ["--metrics", "fd", "--num", "300", "--no-reference-cache"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A 1-step toy run, trained in this process (no interpreter start-up to pay for)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    from distgan.trainer import train

    out = tmp_path_factory.mktemp("references") / "run"
    cfg = load_config("configs/toy_ring.yaml", ["train.steps=1", "log.every=1", f"train.out_dir={out}"])
    assert train(cfg) == 0
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()
    return out


def evaluate(*args) -> int:
    return main([*args])


def test_exported_statistics_read_back_give_the_same_fd(toy_run, tmp_path, fresh_accelerate, capsys):
    stats = tmp_path / "ring_train.npz"
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert (
        evaluate("--checkpoint", str(toy_run), *EVAL, "--export-stats", str(stats), "--out", str(first)) == 0
    )
    with np.load(stats, allow_pickle=False) as data:
        assert sorted(data.files) == ["mu", "sigma"]
        assert (
            data["mu"].shape == (2,) and data["sigma"].shape == (2, 2) and data["sigma"].dtype == np.float64
        )
    assert evaluate("--checkpoint", str(toy_run), *EVAL, "--reference", str(stats), "--out", str(second)) == 0
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert b["fd300_npz_raw"] == a["fd300_raw"] > 0 and "fd_raw" not in b  # the key says which reference
    assert b["reference"] == str(stats)
    # Exporting never replaces a file.
    capsys.readouterr()
    assert evaluate("--checkpoint", str(toy_run), *EVAL, "--export-stats", str(stats)) == 2
    assert "must be a new file ending in .npz" in capsys.readouterr().err


def test_a_reference_file_that_is_not_mu_and_sigma_is_one_line_and_exit_2(toy_run, tmp_path, capsys):
    no_sigma, pickled, text = tmp_path / "no_sigma.npz", tmp_path / "pickled.npz", tmp_path / "text.npz"
    np.savez(no_sigma, mu=np.zeros(2))
    np.savez(pickled, mu=np.array([{"a": 1}], dtype=object), sigma=np.eye(2))
    text.write_text("mu, sigma")
    cases = {
        no_sigma: f"--reference: {no_sigma} lacks 'sigma'",
        pickled: f"--reference: {pickled} is not a readable .npz of mu and sigma",
        text: f"--reference: {text} is not a readable .npz of mu and sigma",
    }
    for path, expected in cases.items():
        assert evaluate("--checkpoint", str(toy_run), *EVAL, "--reference", str(path)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {expected}"), err
    # Statistics alone cannot give KID: refused before anything is generated.
    np.savez(tmp_path / "ok.npz", mu=np.zeros(2), sigma=np.eye(2))
    args = ["--checkpoint", str(toy_run), "--metrics", "fd", "kid", "--reference", str(tmp_path / "ok.npz")]
    assert evaluate(*args) == 2
    assert "['kid'] need the real feature rows" in capsys.readouterr().err


HUB_SCRIPT = """
import json, sys
from distgan.export import main as export
from distgan.evaluate import main as evaluate
run, folder, out = sys.argv[1:4]
assert export(["--checkpoint", run, "--out", folder, "--push-to-hub", "me/toy-ring"]) == 0
flags = ["--metrics", "fd", "--num", "300", "--no-reference-cache"]
assert evaluate(["--checkpoint", folder, *flags, "--out", out + "/folder.json"]) == 0
assert evaluate(["--checkpoint", "me/toy-ring", *flags, "--out", out + "/hub.json"]) == 0
"""


@pytest.mark.slow  # a Python process of its own (the Hub endpoint is read at import)
def test_evaluate_takes_an_exported_folder_and_a_hub_id(toy_run, tmp_path, fresh_accelerate):
    assert evaluate("--checkpoint", str(toy_run), *EVAL, "--out", str(tmp_path / "run.json")) == 0
    with HubStandIn() as hub:
        env = cpu_env(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_TOKEN="hf_stand_in_token")
        env.pop("HF_HUB_OFFLINE", None)
        result = subprocess.run(
            [sys.executable, "-c", HUB_SCRIPT, str(toy_run), str(tmp_path / "export"), str(tmp_path)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert ("GET", "/me/toy-ring/resolve/" + "a" * 40 + "/generator.safetensors") in hub.requests
    direct, folder, by_id = (
        json.loads((tmp_path / f"{n}.json").read_text()) for n in ("run", "folder", "hub")
    )
    assert (
        folder["fd300_raw"] == by_id["fd300_raw"] == direct["fd300_raw"]
    )  # the same generator, the same samples
    assert by_id["checkpoint"] == "me/toy-ring" and folder["step"] is None


def test_the_default_metric_list_follows_the_extractor(tmp_path):
    weights = tmp_path / "inception.pt"
    weights.write_bytes(b"not read while planning")
    rgb = ["model.channels=3", "data.resolution=32"]
    assert "inception_score" not in default_metrics(load_config(None, [*rgb, "eval.extractor=raw"]))
    with_inception = default_metrics(load_config(None, [*rgb, f"eval.inception_weights={weights}"]))
    assert "inception_score" in with_inception and "fd" in with_inception
    assert "class_coverage" in default_metrics(load_config(None, []))  # 1-channel: the digit classifier


def test_counts_too_small_for_a_metric_are_refused_before_anything_runs(toy_run, capsys):
    assert evaluate("--checkpoint", str(toy_run), "--metrics", "fd", "kid", "--num", "5") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --num / --reference: metric 'fd' needs at least 10 samples per side, got 5 generated; "
                   "raise the count or drop the metric"]  # fmt: skip
    assert (
        evaluate("--checkpoint", str(toy_run), "--metrics", "kid", "--num", "100", "--reference", "20") == 2
    )
    assert (
        "metric 'kid' needs at least 50 samples per side, got 100 generated, 20 real"
        in capsys.readouterr().err
    )
