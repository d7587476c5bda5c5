"""Pure GAN loss functions and the per-phase layer the trainer calls.

Two layers:
- math on discriminator outputs (`nonsaturating_d`, `wasserstein_d`, `hinge_d`, ...) and the
  input-gradient regularisers (`gradient_penalty`, `r1_penalty`), registered by name:
  `objective.loss` in `distgan.registry.LOSSES` (an `AdversarialLoss`: D term and G term),
  `objective.penalty` in `PENALTIES` (a `Penalty`); a new one is one file that registers it;
- path-length regularization of G (`path_lengths`, `updated_pl_mean`, `path_length_terms`);
- phases (`discriminator_losses`, `generator_losses`) returning a dict of named tensors whose
  "loss" entry the trainer backpropagates ONCE.
No optimizers, no accelerator, no logging, no `.item()` here: every value stays on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distgan.config import ObjectiveConfig
from distgan.registry import LOSSES, PENALTIES

DiscriminatorFn = Callable[..., torch.Tensor]  # discriminator(x, labels) -> (N,) logits / scores


# ---------------------------------------------------------------- adversarial terms


def nonsaturating_d(d_real: torch.Tensor, d_fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """BCE-with-logits; `real_label` < 1 is one-sided label smoothing (fake target stays 0)."""
    real_target = torch.full_like(d_real, real_label)
    return F.binary_cross_entropy_with_logits(d_real, real_target) + F.binary_cross_entropy_with_logits(
        d_fake, torch.zeros_like(d_fake)
    )


def nonsaturating_g(d_fake: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)) (Goodfellow et al. 2014, the non-saturating form)."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def wasserstein_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein D loss E[D(fake)] - E[D(real)] (minimised)."""
    return d_fake.mean() - d_real.mean()


def wasserstein_g(d_fake: torch.Tensor) -> torch.Tensor:
    return -d_fake.mean()


def hinge_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def hinge_g(d_fake: torch.Tensor) -> torch.Tensor:
    return -d_fake.mean()


@dataclass(frozen=True)
class AdversarialLoss:
    """An `objective.loss`: D's term of (d_real, d_fake, objective section) and G's term of d_fake."""

    discriminator: Callable[[torch.Tensor, torch.Tensor, ObjectiveConfig], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]


LOSSES.register(
    "nonsaturating",
    AdversarialLoss(lambda real, fake, obj: nonsaturating_d(real, fake, obj.real_label), nonsaturating_g),
)
LOSSES.register(
    "wasserstein", AdversarialLoss(lambda real, fake, obj: wasserstein_d(real, fake), wasserstein_g)
)
LOSSES.register("hinge", AdversarialLoss(lambda real, fake, obj: hinge_d(real, fake), hinge_g))


# ---------------------------------------------------------------- input-gradient regularisers


def _input_gradients(
    discriminator: DiscriminatorFn,
    x: torch.Tensor,
    labels: torch.Tensor | None,
    loss_scale: float | torch.Tensor | None,
) -> torch.Tensor:
    """d discriminator(x).sum() / dx with a graph (for double backward), AMP-aware.

    Under fp16 the discriminator output is multiplied by the loss scale before autograd.grad so
    small gradients do not underflow, and the result is unscaled afterwards (PyTorch AMP
    recipe for gradient penalties). An inf here makes the loss inf, and the GradScaler then
    skips the optimizer step.
    """
    return _scaled_gradient(discriminator(x, labels).float().sum(), x, loss_scale)


def _scaled_gradient(
    total: torch.Tensor, wrt: torch.Tensor, loss_scale: float | torch.Tensor | None
) -> torch.Tensor:
    """d total / d wrt with a graph (for double backward); under fp16 taken of total x loss_scale
    and unscaled after, so small gradients do not underflow."""
    if loss_scale is not None:
        total = total * loss_scale
    (grads,) = torch.autograd.grad(total, wrt, create_graph=True)
    grads = grads.float()
    if loss_scale is not None:
        grads = grads / loss_scale
    return grads


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """x_hat = alpha * real + (1 - alpha) * fake, one alpha per sample, requiring grad."""
    alpha = alpha.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    return (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)


def gradient_penalty(
    discriminator: DiscriminatorFn,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    alpha: torch.Tensor | None = None,
    loss_scale: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] on interpolates (Gulrajani et al. 2017).

    Returns (penalty, mean gradient norm). `alpha` ~ U[0, 1] per sample when not given.
    The gradient is taken w.r.t. the INPUTS, so it is correct under DDP with one backward.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device)
    x_hat = interpolate(real, fake, alpha)
    grads = _input_gradients(discriminator, x_hat, labels, loss_scale)
    norms = grads.flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean(), norms.mean().detach()


