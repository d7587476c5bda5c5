"""optim.lr_decay_start: both learning rates constant, then linear towards 0 at the last G step."""

import pytest

from distgan.config import ConfigError, load_config
from distgan.trainer import TrainHooks, train
from tests.backend_helpers import SMALL, TOY


def test_lr_factor_is_one_then_falls_linearly_to_one_over_the_remaining_steps():
    optim = load_config("configs/toy_ring.yaml", ["optim.lr_decay_start=0.5"]).optim
    assert [optim.lr_factor(s, 8) for s in range(8)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    constant = load_config("configs/toy_ring.yaml", ["optim.lr_decay_start=1"]).optim
    assert {constant.lr_factor(s, 8) for s in range(8)} == {1.0}
    with pytest.raises(ConfigError, match="optim.lr_decay_start"):
        load_config("configs/toy_ring.yaml", ["optim.lr_decay_start=1.5"])


def test_each_g_and_d_step_of_a_run_uses_the_scheduled_learning_rates(tmp_path, fresh_accelerate):
    cfg = load_config(
        "configs/toy_ring.yaml",
        [
            *SMALL,
            *TOY,
            f"train.out_dir={tmp_path}",
            "train.steps=4",
            "train.n_critic=2",
            "optim.d.lr=1e-3",
            "optim.g.lr=2e-3",
            "optim.lr_decay_start=0.5",
            "log.every=1",
            "log.sample_every=0",
            "checkpoint.every=0",
        ],
    )
    seen = {"d": [], "g": []}

    def lr(backend, name):
        return backend.optimizers[name].param_groups[0]["lr"]

    hooks = TrainHooks(
        before_d_step=lambda backend, batch: seen["d"].append(lr(backend, "d")),
        before_g_step=lambda backend: seen["g"].append(lr(backend, "g")),
    )
    assert train(cfg, resume="never", hooks=hooks) == 0
    factors = [1.0, 1.0, 1.0, 0.5]  # steps 0, 1 before the decay; 2: 2/2; 3: 1/2
    assert seen["g"] == pytest.approx([2e-3 * f for f in factors])
    assert seen["d"] == pytest.approx([1e-3 * f for f in factors for _ in range(2)])


@pytest.mark.parametrize("decay_start", [0.5, 1.0])
def test_a_resume_that_changes_train_steps_under_a_decay_warns_that_the_schedule_moved(
    decay_start, tmp_path, capsys, fresh_accelerate
):
    def run(steps: int) -> None:
        overrides = [*SMALL, *TOY, f"train.out_dir={tmp_path}", f"train.steps={steps}"]
        overrides += [f"optim.lr_decay_start={decay_start}", "log.sample_every=0", "checkpoint.every=0"]
        assert train(load_config("configs/toy_ring.yaml", overrides), resume="auto") == 0

    run(2)
    capsys.readouterr()
    run(4)
    out = capsys.readouterr().out
    assert "train.steps: 2 -> 4" in out
    warning = "the lr decay (optim.lr_decay_start=0.5) now falls from step 2 to 4 instead of 1 to 2"
    assert (warning in out) == (decay_start < 1.0), out
