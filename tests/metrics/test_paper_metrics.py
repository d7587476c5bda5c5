"""FID users can put in a paper: an independent cross-check, count-named keys, a seeded random and
cached real reference, density/coverage, the Inception Score, and eval.inception_weights=auto."""

import json

import numpy as np
import pytest
import torch

from distgan.config import load_config
from distgan.data import Batch, real_examples
from distgan.data.reference_sample import reference_sample
from distgan.metrics import (
    MetricsError,
    count_label,
    density_coverage,
    evaluate_generator,
    frechet_distance,
    inception_score,
    kid,
    plan_evaluation,
    prepare_evaluation,
)
from distgan.metrics.fidelity_inception import WEIGHTS_URL, FidelityInceptionExtractor
from distgan.metrics.frechet import feature_statistics


def correlated(n, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)  # non-commuting covariances between the two sets
    return rng.normal(size=(n, d)) @ mixing + shift


@pytest.mark.slow  # multi-second
def test_fd_and_kid_match_torchmetrics_to_1e_4_relative():
    from torchmetrics.image.fid import _compute_fid
    from torchmetrics.image.kid import poly_mmd

    a, b = correlated(400, 48, seed=0), correlated(400, 48, seed=1, shift=0.3)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)  # float64, as ours
    theirs_fd = _compute_fid(ta.mean(0), torch.cov(ta.T), tb.mean(0), torch.cov(tb.T)).item()
    theirs_kid = poly_mmd(ta, tb).item()  # whole sets: no subset sampling on either side
    ours_fd = frechet_distance(a, b)
    ours_kid, std = kid(a, b, subsets=7, subset_size=400)
    assert abs(ours_fd - theirs_fd) <= 1e-4 * abs(theirs_fd), (ours_fd, theirs_fd)
    assert abs(ours_kid - theirs_kid) <= 1e-4 * abs(theirs_kid) and std == 0.0, (ours_kid, theirs_kid)
    assert theirs_fd > 1.0 and theirs_kid > 1e-3  # far from 0, so "relative" means something


def test_density_and_coverage_follow_naeem_et_al():
    rng = np.random.default_rng(0)
    cluster_a, cluster_b = rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 100.0
    real = np.concatenate([cluster_a, cluster_b])
    k = 5
    # Identical sets: every real ball holds its centre and its k nearest neighbours -> density (k+1)/k.
    same = density_coverage(real, real, k=k)
    assert same["coverage"] == 1.0 and same["density"] == pytest.approx((k + 1) / k)
    # A generator that only makes cluster A covers half of the real balls, with the same density.
    half = density_coverage(real, cluster_a, k=k)
    assert half["coverage"] == 0.5 and half["density"] == pytest.approx((k + 1) / k)
    far = density_coverage(real, cluster_a + 1000.0, k=k)
    assert far == {"density": 0.0, "coverage": 0.0}


def test_inception_score_closed_forms():
    k, n = 10, 1000
    cycling = np.eye(k)[np.arange(n) % k]  # every split holds every class equally: IS = K exactly
    assert inception_score(cycling) == pytest.approx((10.0, 0.0))
    assert inception_score(np.full((n, k), 1.0 / k)) == pytest.approx((1.0, 0.0))  # no confidence
    assert inception_score(np.eye(k)[np.zeros(n, int)]) == pytest.approx((1.0, 0.0))  # one class only
    with pytest.raises(MetricsError, match="sum to 1"):
        inception_score(np.ones((n, k)))


def test_count_label_writes_sample_counts_as_papers_do():
    assert [count_label(n) for n in (50_000, 10_000, 1000, 2500, 300)] == ["50k", "10k", "1k", "2500", "300"]


def test_the_reference_is_a_seeded_random_sample_cached_as_features_and_statistics(tmp_path):
    cfg = load_config(None, [])  # the embedded MNIST sample, mnist_classifier features
    first = real_examples(cfg, 300).images
    sample = reference_sample(cfg, 300, seed=0)
    assert torch.equal(sample.images, reference_sample(cfg, 300, seed=0).images)  # seeded
    assert not torch.equal(sample.images, first)  # not the first rows in file order
    assert not torch.equal(sample.images, reference_sample(cfg, 300, seed=1).images)

    loads = []

    def load_real():
        loads.append(1)
        return sample

    metrics = ["fd", "kid", "precision_recall", "density_coverage", "class_coverage"]
    ref = prepare_evaluation(cfg, metrics, 300, real=load_real, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith("-mnist_classifier-300-" + files[0][-17:-5] + ".json")
    meta = json.loads((tmp_path / files[0]).read_text())
    assert meta["key"]["num"] == 300 and meta["key"]["split"] == "train" and meta["key"]["resolution"] == 28
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / files[1]))
    assert "images" not in stored  # features are all the metrics read
    assert torch.equal(stored["features"], ref.real_feats) and stored["features"].shape == (300, 128)
    mean, cov = feature_statistics(ref.real_feats)
    assert np.allclose(stored["mean"].numpy(), mean) and np.allclose(stored["cov"].numpy(), cov)
    assert torch.equal(stored["labels"], ref.real_labels)

    def no_data():
        raise AssertionError("the cached reference should have been reused")

    again = prepare_evaluation(cfg, metrics, 300, real=no_data, cache_dir=tmp_path)
    assert torch.equal(again.real_feats, ref.real_feats) and loads == [1]
    other_seed = load_config(None, ["eval.reference_seed=1"])
    prepare_evaluation(other_seed, metrics, 300, real=load_real, cache_dir=tmp_path)  # another key
    assert loads == [1, 1] and len(list(tmp_path.iterdir())) == 4

    class Digits(torch.nn.Module):  # real digits as a "generator": keys and values, not quality
        num_classes = 0

        def sample(self, n, labels=None, seed=None):
            return first[:n]

    results = evaluate_generator(Digits(), cfg, metrics, 300, reference=again, kid_subsets=3)
    for key in ("fd300_mnist_classifier", "kid300_mnist_classifier", "kid300_std_mnist_classifier",
                "precision300_mnist_classifier", "recall300_mnist_classifier",
                "density300_mnist_classifier", "coverage300_mnist_classifier"):  # fmt: skip
        assert key in results, key
    assert "fid300_mnist_classifier" not in results  # "FID" is only ever the Inception network's
    assert results["fd300_mnist_classifier"] == results["fd_mnist_classifier"]  # the old keys still work
    assert results["reference"].endswith(".safetensors") and results["reference_seed"] == 0


