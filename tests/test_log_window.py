"""The log window's means: each value over the steps that reported it (lazy regularizers included)."""

from __future__ import annotations

import pytest
import torch

from distgan.tracking import LogWindow


def test_every_key_is_the_mean_over_the_steps_that_reported_it():
    window = LogWindow()
    for step in range(8):
        d = {"loss": torch.tensor(float(step)), "d_real": torch.tensor(1.0)}
        if step % 4 == 0:  # lazy R1 on D steps 0 and 4
            d["r1"] = torch.tensor(10.0 * (step + 1))
        g = {"loss": torch.tensor(2.0)}
        if step % 2 == 0:  # path length on G steps 0, 2, 4, 6
            g["pl_penalty"] = torch.tensor(float(step))
        window.add(d, g, images=16)
    out = window.scalars(steps_left=8)
    assert out["loss_d"] == pytest.approx(3.5) and out["loss_g"] == pytest.approx(2.0)
    assert out["r1"] == pytest.approx((10.0 + 50.0) / 2)  # not / 8
    assert out["pl_penalty"] == pytest.approx((0 + 2 + 4 + 6) / 4)
    assert window.steps == 0 and window.sums == {}  # the next window starts empty
