"""The memory pre-flight counts StyleGAN2's widths and names the key to shrink: with channel_base
reset to its default the run is still too large, with channel_max reset it fits."""

from __future__ import annotations

import pytest
import torch

from distgan.config import ConfigError, load_config
from distgan.memory_check import check_fits, estimate

SMALL = ["model.arch=stylegan2", "model.num_classes=0", "data.resolution=32", "model.channels=3",
         "model.mapping_layers=2", "data.batch_size=4", "model.mbstd_group=4"]  # fmt: skip


def test_stylegan2_channel_base_is_counted_and_named(monkeypatch):
    small = load_config(None, [*SMALL, "model.channel_base=1024", "model.channel_max=64"])
    huge = load_config(None, [*SMALL, "model.channel_base=2097152", "model.channel_max=65536"])
    assert estimate(huge, 1).bytes > 100 * estimate(small, 1).bytes  # the widths reach the count
    monkeypatch.setattr("distgan.memory_check.available_bytes", lambda device: (2 * 2**30, "RAM"))
    check_fits(small, 1, torch.device("cpu"))  # fits: no error
    with pytest.raises(ConfigError, match=r"^model\.channel_max=65536: this run needs"):
        check_fits(huge, 1, torch.device("cpu"))
