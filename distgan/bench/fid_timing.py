"""The fid10k part of `python -m distgan.bench gpu`: time generating, embedding and the statistics
of 10,000 samples of the celeba_wgan generator (dry run: 300 samples on CPU).

The embedding network is the FID Inception when `--inception-weights PATH` names its TorchScript
file (inception-2015-12-05.pt); otherwise a stand-in of the same call convention and output size
(the JSON says which), so the generation and statistics shares are real either way.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from distgan.config import load_config
from distgan.metrics.extractors import build_extractor
from distgan.metrics.frechet import frechet_distance_from_statistics
from distgan.metrics.moments import Moments
from distgan.models import build_generator

CHUNK = 250  # as the evaluation generates


class StandInInception(torch.nn.Module):
    """Inception's interface (8-bit RGB in, 2048-d features out) at almost no cost: an 8 x 8 average
    pool and a linear map. Its time is not Inception's; the JSON says a stand-in was used."""

    def __init__(self) -> None:
        super().__init__()
        self.project = torch.nn.Linear(3 * 8 * 8, 2048)

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False):
        return self.project(torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 8).flatten(1))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()  # deliberate: the timer must see the work finished


def time_fid(
    config: str, samples: int, device: torch.device, inception_weights: str | None, fd_dims: int = 2048
) -> dict:
    """Seconds per part; fd_dims < 2048 takes the Fréchet distance of the first dims only (a dry run:
    the 2048-d eigendecompositions take a minute on a busy CPU and prove nothing about plumbing)."""
    cfg = load_config(config, [])
    generator = build_generator(cfg.model, cfg.sample_shape).to(device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        weights = inception_weights
        if weights is None:
            weights = str(Path(tmp) / "stand_in.pt")
            torch.jit.script(StandInInception()).save(weights)
        extractor = build_extractor("inception", cfg.sample_shape, device, weights)
    moments, seconds = Moments(2048), {"generation": 0.0, "embedding": 0.0, "statistics": 0.0}
    with torch.no_grad():
        for start in range(0, samples, CHUNK):
            t0 = time.perf_counter()
            images = generator.sample(min(CHUNK, samples - start), seed=start)
            _sync(device)
            t1 = time.perf_counter()
            features, _ = extractor.embed(images)
            _sync(device)
            t2 = time.perf_counter()
            moments.add(features)  # to the host: float64 moments
            seconds["generation"] += t1 - t0
            seconds["embedding"] += t2 - t1
            seconds["statistics"] += time.perf_counter() - t2
    t0 = time.perf_counter()
    mean, cov = moments.statistics()
    mean, cov = mean[:fd_dims], cov[:fd_dims, :fd_dims]
    frechet_distance_from_statistics(mean, cov, mean, cov)
    seconds["statistics"] += time.perf_counter() - t0
    total = sum(seconds.values())
    return {
        "key": f"fid{samples // 1000}k" if samples % 1000 == 0 else f"fid{samples}",
        "samples": samples,
        "fd_dims": fd_dims,
        "network": "inception" if inception_weights else "stand-in (no --inception-weights given)",
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "total_s": round(total, 3),
        "share": {k: round(v / total, 3) for k, v in seconds.items()},
        "samples_per_sec": round(samples / total, 1),
    }
