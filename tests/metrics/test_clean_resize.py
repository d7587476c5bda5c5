"""eval.resize=clean: clean-fid's resize, bit for bit, and keys that say which resize was used."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from distgan.config import load_config
from distgan.data import Batch
from distgan.metrics import MetricsError, evaluate_generator, plan_evaluation
from distgan.metrics.extractors import build_extractor

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "clean_resize_check", REPO / "benchmarks" / "clean_resize_check.py"
)
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def test_clean_resize_gives_clean_fids_bits():
    """The digest of clean-fid 0.1.35's own output on these images (benchmarks/clean_resize_check.py
    computed it with clean-fid installed; CI has no clean-fid, so the digest stands in for it)."""
    recorded = json.loads((REPO / "benchmarks" / "results" / "clean_resize_check.json").read_text())
    assert recorded["all_bit_equal"]
    outputs = [check.ours(image) for image in check.test_images()]
    assert all(o.shape == (299, 299, 3) and o.dtype.name == "float32" for o in outputs)
    assert any((o != o.round()).any() for o in outputs)  # not quantized back to 8 bits
    assert check.digest(outputs) == recorded["clean_fid_sha256"]


class SizeProbe(torch.nn.Module):
    """The FID TorchScript call convention; feature 0 is the side the network was given."""

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False):
        x = x.float()
        features = x.mean(dim=(1, 2, 3))[:, None].repeat(1, 2048)
        features[:, 0] = float(x.shape[-1])
        return features


def test_clean_resize_reaches_the_network_at_299_px_and_the_keys_say_clean(tmp_path):
    weights = tmp_path / "probe.pt"
    torch.jit.script(SizeProbe()).save(str(weights))
    rgb = ["model.channels=3", "data.resolution=32", f"eval.inception_weights={weights}"]
    images = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1

    class Images(torch.nn.Module):
        num_classes = 0

        def sample(self, n, labels=None, seed=None):
            return images[:n]

    def evaluate(*overrides):  # KID: no 2048-d eigendecomposition, so the test stays fast
        cfg = load_config(None, [*rgb, *overrides])
        return evaluate_generator(
            Images(), cfg, ["kid"], 64, real=Batch(images=images, labels=None), kid_subsets=1
        )

    clean, legacy = evaluate("eval.resize=clean"), evaluate()
    assert clean["resize"] == "clean" and "kid64_clean_inception" in clean and "kid_inception" not in clean
    assert legacy["resize"] == "legacy" and "kid64_inception" in legacy
    sides = {
        resize: build_extractor("inception", (3, 32, 32), "cpu", str(weights), resize).embed(images[:2])[0][
            :, 0
        ]
        for resize in ("clean", "legacy")
    }
    assert sides["clean"].tolist() == [299.0, 299.0] and sides["legacy"].tolist() == [32.0, 32.0]


def test_clean_resize_needs_the_torchscript_inception():
    raw = load_config(
        None, ["model.channels=3", "data.resolution=32", "eval.extractor=raw", "eval.resize=clean"]
    )
    with pytest.raises(MetricsError, match="eval.resize=clean .* needs eval.extractor=inception"):
        plan_evaluation(raw, ["fd"])