def r1_penalty(
    discriminator: DiscriminatorFn,
    real: torch.Tensor,
    labels: torch.Tensor | None = None,
    loss_scale: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """R1 = E[||grad_x D(x_real)||^2] (Mescheder et al. 2018); the caller weights it by gamma/2."""
    x = real.detach().requires_grad_(True)
    grads = _input_gradients(discriminator, x, labels, loss_scale)
    return grads.flatten(1).pow(2).sum(1).mean()


# ---------------------------------------------------------------- penalties by name


@dataclass(frozen=True)
class PenaltyInputs:
    """What a penalty may look at: D (as the penalty sees it), the batches, the AMP loss scale."""

    discriminator: DiscriminatorFn
    real: torch.Tensor
    fake: torch.Tensor
    labels: torch.Tensor | None
    alpha: torch.Tensor | None  # per-sample interpolation weights (gp), drawn when None
    loss_scale: float | torch.Tensor | None


@dataclass(frozen=True)
class Penalty:
    """An `objective.penalty`: `term(objective, inputs)` returns named device tensors, "loss" the
    weighted term added to D's loss. A `lazy` penalty runs only on the D steps the caller marks
    due (objective.r1_every) and weighs itself accordingly."""

    term: Callable[[ObjectiveConfig, PenaltyInputs], dict[str, torch.Tensor]]
    lazy: bool = False


def no_penalty(objective: ObjectiveConfig, inputs: PenaltyInputs) -> dict[str, torch.Tensor]:
    return {}


def weighted_gradient_penalty(objective: ObjectiveConfig, inputs: PenaltyInputs) -> dict[str, torch.Tensor]:
    penalty, grad_norm = gradient_penalty(
        inputs.discriminator,
        inputs.real,
        inputs.fake,
        inputs.labels,
        alpha=inputs.alpha,
        loss_scale=inputs.loss_scale,
    )
    return {"loss": objective.gp_weight * penalty, "gp": penalty.detach(), "gp_grad_norm": grad_norm}


def weighted_r1(objective: ObjectiveConfig, inputs: PenaltyInputs) -> dict[str, torch.Tensor]:
    """gamma/2 * R1, times objective.r1_every: lazy R1 (StyleGAN2) keeps its average strength."""
    r1 = r1_penalty(inputs.discriminator, inputs.real, inputs.labels, inputs.loss_scale)
    return {"loss": 0.5 * objective.r1_weight * r1 * objective.r1_every, "r1": r1.detach()}


PENALTIES.register("none", Penalty(no_penalty))
PENALTIES.register("gp", Penalty(weighted_gradient_penalty))
PENALTIES.register("r1", Penalty(weighted_r1, lazy=True))


# ---------------------------------------------------------------- path-length regularization (G)


def path_length_directions(images: torch.Tensor) -> torch.Tensor:
    """y ~ N(0, I) / sqrt(H W) per image: a random direction in image space whose projection
    (images * y).sum() does not grow with the resolution."""
    return torch.randn_like(images, dtype=torch.float32) / (images.shape[2] * images.shape[3]) ** 0.5


def path_lengths(
    images: torch.Tensor,
    ws: torch.Tensor,
    directions: torch.Tensor,
    loss_scale: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """||J_w^T y||_2 per sample (Karras et al. 2020, eq. 4): the gradient of (images * y).sum() with
    respect to the w's (N, num_ws, w_dim), its squares summed over w and averaged over the num_ws
    copies, square-rooted. With a graph, for the double backward; fp16: scaled as the R1 gradient."""
    grads = _scaled_gradient((images.float() * directions).sum(), ws, loss_scale)
    return grads.square().sum(2).mean(1).sqrt()


def updated_pl_mean(pl_mean: torch.Tensor, batch_mean: torch.Tensor, decay: float) -> torch.Tensor:
    """The running mean path length a after one batch: a + decay * (batch mean - a)."""
    return pl_mean.lerp(batch_mean.detach().to(pl_mean.dtype), decay)


def path_length_terms(
    objective: ObjectiveConfig, lengths: torch.Tensor, pl_mean: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The penalty E[(||J_w^T y|| - a)^2] weighted pl_weight * pl_every (lazy, as lazy R1), with the
    running mean a taken as a constant: it is the target the lengths are pulled towards, and its own
    dependence on this batch (decay x the batch mean) would make the gradient depend on how the
    batch is split over processes."""
    penalty = (lengths - pl_mean.detach()).square().mean()
    return {
        "loss": penalty * objective.pl_weight * objective.pl_every,
        "pl_penalty": penalty.detach(),
        "pl_length": lengths.detach().mean(),
        "pl_mean": pl_mean.detach().clone(),
    }


# ---------------------------------------------------------------- phases


def discriminator_losses(
    objective: ObjectiveConfig,
    d_real: torch.Tensor,
    d_fake: torch.Tensor,
    penalty_discriminator: DiscriminatorFn,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    alpha: torch.Tensor | None = None,
    loss_scale: float | torch.Tensor | None = None,
    r1_due: bool = True,
) -> dict[str, torch.Tensor]:
    """D phase: adversarial term + the penalties of `objective.penalties`, in that order. `loss` is
    the one tensor to backpropagate.

    Lazy R1 (StyleGAN2): with objective.r1_every = N the caller sets `r1_due` on every N-th D step
    only, and the penalty then weighs N times as much, so its average strength is unchanged.
    """
    d_real, d_fake = d_real.float(), d_fake.float()
    adversarial = LOSSES.get(objective.loss).discriminator(d_real, d_fake, objective)
    out = {"d_adversarial": adversarial, "d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
    loss = adversarial
    inputs = PenaltyInputs(penalty_discriminator, real, fake, labels, alpha, loss_scale)
    for name in objective.penalties:
        penalty = PENALTIES.get(name)
        if penalty.lazy and not r1_due:
            continue
        terms = dict(penalty.term(objective, inputs))
        if "loss" in terms:
            loss = loss + terms.pop("loss")
        out.update(terms)
    out["loss"] = loss
    return out


def generator_losses(objective: ObjectiveConfig, d_fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """G phase: `loss` is the one tensor to backpropagate."""
    d_fake = d_fake.float()
    loss = LOSSES.get(objective.loss).generator(d_fake)
    return {"loss": loss, "g_d_fake": d_fake.mean().detach()}
