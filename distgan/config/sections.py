"""The typed config sections: one frozen dataclass per concern, each validating its own fields.

Every field has a one-line comment with units and valid values; every check lives next to the
fields it checks (`validate`) and raises ConfigError naming the dotted key. Derived values
(`sample_shape`, `local_batch`) are computed here, once. Nothing here reads files, builds a model
or touches a device. Instances are frozen: a changed config is a new, re-validated object
(`distgan.config.override`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from distgan.errors import UserError
from distgan.files import write_atomic
from distgan.registry import ARCHITECTURES, LOSSES, PENALTIES, SOURCES, TRACKERS, Registry


class ConfigError(UserError, ValueError):
    """A user mistake in the config: the message names the key and what is valid."""


def _require_at_least(value: float, least: float, key: str, note: str = "") -> None:
    _require(value >= least, key, f"must be >= {least}{note}, got {value}")


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _require_registered(table: Registry, value: str, key: str) -> None:
    """`value` must name an entry of `table` (the built-ins and whatever a user registered)."""
    _require(value in table, key, f"unknown value {str(value)[:60]!r}; valid: {', '.join(table.names())}")


EVAL_EXTRACTORS = ("auto", "mnist_classifier", "inception", "raw")
SEED_LIMIT = 2**32  # numpy and the data shuffle take 32-bit seeds; torch's would silently wrap
# D steps per G step: the WGAN paper's critic boost uses 100. Far above that the generator barely
# trains and one G step (where stop signals and logs are looked at) takes minutes: a typo, not a plan.
MAX_N_CRITIC = 1000
MAX_PENALTY_WEIGHT = 1e4  # gp_weight / r1_weight: published values are 0.1-10; more only swamps the loss


# ModelConfig fields that only model.arch=stylegan2 reads
STYLEGAN2_ONLY = (
    "w_dim",
    "mapping_layers",
    "channel_base",
    "channel_max",
    "mbstd_group",
    "d_residual",
    "conv_clamp",
    "reduced_precision_res",
    "style_mixing",
    "w_avg_beta",
)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = (
        "dcgan"  # network family: mlp | dcgan | resnet (SNGAN/BigGAN) | stylegan2, or a registered one
    )
    channels: int = 1  # image channels: 1 (grayscale) or 3 (RGB); ignored for toy 2D data
    latent_dim: int = 100  # size of the generator's input noise vector
    num_classes: int = 0  # >0 makes G and D class-conditional (needs data.label_column)
    g_width: int = 64  # generator base width (feature maps of the last conv / first hidden layer)
    d_width: int = 64  # discriminator base width
    d_norm: Literal["batch", "layer", "none"] = "none"  # normalisation in D (WGAN-GP: layer|none)
    g_norm: Literal["batch", "none"] = "batch"  # normalisation in the mlp G (toy data: none is sharper)
    d_dropout: float = 0.0  # dropout probability in D, 0 <= p < 1
    pack: int = 1  # PacGAN: D judges this many samples jointly (mlp, dcgan; 1 = off)
    # spectral normalization (torch's parametrization) of D's, G's or both networks' conv/linear weights
    spectral_norm: Literal["none", "d", "g", "both"] = "none"
    # how class labels enter a conditional model: concat (mlp, dcgan: class maps next to D's input) |
    # projection (dcgan: projection D; resnet, required: projection D and class-conditional BatchNorm in G)
    conditioning: Literal["concat", "projection"] = "concat"
    attention_res: int = 0  # resnet: SAGAN self-attention block at this feature-map side in px (0 = off)
    # mlp, dcgan: G's N(0, I) latent becomes a mixture of this many Gaussians with fixed N(0, I) centres, so
    # separated modes need no bridges between them (DeLiGAN, BourGAN); 0 = off
    latent_components: int = 0
    latent_component_std: float = 1.0  # std of each latent mixture component (latent_components > 0)
    # stylegan2 only (the defaults are the official StyleGAN2-ADA ones):
    w_dim: int = 512  # size of the intermediate latent w (the mapping network's output)
    mapping_layers: int = 8  # depth of G's mapping network z -> w
    channel_base: int = 32768  # feature maps at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512  # most feature maps at any resolution
    mbstd_group: int = 4  # samples per minibatch-std group in D; divides D's per-process micro-batch
    d_residual: bool = True  # residual D blocks (false: plain blocks, as the official cifar config)
    conv_clamp: float = 256.0  # clamp conv outputs to +-this (guards fp16 from overflow); 0 = off
    reduced_precision_res: int = 4  # the top N resolutions of G and D follow bf16/fp16 autocast
    style_mixing: float = 0.9  # probability that a training batch mixes the w's of two latents
    w_avg_beta: float = 0.995  # decay of the running average w (the truncation trick's centre)

    def validate(self, prefix: str = "model") -> None:
        """The section's own ranges; what the family can make is its registered entry's `check`
        (ExperimentConfig.validate, which knows the sample shape)."""
        _require_registered(ARCHITECTURES, self.arch, f"{prefix}.arch")
        _require(self.channels in (1, 3), f"{prefix}.channels", f"must be 1 or 3, got {self.channels}")
        _require(self.latent_dim >= 1, f"{prefix}.latent_dim", f"must be >= 1, got {self.latent_dim}")
        _require(self.num_classes >= 0, f"{prefix}.num_classes", f"must be >= 0, got {self.num_classes}")
        _require(self.g_width >= 1, f"{prefix}.g_width", f"must be >= 1, got {self.g_width}")
        _require(self.d_width >= 1, f"{prefix}.d_width", f"must be >= 1, got {self.d_width}")
        _require(
            0.0 <= self.d_dropout < 1.0, f"{prefix}.d_dropout", f"must be in [0, 1), got {self.d_dropout}"
        )
        _require(self.pack >= 1, f"{prefix}.pack", f"must be >= 1, got {self.pack}")
        _require(
            self.latent_components >= 0,
            f"{prefix}.latent_components",
            f"must be >= 0 (0 = plain N(0, I) latent), got {self.latent_components}",
        )
        _require(
            self.latent_component_std > 0,
            f"{prefix}.latent_component_std",
            f"must be > 0, got {self.latent_component_std}",
        )
        self._validate_stylegan2(prefix)

    def check_stylegan2_run(self, resolution: int, micro_batch: int) -> None:
        """The stylegan2 rules that need the data section: the image side and D's batch."""
        sides = [2**k for k in range(5, 11)]
        _require(
            resolution in sides,
            "data.resolution",
            f"model.arch=stylegan2 makes {sides} px images, got {resolution}",
        )
        group = min(self.mbstd_group, micro_batch)
        _require(
            micro_batch % group == 0,
            "model.mbstd_group",
            f"D's minibatch-std groups of {group} must divide the {micro_batch} images D sees at once "
            f"(data.batch_size / processes / train.grad_accum); valid: a divisor of {micro_batch}",
        )

    def _validate_stylegan2(self, prefix: str) -> None:
        """The stylegan2 options' ranges, and the options stylegan2 does not have (refused, never ignored)."""
        _require(self.w_dim >= 1, f"{prefix}.w_dim", f"must be >= 1, got {self.w_dim}")
        _require(
            self.mapping_layers >= 1, f"{prefix}.mapping_layers", f"must be >= 1, got {self.mapping_layers}"
        )
        _require_at_least(self.channel_base, 1, f"{prefix}.channel_base")
        _require_at_least(self.channel_max, 1, f"{prefix}.channel_max")
        _require_at_least(self.mbstd_group, 1, f"{prefix}.mbstd_group")
        _require_at_least(self.conv_clamp, 0, f"{prefix}.conv_clamp", " (0 = off)")
        _require_at_least(
            self.reduced_precision_res, 0, f"{prefix}.reduced_precision_res", " (0 = all float32)"
        )
        _require(
            0.0 <= self.style_mixing <= 1.0,
            f"{prefix}.style_mixing",
            f"is a probability: must be in [0, 1], got {self.style_mixing}",
        )
        _require(
            0.0 <= self.w_avg_beta < 1.0, f"{prefix}.w_avg_beta", f"must be in [0, 1), got {self.w_avg_beta}"
        )
        if self.arch != "stylegan2":
            defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
            for name in STYLEGAN2_ONLY:
                _require(
                    getattr(self, name) == defaults[name],
                    f"{prefix}.{name}",
                    f"is a stylegan2 option; model.arch is {self.arch!r} (valid: model.arch=stylegan2, "
                    f"or leave {name} at its default {defaults[name]!r})",
                )
            return
        _require(
            self.g_width == 64 and self.d_width == 64,
            f"{prefix}.g_width" if self.g_width != 64 else f"{prefix}.d_width",
            "model.arch=stylegan2 takes its widths from model.channel_base and model.channel_max; "
            "leave g_width and d_width at 64",
        )
        _require(
            self.d_norm == "none" and self.d_dropout == 0.0,
            f"{prefix}.d_norm" if self.d_norm != "none" else f"{prefix}.d_dropout",
            "model.arch=stylegan2 has no normalisation and no dropout in D; valid: d_norm none, d_dropout 0",
        )
        _require(
            self.spectral_norm == "none",
            f"{prefix}.spectral_norm",
            f"model.arch=stylegan2 uses equalized learning rate, not spectral norm; valid: none, "
            f"got {self.spectral_norm!r}",
        )
        _require(
            self.num_classes == 0 or self.conditioning == "projection",
            f"{prefix}.conditioning",
            "a conditional stylegan2 (model.num_classes > 0) has a projection D (the label's mapped "
            "vector dotted with D's features): set model.conditioning=projection",
        )


