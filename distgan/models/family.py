"""What a model family registers: its two builders and the model keys it reads.

A family file ends with `ARCHITECTURES.register(name, Architecture(...))`. Each builder receives
the model section and the shape of one sample ((2,) for toy points, (C, H, W) for images), never
the whole experiment. `discriminator_blocks` lists D's blocks from the image input inwards (what
`train.freeze_d` freezes first). `check` is what the config asks of the family when it is validated: keys
only some families read must keep their default elsewhere (a set value is refused, never
ignored), a conditional model must use a conditioning the family has, and the sample shape must
be one the family can make. Imports torch and the model section only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from distgan.config import ConfigError, ModelConfig
from distgan.models.base import Generator
from distgan.registry import ARCHITECTURES

SampleShape = tuple[int, ...]

# Model keys only some families read -> what the key turns on (for the message when a family lacks it).
FAMILY_OPTIONS = {
    "pack": "packing (pack > 1)",
    "latent_components": "mixture latent",
    "attention_res": "self-attention",
    "d_norm": "normalisation in D",
    "d_dropout": "dropout in D",
}


def any_shape(model: ModelConfig, shape: SampleShape) -> None:
    """The shape check of a family that makes samples of any shape (a flat output reshaped)."""


def no_blocks(discriminator: nn.Module) -> list[nn.Module]:
    """A family that names no blocks of its D: `train.freeze_d` then has nothing to freeze."""
    return []


def layer_groups(layers: nn.Sequential, starts: tuple[type, ...]) -> list[nn.Module]:
    """`layers` cut into blocks, each from one layer of a `starts` type up to the next: views that
    share the layers' parameters (the state_dict keys stay those of `layers`)."""
    blocks: list[nn.ModuleList] = []
    for layer in layers:
        if isinstance(layer, starts):
            blocks.append(nn.ModuleList())
        if blocks:
            blocks[-1].append(layer)
    return list(blocks)


def image_side(arch: str, shape: SampleShape, resolutions: tuple[int, ...]) -> int:
    """The side of the square images of `shape`; ConfigError unless the family `arch` makes them."""
    if len(shape) != 3:
        raise ConfigError(
            f"model.arch: toy 2D data (sample shape {tuple(shape)}) needs a family that makes points, "
            f"e.g. model.arch=mlp; {arch} makes images"
        )
    if shape[-1] not in resolutions:
        raise ConfigError(
            f"data.resolution: model.arch={arch} can make {list(resolutions)} px images, got {shape[-1]}"
        )
    return shape[-1]


@dataclass(frozen=True)
class Architecture:
    """One model family: G and D builders, the family-only keys it reads, its conditionings."""

    build_generator: Callable[[ModelConfig, SampleShape], Generator]
    build_discriminator: Callable[[ModelConfig, SampleShape], nn.Module]
    options: frozenset[str] = frozenset()  # keys of FAMILY_OPTIONS this family reads
    conditionings: tuple[str, ...] = ("concat",)  # model.conditioning values of a conditional model
    check_shape: Callable[[ModelConfig, SampleShape], None] = any_shape  # ConfigError if it cannot
    # D's blocks from the image input inwards, not its head (train.freeze_d freezes the first K)
    discriminator_blocks: Callable[[nn.Module], list[nn.Module]] = no_blocks

    def check(self, model: ModelConfig, shape: SampleShape) -> None:
        """Raise ConfigError naming the key when `model` asks this family for what it does not have."""
        defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
        for key, feature in FAMILY_OPTIONS.items():
            value = getattr(model, key)
            if key not in self.options and value != defaults[key]:
                users = [name for name, entry in ARCHITECTURES.items() if key in entry.options]
                raise ConfigError(
                    f"model.{key}: model.arch={model.arch} has no {feature}; valid: {defaults[key]!r} (off), "
                    f"or model.arch={' | '.join(users) or '(none registered)'}; got {value!r}"
                )
        if model.num_classes > 0 and model.conditioning not in self.conditionings:
            raise ConfigError(
                f"model.conditioning: a conditional {model.arch} (model.num_classes > 0) conditions by "
                f"{' or '.join(self.conditionings)}: set model.conditioning={self.conditionings[0]}, "
                f"got {model.conditioning!r}"
            )
        self.check_shape(model, shape)
