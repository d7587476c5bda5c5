"""Toy 2D evaluation end to end, and the Inception extractor's call convention (with a stand-in network)."""

import numpy as np
import pytest
import torch

from distgan.config import load_config
from distgan.data import Batch, evaluation_data, toy_modes
from distgan.metrics import MetricsError, evaluate_generator, prepare_evaluation
from distgan.metrics.extractors import InceptionExtractor

TOY = ["data.source=toy", "data.path=grid25", "model.arch=mlp"]


class MixtureGenerator(torch.nn.Module):
    """Samples grid25 points from the given modes only (a perfect or a collapsed generator)."""

    num_classes = 0
    sample_shape = (2,)

    def __init__(self, modes):
        super().__init__()
        self.means, self.std = toy_modes("grid25")
        self.modes = np.asarray(modes)

    def sample(self, n, labels=None, seed=None):
        rng = np.random.default_rng(seed)
        picked = self.modes[rng.integers(0, len(self.modes), size=n)]
        return torch.from_numpy(self.means[picked] + self.std * rng.normal(size=(n, 2))).float()


def test_toy_grid_evaluation_sees_a_collapsed_generator():
    cfg = load_config(None, TOY)
    metrics = ["fd", "kid", "precision_recall", "mode_coverage"]
    real, modes = evaluation_data(cfg, 2500)
    reference = prepare_evaluation(cfg, metrics, 2500, real=real, modes=modes)  # reused by both runs
    full = evaluate_generator(
        MixtureGenerator(range(25)), cfg, metrics, 2500, reference=reference, kid_subsets=10
    )
    collapsed = evaluate_generator(
        MixtureGenerator(range(10)), cfg, metrics, 2500, reference=reference, kid_subsets=10
    )
    assert full["extractor"] == "raw" and full["num_real"] == 2500
    assert full["modes_captured"] == 25 and full["high_quality_fraction"] > 0.97
    assert collapsed["modes_captured"] == 10 and collapsed["num_modes"] == 25
    assert full["fd_raw"] < 0.05 < collapsed["fd_raw"]
    assert full["recall_raw"] > 0.9 and collapsed["recall_raw"] < 0.5
    assert full["kid_raw"] < collapsed["kid_raw"]
    with pytest.raises(ValueError, match="prepared for other metrics"):
        evaluate_generator(MixtureGenerator(range(25)), cfg, ["fd"], 2500, reference=reference)


class FakeInception(torch.nn.Module):
    """Same call convention as the FID TorchScript file: uint8 RGB in, 2048 features with return_features."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(6, 2048)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if img.dtype != torch.uint8 or img.shape[1] != 3 or not return_features:
            raise RuntimeError("expected uint8 RGB images and return_features=True")
        x = img.float() / 255
        return self.proj(torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], 1))


@pytest.fixture
def fake_inception(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(FakeInception()).save(str(path))
    return path


def test_inception_extractor_feeds_uint8_rgb_and_labels_results(fake_inception, tmp_path):
    extractor = InceptionExtractor(fake_inception, "cpu")
    feats, labels = extractor.embed(torch.rand(4, 1, 28, 28) * 2 - 1)  # grayscale is repeated to RGB
    assert feats.shape == (4, 2048) and feats.dtype == torch.float32 and labels is None
    cfg = load_config(
        None, ["model.channels=3", "data.resolution=32", f"eval.inception_weights={fake_inception}"]
    )

    class Colours(torch.nn.Module):
        num_classes = 0

        def __init__(self, shift):
            super().__init__()
            self.shift = shift

        def sample(self, n, labels=None, seed=None):
            g = torch.Generator().manual_seed(seed)
            return (torch.rand(n, 3, 32, 32, generator=g) * 0.5 - 0.25 + self.shift).clamp(-1, 1)

    real = Batch(images=Colours(0.0).sample(300, seed=1), labels=None)
    # KID, not FD: a 2048-d FD costs seconds of eigendecompositions and is tested on its own.
    same = evaluate_generator(Colours(0.0), cfg, ["kid"], 300, real=real)
    shifted = evaluate_generator(Colours(0.5), cfg, ["kid"], 300, real=real)
    assert same["extractor"] == "inception" and "kid_inception" in same
    assert abs(same["kid_inception"]) < 0.01 * shifted["kid_inception"]


def test_inception_weights_that_are_not_torchscript_are_a_clear_error(tmp_path):
    state_dict = tmp_path / "pt_inception-2015-12-05.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, state_dict)
    with pytest.raises(MetricsError, match="not a TorchScript module.*inception-2015-12-05.pt"):
        InceptionExtractor(state_dict, "cpu")
