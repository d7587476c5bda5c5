"""The loop's bookkeeping, in one process and in seconds: n_critic, per-rank noise, per-rank data.

Rank-dependent choices are checked by running the real train() as "rank R of 2" inside one process:
the Accelerator is real, only the rank and world size it reports are replaced, so the trainer's
own code decides which data and which noise rank R gets.
"""

import torch

from distgan.config import load_config
from distgan.data import build_train_stream
from distgan.distributed import build_accelerator
from distgan.trainer import train
from tests.backend_helpers import SMALL, TOY

LOOP = [*SMALL, *TOY, "log.every=1", "log.sample_every=0", "log.num_samples=4", "checkpoint.every=0"]


def toy_cfg(out_dir, *extra):
    return load_config("configs/quickstart.yaml", [*LOOP, f"train.out_dir={out_dir}", *extra])


class CountingStream:
    """A TrainStream that counts the batches the trainer takes (one per D step)."""

    def __init__(self, cfg):
        self.inner, self.taken = build_train_stream(cfg, 0, 1), 0

    def __iter__(self):
        return self

    def __next__(self):
        self.taken += 1
        return next(self.inner)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)

    def describe(self):
        return self.inner.describe()

    @property
    def stats(self):
        return self.inner.stats


def test_n_critic_d_steps_per_g_step(tmp_path, fresh_accelerate):
    cfg = toy_cfg(tmp_path / "run", "train.steps=3", "train.n_critic=4")
    stream = CountingStream(cfg)
    assert train(cfg, stream=stream) == 0
    assert stream.taken == 3 * 4


def test_critic_boost_then_n_critic(tmp_path, fresh_accelerate):
    cfg = toy_cfg(
        tmp_path / "run",
        "train.steps=4",
        "train.n_critic=2",
        "train.critic_boost_steps=1",
        "train.critic_boost_n_critic=5",
    )
    stream = CountingStream(cfg)
    assert train(cfg, stream=stream) == 0
    assert stream.taken == 5 + 2 * 3


class RankOf2:
    """A real single-process Accelerator that reports itself as rank `rank` of a world of 2."""

    def __init__(self, real, rank):
        self._real, self.process_index, self.num_processes = real, rank, 2
        self.printed, self.latents, self.critic_inputs = [], [], []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def print(self, *args, **kwargs):
        self.printed.append(" ".join(map(str, args)))

    def prepare(self, *objects):
        prepared = self._real.prepare(*objects)
        generator, discriminator = prepared[0], prepared[1]
        generator.register_forward_pre_hook(lambda m, args: self.latents.append(args[0].clone()))
        discriminator.register_forward_pre_hook(lambda m, args: self.critic_inputs.append(args[0].clone()))
        return prepared


def run_as_rank(tmp_path, rank):
    """train() as rank `rank` of 2: handed an Accelerator that says so (train's `accelerator`)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True), GradientState._reset_state(), PartialState._reset_state()
    cfg = toy_cfg(tmp_path / f"rank{rank}", "train.steps=2")
    accelerator = RankOf2(build_accelerator(cfg), rank)
    assert train(cfg, resume="never", accelerator=accelerator) == 0
    return cfg, accelerator


def test_each_rank_draws_its_own_noise_and_reads_its_own_shard(tmp_path, fresh_accelerate):
    cfg0, rank0 = run_as_rank(tmp_path, 0)
    cfg1, rank1 = run_as_rank(tmp_path, 1)
    local = cfg1.data.batch_size // 2
    # noise: the first D step's latents differ between ranks (and have the local batch size)
    assert rank0.latents[0].shape == rank1.latents[0].shape == (local, cfg1.model.latent_dim)
    assert not torch.allclose(rank0.latents[0], rank1.latents[0])
    # data: the first real batch D saw is this rank's shard of the stream
    for cfg, acc, rank in ((cfg0, rank0, 0), (cfg1, rank1, 1)):
        expected = next(build_train_stream(cfg, rank, 2)).images
        assert torch.equal(acc.critic_inputs[0][:local], expected), rank
        assert any(f"rank {rank}/2" in line for line in acc.printed), acc.printed
    # same rank, same seed: the same noise (the difference above is the rank, not chance)
    _, again = run_as_rank(tmp_path / "again", 1)
    assert torch.equal(again.latents[0], rank1.latents[0])


def test_saved_ema_is_the_warmed_up_average_of_the_generator_after_each_g_step(tmp_path, fresh_accelerate):
    from distgan.checkpoint import load_weights
    from distgan.models import build_generator

    run = tmp_path / "run"
    decay = 0.6
    cfg = toy_cfg(
        run, "train.steps=3", "checkpoint.every=1", "checkpoint.keep_last=3", f"train.ema_decay={decay}"
    )
    assert train(cfg) == 0
    torch.manual_seed(cfg.train.seed)  # the trainer's init rule: the EMA starts from G at step 0
    generator = build_generator(cfg.model, cfg.sample_shape)
    expected = {k: v.detach().double() for k, v in generator.named_parameters()}
    for step in (1, 2, 3):
        load_weights(generator, run / "checkpoints" / f"step_{step:07d}" / "generator.safetensors")
        d = min(decay, (1 + step) / (10 + step))
        expected = {
            k: d * expected[k] + (1 - d) * v.detach().double() for k, v in generator.named_parameters()
        }
    ema = build_generator(cfg.model, cfg.sample_shape)
    load_weights(ema, run / "checkpoints" / "step_0000003" / "generator_ema.safetensors")
    for key, value in ema.named_parameters():
        assert torch.allclose(value.double(), expected[key], atol=1e-6), key
    for (key, value), (_, current) in zip(ema.named_buffers(), generator.named_buffers(), strict=True):
        assert torch.equal(value, current), key  # BatchNorm statistics are copied, not averaged
    assert not torch.allclose(ema.net[0].weight, generator.net[0].weight)