class FakeInception(torch.nn.Module):
    """The FID TorchScript call convention: 2048 features with return_features, else class
    probabilities (no_output_bias=True, as the Inception Score asks)."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Linear(3, 2048)
        self.logits = torch.nn.Linear(3, 1008)

    def forward(self, img: torch.Tensor, return_features: bool = False, no_output_bias: bool = False):
        if img.dtype != torch.uint8 or img.shape[1] != 3:
            raise RuntimeError("expected uint8 RGB images")
        x = img.float().mean(dim=(2, 3)) / 255
        if return_features:
            return self.features(x)
        if not no_output_bias:
            raise RuntimeError("the Inception Score needs no_output_bias=True")
        return torch.softmax(self.logits(x) * 20, dim=1)


def test_inception_score_and_fid_keys_through_the_evaluation(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(FakeInception()).save(str(weights))
    cfg = load_config(None, ["model.channels=3", "data.resolution=28", f"eval.inception_weights={weights}"])

    class Colours(torch.nn.Module):
        num_classes = 0

        def sample(self, n, labels=None, seed=None):
            g = torch.Generator().manual_seed(seed)  # one random colour per image: varied class guesses
            return (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1).expand(n, 3, 28, 28)

    real = Batch(images=Colours().sample(300, seed=1), labels=None)
    results = evaluate_generator(Colours(), cfg, ["kid", "inception_score"], 300, real=real, kid_subsets=2)
    assert {"kid300_inception", "is300_inception", "is300_std_inception"} <= set(results)
    # The same number from the stand-in's own probabilities of the same samples (chunks of 250).
    from distgan.metrics.evaluation import chunk_seed

    samples = torch.cat(
        [Colours().sample(250, seed=chunk_seed(0, 0)), Colours().sample(50, seed=chunk_seed(0, 1))]
    )
    images = ((samples + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    expected = inception_score(torch.jit.load(str(weights))(images, no_output_bias=True))
    assert results["is300_inception"] == pytest.approx(expected[0], rel=1e-6) and expected[0] > 1.5

    with pytest.raises(MetricsError, match="'inception_score' does not apply to 1-channel images"):
        plan_evaluation(load_config(None, []), ["inception_score"])
    raw = load_config(None, ["model.channels=3", "data.resolution=28", "eval.extractor=raw"])
    with pytest.raises(MetricsError, match="'inception_score' needs eval.extractor=inception"):
        plan_evaluation(raw, ["inception_score"])


def test_inception_weights_auto_offline_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target = tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    with pytest.raises(MetricsError) as err:
        FidelityInceptionExtractor("cpu")
    message = str(err.value)
    assert WEIGHTS_URL in message and str(target) in message and "HF_HUB_OFFLINE" in message
    assert "pip install 'distgan[fid]'" in message
    auto = load_config(None, ["model.channels=3", "data.resolution=32", "eval.inception_weights=auto"])
    assert plan_evaluation(auto, ["fd", "inception_score"]).labeler == "inception"  # no file needed to plan

    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the weights")  # a file someone put in the cache: refused by its hash
    with pytest.raises(
        MetricsError, match=f"{target} has SHA-256 [0-9a-f]{{16}}..., expected 6726825d0af5f729"
    ):
        FidelityInceptionExtractor("cpu")


def test_a_download_whose_hash_does_not_match_is_refused_and_removed(tmp_path, monkeypatch):
    import io
    import urllib.request

    from distgan.metrics import fidelity_inception

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"<html>captive portal</html>")
    )
    target = tmp_path / "weights.pth"
    with pytest.raises(MetricsError) as err:
        fidelity_inception._download(target)
    assert len(str(err.value).splitlines()) == 1 and "delete it and run again" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary name stays


@pytest.mark.slow  # multi-second
def test_evaluations_during_training_reuse_the_cached_reference(tmp_path, fresh_accelerate, monkeypatch):
    from distgan import trainer, upkeep

    def cfg(name):
        return load_config(
            "configs/toy_ring.yaml",
            ["train.steps=2", "eval.every=2", "eval.num=300", "eval.metrics=[fd,density_coverage]",
             "log.every=1", "checkpoint.every=0", f"eval.reference_dir={tmp_path / 'refs'}",
             f"train.out_dir={tmp_path / name}"],
        )  # fmt: skip

    assert trainer.train(cfg("first")) == 0
    first = json.loads((tmp_path / "first" / "eval.jsonl").read_text())
    assert {"eval/fd300_raw", "eval/density300_raw", "eval/coverage300_raw"} <= set(first)
    assert first["eval/reference"].startswith(str(tmp_path / "refs"))

    def no_data(*args, **kwargs):
        def stream(rank, world_size):
            raise AssertionError("the second run should reuse the cached reference")

        return stream

    monkeypatch.setattr(upkeep, "evaluation_stream", no_data)  # where the loop reads the real side
    assert trainer.train(cfg("second")) == 0
    second = json.loads((tmp_path / "second" / "eval.jsonl").read_text())
    assert second["eval/reference"] == first["eval/reference"]
