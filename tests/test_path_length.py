"""Path-length regularization (G reg) on a tiny StyleGAN2: the update rule by hand, its interval and
weight, fixed style draws, and pl_mean through resume and rollback in the real loop.

The 1-process = N-process proof is tests/distributed/test_stylegan2_equivalence.py."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from distgan.augment import AugmentPipe
from distgan.config import load_config
from distgan.config.sections import ConfigError
from distgan.distributed import build_accelerator, build_backend
from distgan.models import build_discriminator, build_generator
from distgan.models.stylegan2 import StyleDraws
from distgan.step import PathLengthInputs, Phases, PhaseSettings
from distgan.trainer import TrainHooks, train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_STYLEGAN2 = [  # 32 px, 32/32/16/8 feature maps at 4..32 px, a 2-layer mapping network
    "model.arch=stylegan2",
    "model.channels=1",
    "model.latent_dim=16",
    "model.w_dim=16",
    "model.mapping_layers=2",
    "model.channel_base=256",
    "model.channel_max=32",
    "model.mbstd_group=4",
    "data.resolution=32",
    "data.batch_size=8",
    "objective.pl_weight=2",
]
RUN = ["log.every=1", "log.sample_every=0", "log.num_samples=4", "train.ema_decay=0", "train.ema_images=16"]


def tiny_cfg(*extra):
    return load_config(None, [*TINY_STYLEGAN2, *extra])


def build(cfg):
    """Backend (one process) and phases with D seeing the images as they are."""
    torch.manual_seed(0)
    generator = build_generator(cfg.model, cfg.sample_shape)
    backend = build_backend(
        build_accelerator(cfg), cfg, generator, build_discriminator(cfg.model, cfg.sample_shape)
    )
    augment = AugmentPipe.fixed(cfg.augment, cfg.data.resolution, 0.0)
    return backend, Phases(backend, PhaseSettings.of(cfg), augment)


def with_noise(generator, strength: float = 0.5):
    """Noise strengths start at 0; as after some training, the noise maps then change the images."""
    with torch.no_grad():
        for key, parameter in generator.named_parameters():
            if key.endswith("noise_strength"):
                parameter.fill_(strength)
    return generator


def fixed_inputs(generator, count: int, seed: int):
    """G main's latents and draws, and G reg's inputs (batch count / 2), all from one seeded RNG."""
    rng = torch.Generator().manual_seed(seed)
    latent = torch.randn(count, generator.latent_dim, generator=rng)
    draws = generator.draw(count, rng)
    pl_count = count // 2
    pl = PathLengthInputs(
        torch.randn(pl_count, generator.latent_dim, generator=rng),
        None,
        torch.randn(pl_count, 1, 32, 32, generator=rng) / 32,  # y / sqrt(H W)
        generator.draw(pl_count, rng),
    )
    return latent, draws, pl


def lengths_by_hand(generator, pl: PathLengthInputs) -> list[float]:
    """||J_w^T y|| one sample at a time: the gradient of (image * y).sum() w.r.t. that sample's
    num_ws w's; squares summed over w, averaged over the w's, square root."""
    out = []
    for n in range(pl.latent.shape[0]):
        draws = pl.draws.select(slice(n, n + 1))
        ws = generator.w_latents(pl.latent[n : n + 1], None, draws).detach().requires_grad_(True)
        image = generator.synthesis(ws, "random", draws.noise)
        (grad,) = torch.autograd.grad((image * pl.directions[n : n + 1]).sum(), ws)
        per_w = [sum(v * v for v in grad[0, layer].tolist()) for layer in range(generator.num_ws)]
        out.append(math.sqrt(sum(per_w) / generator.num_ws))
    return out


def test_the_running_mean_and_the_penalty_follow_the_rule_by_hand(fresh_accelerate):
    cfg = tiny_cfg("objective.pl_decay=0.01")
    backend, phases = build(cfg)
    generator = with_noise(backend.generator_module)
    latent, draws, pl = fixed_inputs(generator, 8, seed=3)
    lengths = lengths_by_hand(generator, pl)  # before the step: G reg sees the weights before it
    phases.path_length.load_state_dict({"pl_mean": 0.5})  # a running mean from earlier steps
    out = phases.generator_step(8, "cpu", latent, draws=draws, regularize=True, path_length_inputs=pl)
    expected_mean = 0.5 + 0.01 * (sum(lengths) / len(lengths) - 0.5)
    assert float(out["pl_mean"]) == pytest.approx(expected_mean, rel=1e-5)
    assert float(phases.path_length.value) == pytest.approx(expected_mean, rel=1e-5)
    expected_penalty = sum((x - expected_mean) ** 2 for x in lengths) / len(lengths)
    assert float(out["pl_penalty"]) == pytest.approx(expected_penalty, rel=1e-4)
    assert phases.path_length.state_dict() == {"pl_mean": float(phases.path_length.value)}


def test_g_reg_runs_on_g_steps_0_4_8_and_weighs_pl_weight_times_the_interval(fresh_accelerate):
    cfg = tiny_cfg()  # StyleGAN2's defaults: every 4 G steps, weight 2
    _, phases = build(cfg)
    assert [s for s in range(10) if phases.regularize_g(s)] == [0, 4, 8]
    _, off = build(tiny_cfg("objective.pl_weight=0"))
    assert not any(off.regularize_g(s) for s in range(10))
    # The same step with interval 4 and 1: the adversarial part is the same, the penalty weighs 4x.
    losses = {}
    for every in (4, 1):
        backend, phases = build(tiny_cfg(f"objective.pl_every={every}"))
        latent, draws, pl = fixed_inputs(backend.generator_module, 8, seed=5)
        losses[every] = phases.generator_step(
            8, "cpu", latent, draws=draws, regularize=True, path_length_inputs=pl
        )
    penalty = float(losses[1]["pl_penalty"])
    assert float(losses[4]["pl_penalty"]) == pytest.approx(penalty, rel=1e-6) and penalty > 0
    weighted = float(losses[4]["loss"].detach() - losses[1]["loss"].detach())
    assert weighted == pytest.approx((4 - 1) * 2 * penalty, rel=1e-4)


def test_given_style_draws_fix_the_training_forward_row_by_row():
    torch.manual_seed(0)
    generator = with_noise(build_generator(tiny_cfg().model, (1, 32, 32)).train())
    latent, draws, _ = fixed_inputs(generator, 4, seed=1)
    assert draws.cutoff in range(1, generator.num_ws + 1)
    images = generator(latent, draws=draws)
    assert torch.equal(images, generator(latent, draws=draws))
    # a process's rows of the global batch give that process's rows of the images
    assert torch.allclose(generator(latent[2:], draws=draws.select(slice(2, 4))), images[2:], atol=1e-5)
    assert not torch.equal(generator(latent), generator(latent))  # drawn by G itself: fresh each time
    other = generator.draw(4, torch.Generator().manual_seed(2))
    for changed in (  # each of the draws reaches the images: the second latent, the cutoff, the noise
        StyleDraws(other.mixing_latent, draws.cutoff, draws.noise),
        StyleDraws(draws.mixing_latent, 1 if draws.cutoff != 1 else 2, draws.noise),
        StyleDraws(draws.mixing_latent, draws.cutoff, other.noise),
    ):
        assert not torch.allclose(generator(latent, draws=changed), images, atol=1e-4)


def test_path_length_needs_a_mapping_network():
    with pytest.raises(ConfigError, match=r"objective\.pl_weight: .*mapping network.*'dcgan'"):
        load_config(None, ["model.arch=dcgan", "objective.pl_weight=2"])
    with pytest.raises(ConfigError, match=r"objective\.pl_decay"):
        tiny_cfg("objective.pl_decay=0")


def run_pl_cfg(out, steps, *extra):
    return tiny_cfg(*RUN, "objective.pl_every=2", f"train.out_dir={out}", f"train.steps={steps}", *extra)


def meta(run_dir, step):
    return json.loads((run_dir / "checkpoints" / f"step_{step:07d}" / "meta.json").read_text())


def test_resume_mid_run_is_bitwise_with_the_running_mean(tmp_path, fresh_accelerate):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(run_pl_cfg(straight, 3, "checkpoint.every=0")) == 0
    assert train(run_pl_cfg(split, 2, "checkpoint.every=0")) == 0
    assert train(run_pl_cfg(split, 3, "checkpoint.every=0")) == 0  # resumes at step 2: a G reg step
    assert meta(split, 2)["pl_mean"] != 0.0
    assert meta(split, 3)["pl_mean"] == meta(straight, 3)["pl_mean"] != meta(split, 2)["pl_mean"]
    for name in ("generator", "generator_ema", "discriminator"):
        a = load_file(str(straight / "checkpoints" / "step_0000003" / f"{name}.safetensors"))
        b = load_file(str(split / "checkpoints" / "step_0000003" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    records = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "pl_penalty" in r] == [1, 3]  # G steps 0 and 2
    assert all(r["pl_mean"] > 0 for r in records)  # the running mean is logged at every step


def test_a_rollback_restores_the_running_mean(tmp_path, fresh_accelerate):
    """G's weights turn NaN before G step 3 (index 2): its loss and pl_mean are NaN, the run rolls
    back to the step-2 checkpoint, and the step done again starts from that checkpoint's pl_mean."""
    out = tmp_path / "run"
    calls, logged = [], {}

    def plant_nan(backend):
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                next(backend.generator_module.parameters()).fill_(float("nan"))

    hooks = TrainHooks(before_g_step=plant_nan, on_log=lambda step, scalars: logged.update({step: scalars}))
    cfg = run_pl_cfg(out, 3, "objective.pl_every=1", "checkpoint.every=2", "train.max_rollbacks=1")
    assert train(cfg, hooks=hooks) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in events] == [("rollback", 2)]
    restored = meta(out, 2)["pl_mean"]
    again = logged[3]  # step 3 as done after the rollback
    assert math.isfinite(again["pl_mean"]) and math.isfinite(meta(out, 3)["pl_mean"])
    assert again["pl_mean"] == pytest.approx(restored + 0.01 * (again["pl_length"] - restored), rel=1e-5)