@dataclass(frozen=True)
class DataConfig:
    # where the examples come from (data.path says which): embedded (the 5,000 MNIST digits shipped
    # inside) | hub | parquet | imagefolder | zip | webdataset | lmdb | prepared | stacked_mnist (three
    # embedded digits as R, G, B) | toy, or a registered source
    source: str = "embedded"
    # hub: dataset id; parquet: file, glob or directory; imagefolder: directory; zip: a .zip of
    # images; webdataset: .tar file, glob or directory; lmdb: database directory (LSUN);
    # prepared: output of `distgan.data.prepare`;
    # toy: ring8 | grid25; embedded, stacked_mnist: ignored
    path: str = ""
    name: Optional[str] = None  # hub dataset config name (e.g. a CelebA subset), if any
    split: str = "train"  # dataset split to train on
    image_column: str = "image"  # column holding the image (PIL image or encoded bytes)
    label_column: Optional[str] = None  # column holding an int class label (conditional models)
    streaming: bool = True  # stream with datasets' IterableDataset instead of downloading first
    batch_size: int = 64  # GLOBAL batch (images per D step, all processes together)
    resolution: int = 28  # output image side in pixels (dcgan: 28, 32 or 64)
    center_crop: bool = False  # crop the central square before resizing (CelebA-style)
    crop_size: int = 0  # side of the central crop in pixels, 0 = the image's short side
    num_workers: int = 0  # DataLoader worker processes per training process
    shuffle_buffer: int = 1000  # examples in the streaming shuffle buffer (0 = no shuffle)
    on_bad_example: Literal["error", "skip"] = "error"  # corrupt/invalid rows: stop or skip+count
    toy_samples: int = 100_000  # examples in one epoch of a toy 2D dataset
    mirror: bool = False  # random horizontal flip per example, decided by (seed, rank, epoch, index)
    stack_count: int = 50_000  # stacked_mnist: stacks of three embedded digits in one epoch
    stack_seed: int = 0  # stacked_mnist: seed of the draw of each stack's three digits

    def validate(self, prefix: str = "data") -> None:
        _require_registered(SOURCES, self.source, f"{prefix}.source")
        _require(self.batch_size >= 1, f"{prefix}.batch_size", f"must be >= 1, got {self.batch_size}")
        _require(self.resolution >= 4, f"{prefix}.resolution", f"must be >= 4, got {self.resolution}")
        _require(self.crop_size >= 0, f"{prefix}.crop_size", f"must be >= 0, got {self.crop_size}")
        _require(self.num_workers >= 0, f"{prefix}.num_workers", f"must be >= 0, got {self.num_workers}")
        _require(
            self.shuffle_buffer >= 0, f"{prefix}.shuffle_buffer", f"must be >= 0, got {self.shuffle_buffer}"
        )
        _require(self.toy_samples >= 1, f"{prefix}.toy_samples", f"must be >= 1, got {self.toy_samples}")
        _require(self.stack_count >= 1, f"{prefix}.stack_count", f"must be >= 1, got {self.stack_count}")
        _require(
            not (self.mirror and self.source == "toy"),
            f"{prefix}.mirror",
            "flips images; toy 2D data (data.source=toy) has none: set data.mirror=false",
        )
        SOURCES.get(self.source).check(self, prefix)  # what the source needs (data.path, ...)

    @property
    def is_toy(self) -> bool:
        return self.source == "toy"


