"""distgan.augment: what D sees of real and fake images (DiffAugment, ADA).

    ops.py           DiffAugment's differentiable ops with per-sample parameters, `apply` (all of them)
    geometric.py     ADA's blit and geom groups: one matrix per sample, one resampling
    color_matrix.py  ADA's colour group: one 4x4 colour matrix per sample
    filtering.py     ADA's image-space filtering and additive noise
    pipeline.py      `draw`: the parameters of one augmentation (ops on with probability p)
    ada.py           the adaptive p: `adjusted_p`, `RealSignTally`
    pipe.py          AugmentPipe: policy, p, drawing, ADA's tally and adjustment, checkpoint state

Imports torch and config only; the all-reduce of the ADA tally is the caller's (`world.sum`).
"""

from distgan.augment.ada import RealSignTally, adjusted_p
from distgan.augment.ops import AugmentParams, apply
from distgan.augment.pipe import AugmentPipe
from distgan.augment.pipeline import draw

__all__ = ["AugmentParams", "AugmentPipe", "RealSignTally", "adjusted_p", "apply", "draw"]
