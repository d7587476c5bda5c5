"""distgan.augment: what D sees of real and fake images (DiffAugment, ADA).

    ops.py       differentiable ops with per-sample parameters, `apply`
    pipeline.py  `draw`: the parameters of one augmentation (ops on with probability p)
    ada.py       the adaptive p: `adjusted_p`, `RealSignTally`
    pipe.py      AugmentPipe: policy, p, drawing, ADA's tally and adjustment, checkpoint state

Imports torch and config only; the all-reduce of the ADA tally is the caller's (`world.sum`).
"""

from distgan.augment.ada import RealSignTally, adjusted_p
from distgan.augment.ops import AugmentParams, apply
from distgan.augment.pipe import AugmentPipe
from distgan.augment.pipeline import draw

__all__ = ["AugmentParams", "AugmentPipe", "RealSignTally", "adjusted_p", "apply", "draw"]