@dataclass(frozen=True)
class ObjectiveConfig:
    # adversarial loss: nonsaturating | wasserstein | hinge, or a registered one; the older name
    # wgan-gp is still accepted and means loss wasserstein with penalty gp
    loss: str = "nonsaturating"
    # penalty on D's input gradient: none | gp (WGAN-GP, weight gp_weight) | r1 (weight r1_weight), or a
    # registered one
    penalty: str = "none"
    gp_weight: float = 10.0  # lambda of the gradient penalty (objective.penalty=gp), 0 = off
    r1_weight: float = 0.0  # gamma of the R1 penalty on real data; > 0 adds R1 to any loss and penalty
    real_label: float = 1.0  # BCE target for real images; 0.9 = one-sided label smoothing
    r1_every: int = 1  # lazy R1: the penalty on every N-th D step only, weighted r1_weight * N (StyleGAN2)
    # path-length regularization of G (model.arch=stylegan2; StyleGAN2 uses 2), 0 = off
    pl_weight: float = 0.0
    pl_every: int = 4  # lazy path length: on every N-th G step only, weighted pl_weight * N (StyleGAN2: 4)
    pl_batch_shrink: int = 2  # the path-length batch is the G batch divided by this (StyleGAN2: 2), >= 1
    pl_decay: float = 0.01  # share of each batch in the running mean path length, in (0, 1] (StyleGAN2: 0.01)

    @property
    def penalties(self) -> tuple[str, ...]:
        """The penalties D's loss adds, in this order: objective.penalty (gp only with gp_weight > 0),
        then R1 whenever r1_weight > 0 (R1 joins any loss and any other penalty)."""
        off = self.penalty in ("none", "r1") or (self.penalty == "gp" and self.gp_weight == 0)
        return (() if off else (self.penalty,)) + (("r1",) if self.r1_weight > 0 else ())

    @property
    def has_penalty(self) -> bool:
        """Does D's loss take input gradients (a double backward through D)?"""
        return bool(self.penalties)

    def validate(self, prefix: str = "objective") -> None:
        _require_registered(LOSSES, self.loss, f"{prefix}.loss")
        _require_registered(PENALTIES, self.penalty, f"{prefix}.penalty")
        for name in ("gp_weight", "r1_weight"):
            value = getattr(self, name)
            _require(
                0 <= value <= MAX_PENALTY_WEIGHT,
                f"{prefix}.{name}",
                f"must be in [0, {MAX_PENALTY_WEIGHT:g}], got {value}",
            )
        _require(
            self.penalty != "r1" or self.r1_weight > 0,
            f"{prefix}.r1_weight",
            f"objective.penalty=r1 weighs R1 by objective.r1_weight: set it > 0 (e.g. 1), got {self.r1_weight}",
        )
        _require(
            0.5 < self.real_label <= 1.0,
            f"{prefix}.real_label",
            f"must be in (0.5, 1], got {self.real_label}",
        )
        _require(
            1 <= self.r1_every <= MAX_N_CRITIC,
            f"{prefix}.r1_every",
            f"must be in [1, {MAX_N_CRITIC}] (D steps between R1 penalties; 1 = every step), got {self.r1_every}",
        )
        _require(
            0 <= self.pl_weight <= MAX_PENALTY_WEIGHT,
            f"{prefix}.pl_weight",
            f"must be in [0, {MAX_PENALTY_WEIGHT:g}], got {self.pl_weight}",
        )
        _require(
            1 <= self.pl_every <= MAX_N_CRITIC,
            f"{prefix}.pl_every",
            f"must be in [1, {MAX_N_CRITIC}] (G steps between path-length penalties), got {self.pl_every}",
        )
        _require_at_least(self.pl_batch_shrink, 1, f"{prefix}.pl_batch_shrink")
        _require(0 < self.pl_decay <= 1, f"{prefix}.pl_decay", f"must be in (0, 1], got {self.pl_decay}")


