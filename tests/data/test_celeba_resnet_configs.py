"""The shipped SN-ResNet CelebA recipes train a few steps on CPU through the CelebA stand-in parquet.

Only the sizes are made tiny (widths, batch, steps); everything else - resnet, hinge loss, spectral
norm on D, EMA, bf16 autocast (it runs on CPU too), the 178 px centre crop - is the recipe as shipped.
"""

from __future__ import annotations

import json
import math

import pytest
from safetensors.torch import load_file

from distgan.config import load_config
from distgan.generation import load_generator
from distgan.trainer import train

TINY = [
    "model.g_width=4",
    "model.d_width=4",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.shuffle_buffer=16",
    "train.steps=2",
    "log.every=1",
    "log.sample_every=0",
    "checkpoint.every=0",
]


@pytest.mark.parametrize("recipe,resolution", [("celeba_resnet", 64), ("celeba_resnet_128", 128)])
def test_recipe_trains_on_the_celeba_stand_in(recipe, resolution, celeba_dir, tmp_path, fresh_accelerate):
    out = tmp_path / "run"
    cfg = load_config(
        f"configs/{recipe}.yaml",
        ["data.source=parquet", f"data.path={celeba_dir}", *TINY, f"train.out_dir={out}"],
    )
    m = cfg.model
    assert (m.arch, m.spectral_norm, cfg.objective.loss, cfg.train.mixed_precision) == (
        "resnet", "d", "hinge", "bf16"
    )  # fmt: skip
    assert cfg.train.ema_decay > 0 and cfg.data.resolution == resolution
    assert train(cfg, resume="never") == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert all(math.isfinite(line[key]) for line in lines for key in ("loss_d", "loss_g"))
    checkpoint = out / "checkpoints" / "step_0000002"
    d_keys = load_file(str(checkpoint / "discriminator.safetensors")).keys()
    g_keys = load_file(str(checkpoint / "generator.safetensors")).keys()
    assert any(k.endswith("parametrizations.weight.0._v") for k in d_keys)  # SN on D ...
    assert not any("parametrizations" in k for k in g_keys)  # ... and not on G
    generator = load_generator(out)  # the EMA generator, as users sample it
    images = generator.sample(2, seed=0)
    assert images.shape == (2, 3, resolution, resolution) and images.abs().max() <= 1