@dataclass(frozen=True)
class AdamConfig:
    lr: float = 2e-4  # learning rate
    beta1: float = 0.5  # Adam beta1 (WGAN-GP: 0.0)
    beta2: float = 0.999  # Adam beta2 (WGAN-GP: 0.9)
    weight_decay: float = 0.0  # decoupled weight decay (AdamW), >= 0

    def validate(self, prefix: str) -> None:
        _require(
            0 < self.lr <= 1, f"{prefix}.lr", f"must be in (0, 1] (Adam: typically 1e-4..1e-3), got {self.lr}"
        )
        _require(0.0 <= self.beta1 < 1.0, f"{prefix}.beta1", f"must be in [0, 1), got {self.beta1}")
        _require(0.0 <= self.beta2 < 1.0, f"{prefix}.beta2", f"must be in [0, 1), got {self.beta2}")
        _require(self.weight_decay >= 0, f"{prefix}.weight_decay", f"must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class OptimConfig:
    d: AdamConfig = field(default_factory=AdamConfig)  # discriminator / critic optimizer
    g: AdamConfig = field(default_factory=AdamConfig)  # generator optimizer
    grad_clip: float = 0.0  # max global grad norm for D and G, 0 = no clipping
    implementation: Literal["auto", "foreach", "fused", "plain"] = "auto"  # Adam kernel
    # fraction of train.steps after which both lrs fall linearly towards 0 at the last step (1 = constant)
    lr_decay_start: float = 1.0

    def learning_rates(self, scale: float = 1.0) -> dict[str, float]:
        """{"g": ..., "d": ...}: the configured learning rates times `scale` (rollbacks, decay)."""
        return {"g": self.g.lr * scale, "d": self.d.lr * scale}

    def validate(self, prefix: str = "optim") -> None:
        self.d.validate(f"{prefix}.d")
        self.g.validate(f"{prefix}.g")
        _require(self.grad_clip >= 0, f"{prefix}.grad_clip", f"must be >= 0, got {self.grad_clip}")
        _require(
            0.0 <= self.lr_decay_start <= 1.0,
            f"{prefix}.lr_decay_start",
            f"must be in [0, 1], got {self.lr_decay_start}",
        )

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of both lrs for G step `step` (0-based) of `total`: 1, then linear to 1/remaining."""
        start = self.lr_decay_start * total
        if step < start or total <= start:
            return 1.0
        return (total - step) / (total - start)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # generator steps to train for
    out_dir: str = "runs/default"  # run directory (config, metrics, samples, checkpoints)
    seed: int = 0  # global seed: model init, data order, per-process latent noise
    n_critic: int = 1  # D steps per G step (WGAN-GP: 5)
    critic_boost_steps: int = 0  # first G steps that use critic_boost_n_critic D steps (0 = off)
    critic_boost_n_critic: int = 100  # D steps per G step during the boost (WGAN paper: 100)
    ema_decay: float = 0.0  # generator EMA decay per G step, 0 = no EMA (typical 0.999)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # autocast dtype (fp16 needs a GPU)
    compile: bool = False  # torch.compile G and D
    channels_last: bool = False  # channels_last memory format for conv models
    detect_anomaly: bool = False  # torch.autograd anomaly detection (slow; on in --debug)
    on_nonfinite: Literal["stop", "rollback"] = "rollback"  # NaN/inf loss or weights: exit 3, or roll back
    rollback_lr_factor: float = 0.5  # both learning rates are multiplied by this at each rollback, in (0, 1]
    max_rollbacks: int = 3  # give up (exit 3) after this many rollbacks in one run
    # generator EMA half-life in real images seen (all processes), 0 = off; excludes ema_decay
    ema_images: float = 0.0
    ema_rampup: float = 0.05  # with ema_images: half-life <= this x images seen so far (StyleGAN2), 0 = off
    grad_accum: int = 1  # micro-batches per D and per G step (one all-reduce per update), >= 1
    # seed a fresh run's G, D and EMA weights: run dir, checkpoint dir, export folder or Hub id owner/name
    init_from: Optional[str] = None
    # FreezeD: first K D blocks (nearest the image) keep their weights; 0 = off; fine with DDP, ZeRO, penalties
    freeze_d: int = 0

    def validate(self, prefix: str = "train") -> None:
        _require(self.steps >= 1, f"{prefix}.steps", f"must be >= 1, got {self.steps}")
        _require(0 <= self.seed < SEED_LIMIT, f"{prefix}.seed", f"must be in [0, 2**32 - 1], got {self.seed}")
        _require(bool(self.out_dir), f"{prefix}.out_dir", "must be a non-empty path")
        _require(
            1 <= self.n_critic <= MAX_N_CRITIC,
            f"{prefix}.n_critic",
            f"must be in [1, {MAX_N_CRITIC}], got {self.n_critic}",
        )
        _require(
            self.critic_boost_steps >= 0,
            f"{prefix}.critic_boost_steps",
            f"must be >= 0, got {self.critic_boost_steps}",
        )
        _require(
            1 <= self.critic_boost_n_critic <= MAX_N_CRITIC,
            f"{prefix}.critic_boost_n_critic",
            f"must be in [1, {MAX_N_CRITIC}], got {self.critic_boost_n_critic}",
        )
        _require(
            0.0 <= self.ema_decay < 1.0, f"{prefix}.ema_decay", f"must be in [0, 1), got {self.ema_decay}"
        )
        _require(
            0.0 < self.rollback_lr_factor <= 1.0,
            f"{prefix}.rollback_lr_factor",
            f"must be in (0, 1], got {self.rollback_lr_factor}",
        )
        _require(
            self.max_rollbacks >= 0, f"{prefix}.max_rollbacks", f"must be >= 0, got {self.max_rollbacks}"
        )
        _require(self.ema_images >= 0, f"{prefix}.ema_images", f"must be >= 0, got {self.ema_images}")
        _require(
            not (self.ema_images and self.ema_decay),
            f"{prefix}.ema_images",
            f"set only one of train.ema_decay (per G step, got {self.ema_decay}) and train.ema_images "
            f"(half-life in images, got {self.ema_images}); set the other to 0",
        )
        _require(self.ema_rampup >= 0, f"{prefix}.ema_rampup", f"must be >= 0, got {self.ema_rampup}")
        _require(self.grad_accum >= 1, f"{prefix}.grad_accum", f"must be >= 1, got {self.grad_accum}")
        _require(
            self.init_from is None or bool(self.init_from.strip()),
            f"{prefix}.init_from",
            "must be a run directory, a checkpoint directory, an exported folder or a Hub id owner/name "
            "(null = train from scratch), got an empty string",
        )
        _require(self.freeze_d >= 0, f"{prefix}.freeze_d", f"must be >= 0 (0 = off), got {self.freeze_d}")

    @property
    def ema_enabled(self) -> bool:
        """A generator EMA is kept (by steps or by images)."""
        return bool(self.ema_decay or self.ema_images)

    def n_critic_at(self, g_step: int) -> int:
        """D steps to run before generator step `g_step` (0-based)."""
        return self.critic_boost_n_critic if g_step < self.critic_boost_steps else self.n_critic


@dataclass(frozen=True)
class WandbConfig:
    mode: Literal["disabled", "offline", "online"] = "disabled"  # online needs network
    project: str = "distgan"  # wandb project
    entity: Optional[str] = None  # wandb team/user, None = the default entity
    name: Optional[str] = None  # run display name, None = the run directory's name
    tags: list[str] = field(default_factory=list)  # run tags
    fallback_to_offline: bool = False  # online unreachable: go offline instead of failing


@dataclass(frozen=True)
class LogConfig:
    every: int = 50  # G steps between console/metrics.jsonl lines
    sample_every: int = 500  # G steps between fixed-noise sample grids (0 = only at the end)
    num_samples: int = 64  # images in a sample grid (a square number reads best)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    # trackers to feed (wandb only when log.wandb.mode is not disabled); console and metrics.jsonl always
    trackers: list[str] = field(default_factory=lambda: ["wandb"])

    def validate(self, prefix: str = "log") -> None:
        _require(self.every >= 1, f"{prefix}.every", f"must be >= 1, got {self.every}")
        _require(self.sample_every >= 0, f"{prefix}.sample_every", f"must be >= 0, got {self.sample_every}")
        _require(self.num_samples >= 1, f"{prefix}.num_samples", f"must be >= 1, got {self.num_samples}")
        for i, name in enumerate(self.trackers):
            _require(
                name in TRACKERS and name not in self.trackers[:i],
                f"{prefix}.trackers[{i}]",
                f"must be one of {list(TRACKERS.names())}, each at most once; got {name!r}",
            )
        _require(
            self.wandb.mode == "disabled" or "wandb" in self.trackers,
            f"{prefix}.wandb.mode",
            f"is {self.wandb.mode!r} but {prefix}.trackers {list(self.trackers)} has no wandb: add wandb to "
            f"{prefix}.trackers, or set {prefix}.wandb.mode=disabled",
        )


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 500  # G steps between checkpoints (0 = only at the end and on preemption)
    keep_last: int = 3  # complete checkpoints kept on disk (older ones are deleted)

    def validate(self, prefix: str = "checkpoint") -> None:
        _require(self.every >= 0, f"{prefix}.every", f"must be >= 0, got {self.every}")
        _require(self.keep_last >= 1, f"{prefix}.keep_last", f"must be >= 1, got {self.keep_last}")


@dataclass(frozen=True)
class DistributedConfig:
    # how G and D are wrapped across processes; auto: DeepSpeed when accelerate launch asks for it, else ddp
    backend: Literal["auto", "ddp", "deepspeed"] = "auto"
    # DeepSpeed ZeRO stage: 1 or 2; null: the launcher's --zero_stage, else the DeepSpeed JSON's, else 2
    zero_stage: Optional[int] = None
    deepspeed_config: Optional[str] = None  # optional DeepSpeed JSON merged over the defaults
    sync_batchnorm: bool = False  # convert BatchNorm to SyncBatchNorm (GPU only)
    timeout_s: int = 600  # process-group timeout: a dead rank ends the job after this long
    stop_check_s: float = 10.0  # a stop signal is acted on within about this many seconds, > 0
    # gradient compression of DDP's all-reduce (torch's communication hooks), for G and D alike:
    # none | fp16 | bf16 (NCCL only) | powersgd (low-rank, with error feedback); ddp backend only
    comm_hook: Literal["none", "fp16", "bf16", "powersgd"] = "none"
    powersgd_rank: int = 4  # powersgd: rank of the gradient approximation (higher: closer, more traffic)
    powersgd_warmup: int = 100  # powersgd: the first optimizer steps of each network use plain all-reduce

    def validate(self, prefix: str = "distributed") -> None:
        _require(
            self.zero_stage in (None, 1, 2),
            f"{prefix}.zero_stage",
            f"must be 1, 2 or null, got {self.zero_stage}",
        )
        _require_at_least(self.timeout_s, 1, f"{prefix}.timeout_s")
        _require_at_least(self.powersgd_rank, 1, f"{prefix}.powersgd_rank")
        note = " (torch's PowerSGD starts after a plain all-reduce)"
        _require_at_least(self.powersgd_warmup, 2, f"{prefix}.powersgd_warmup", note)
        _require(
            self.comm_hook == "none" or self.backend != "deepspeed",
            f"{prefix}.comm_hook",
            f"DeepSpeed reduces gradients itself and takes no DDP communication hook; valid with "
            f"distributed.backend=deepspeed: none, got {self.comm_hook!r}",
        )
        _require(
            0 < self.stop_check_s < float("inf"),
            f"{prefix}.stop_check_s",
            f"must be a positive number of seconds, got {self.stop_check_s}",
        )
        if self.deepspeed_config is not None:
            _require(
                Path(self.deepspeed_config).is_file(),
                f"{prefix}.deepspeed_config",
                f"file not found: {self.deepspeed_config}",
            )


@dataclass(frozen=True)
class EvalConfig:
    every: int = 0  # G steps between evaluations during training (0 = off)
    # metrics of each evaluation: names registered in distgan.registry.METRICS (--help-config lists them)
    metrics: list[str] = field(default_factory=lambda: ["fd", "kid", "precision_recall"])
    num: int = 1000  # generated samples per evaluation
    # the real side: "" = a random sample of eval.num rows | N rows | full (the whole split, streamed
    # once) | FILE.npz with mu and sigma (pytorch-fid / clean-fid layout; FD and IS only)
    reference: Union[int, str] = ""
    extractor: str = "auto"  # feature extractor: auto | mnist_classifier | inception | raw
    inception_weights: Optional[str] = None  # FID Inception TorchScript file, or auto (distgan[fid])
    # how images reach Inception's 299 px: legacy (inside the network, as StyleGAN2-ADA) | clean
    # (clean-fid's antialiased bicubic resize; needs eval.inception_weights=PATH)
    resize: Literal["legacy", "clean"] = "legacy"
    reference_dir: str = ""  # cache of real references (features, stats); "" = ~/.cache/distgan/references
    reference_seed: int = 0  # seed of the random sample of real examples the metrics compare against

    def reference_count(self) -> int | None:
        """Real rows the reference holds: eval.num by default, None for the whole split (full); a
        .npz reference holds statistics, no rows (0)."""
        reference = str(self.reference)
        if reference == "":
            return self.num
        if reference == "full":
            return None
        if reference.endswith(".npz"):
            return 0
        return int(reference)

    def validate(self, prefix: str = "eval") -> None:
        _require(self.every >= 0, f"{prefix}.every", f"must be >= 0, got {self.every}")
        _require(self.num >= 2, f"{prefix}.num", f"must be >= 2, got {self.num}")
        from distgan.registry import METRICS  # names registered by extensions count too

        for i, name in enumerate(self.metrics):
            _require(
                name in METRICS, f"{prefix}.metrics[{i}]", f"unknown metric {name!r}; valid: {list(METRICS)}"
            )
        ref = str(self.reference)
        _require(
            ref in ("", "full") or ref.endswith(".npz") or (ref.isdigit() and int(ref) >= 2),
            f"{prefix}.reference",
            f"must be empty (eval.num rows), full, a count >= 2 or a FILE.npz, got {ref[:60]!r}",
        )
        _require(
            self.extractor in EVAL_EXTRACTORS,
            f"{prefix}.extractor",
            f"must be one of {list(EVAL_EXTRACTORS)}, got {self.extractor!r}",
        )
        _require(
            self.reference_seed >= 0, f"{prefix}.reference_seed", f"must be >= 0, got {self.reference_seed}"
        )


# distgan.augment: DiffAugment's ops, then ADA's groups (Karras et al. 2020, appendix B)
AUGMENT_OPS = ("xflip", "translation", "color", "cutout", "blit", "geom", "color_matrix", "filter", "noise")
AUGMENT_DEFAULT_OPS = ("translation", "color", "cutout")  # DiffAugment's choice
# ADA's pipelines by the letters of its groups: b(lit) g(eom) c(olor), f(ilter) n(oise) c(utout)
AUGMENT_PIPES = {
    "bgc": ("blit", "geom", "color_matrix"),
    "bgcfnc": ("blit", "geom", "color_matrix", "filter", "noise", "cutout"),
}


@dataclass(frozen=True)
class AugmentConfig:
    # what D sees: none | diffaugment (every op on every image) | ada (each op with probability p)
    policy: Literal["none", "diffaugment", "ada"] = "none"
    # ADA's groups by letter: bgc (blit, geom, color_matrix; ADA's default) | bgcfnc (+ filter, noise,
    # cutout) | none (augment.ops); sets the ops itself, so give it or augment.ops, not both
    pipe: Literal["none", "bgc", "bgcfnc"] = "none"
    # of AUGMENT_OPS; null: augment.pipe's groups, or translation, color, cutout (DiffAugment)
    ops: Optional[list[str]] = None
    translation: float = 0.125  # largest integer shift as a fraction of the image side (both papers: 1/8)
    cutout: float = 0.5  # side of the cut-out square as a fraction of the image side (DiffAugment: 1/2)
    target: float = 0.6  # ada: the r_t = E[sign(D(real))] that p is steered towards, in (0, 1)
    interval: int = 4  # ada: G steps between adjustments of p (each one all-reduce)
    speed_images: int = 500_000  # ada: real images over which p can move from 0 to 1
    p_start: float = 0.0  # ada: p at step 0, in [0, 1]

    @property
    def active_ops(self) -> tuple[str, ...]:
        """The ops D's inputs go through: augment.ops, else augment.pipe's, else DiffAugment's."""
        if self.ops is not None:
            return tuple(self.ops)
        return AUGMENT_PIPES.get(self.pipe, AUGMENT_DEFAULT_OPS)

    def validate(self, prefix: str = "augment") -> None:
        _require(
            self.pipe == "none" or self.ops is None,
            f"{prefix}.pipe",
            f"pipe={self.pipe} names the ops itself ({', '.join(AUGMENT_PIPES.get(self.pipe, ()))}); "
            f"give augment.pipe or augment.ops={self.ops}, not both",
        )
        for i, name in enumerate(self.ops or ()):
            _require(
                name in AUGMENT_OPS, f"{prefix}.ops[{i}]", f"unknown op {name!r}; valid: {list(AUGMENT_OPS)}"
            )
        _require(
            self.policy == "none" or bool(self.active_ops),
            f"{prefix}.ops",
            f"augment.policy={self.policy} needs at least one op; valid: {list(AUGMENT_OPS)}",
        )
        _require(
            not {"xflip", "blit"} <= set(self.active_ops),
            f"{prefix}.ops",
            "blit already mirrors images left-right; drop xflip (both would flip twice)",
        )
        _require(
            0 <= self.translation <= 0.5,
            f"{prefix}.translation",
            f"must be in [0, 0.5], got {self.translation}",
        )
        _require(0 < self.cutout <= 1, f"{prefix}.cutout", f"must be in (0, 1], got {self.cutout}")
        _require(0 < self.target < 1, f"{prefix}.target", f"must be in (0, 1), got {self.target}")
        _require(self.interval >= 1, f"{prefix}.interval", f"must be >= 1, got {self.interval}")
        _require(self.speed_images >= 1, f"{prefix}.speed_images", f"must be >= 1, got {self.speed_images}")
        _require(0 <= self.p_start <= 1, f"{prefix}.p_start", f"must be in [0, 1], got {self.p_start}")


@dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self, world_size: int = 1) -> ExperimentConfig:
        """Check every section, then the rules that span sections."""
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        model, data, objective = self.model, self.data, self.objective
        # What the family can make and which of its options it has: the registered entry knows.
        ARCHITECTURES.get(model.arch).check(model, self.sample_shape)
        if "gp" in objective.penalties:
            # The penalty is per sample; BatchNorm couples samples and breaks it (WGAN-GP, sec. 4).
            _require(
                model.d_norm != "batch",
                "model.d_norm",
                "objective.penalty=gp needs a critic without BatchNorm: use 'layer' or 'none'",
            )
        if model.num_classes > 0:
            _require(
                data.label_column is not None or SOURCES.get(data.source).labelled,
                "data.label_column",
                "a conditional model (model.num_classes > 0) needs data.label_column",
            )
        channels = SOURCES.get(data.source).channels
        _require(
            channels in (None, model.channels),
            "model.channels",
            f"data.source={data.source} has {channels}-channel images: set model.channels={channels}",
        )
        _require(
            self.augment.policy == "none" or not data.is_toy,
            "augment.policy",
            f"augments images; toy 2D data (data.source=toy) has none: use 'none', got {self.augment.policy!r}",
        )
        local = self.local_batch(world_size)
        _require(
            local % model.pack == 0,
            "model.pack",
            f"D packs {model.pack} samples, so the per-process batch {local} (data.batch_size / "
            f"{world_size} processes) must be divisible by it; valid: a divisor of {local}",
        )
        accum = self.train.grad_accum
        _require(
            local % accum == 0 and (local // accum) % model.pack == 0,
            "train.grad_accum",
            f"splits the per-process batch {local} (data.batch_size / {world_size} processes) into "
            f"{accum} micro-batches; valid: a divisor of {local} leaving a multiple of model.pack="
            f"{model.pack} per micro-batch",
        )
        if model.arch == "stylegan2" and not data.is_toy:
            model.check_stylegan2_run(data.resolution, local // accum)
        if objective.pl_weight > 0:
            # The penalty differentiates the images w.r.t. the mapped latents w: a mapping network.
            _require(
                model.arch == "stylegan2",
                "objective.pl_weight",
                f"path-length regularization needs a generator with a mapping network (model.arch="
                f"stylegan2); model.arch is {model.arch!r}: set objective.pl_weight=0",
            )
            _require(
                local >= objective.pl_batch_shrink,
                "objective.pl_batch_shrink",
                f"divides the per-process batch {local} (data.batch_size / {world_size} processes) into "
                f"the path-length batch; valid: 1 to {local}",
            )
        return self

    def local_batch(self, world_size: int) -> int:
        """Images per process per D step: the global data.batch_size split evenly over processes."""
        _require(world_size >= 1, "world_size", f"must be >= 1, got {world_size}")
        _require(
            self.data.batch_size % world_size == 0,
            "data.batch_size",
            f"the global batch {self.data.batch_size} must be divisible by the number of processes "
            f"({world_size}); valid: a multiple of {world_size}",
        )
        return self.data.batch_size // world_size

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: (2,) for toy 2D data, else (channels, resolution, resolution)."""
        if self.data.is_toy:
            return (2,)
        return (self.model.channels, self.data.resolution, self.data.resolution)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Short stable hash of the resolved config (recorded in checkpoints)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save_yaml(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
