"""One training iteration's phases, as stylegan2-ada names them, built once from their sections.

    phase    network  when                                 what
    D main   D        every D step                         adversarial loss on a real and a fake batch
    D reg    D        every objective.r1_every-th D step   the penalty (WGAN-GP: every step); it joins
                                                           D main's backward: ONE backward per D step
    G main   G        every G step                         adversarial loss through a frozen D
    G reg    G        every objective.pl_every-th G step   path-length regularization (stylegan2); it
                                                           joins G main's backward, as D reg joins D's

Distributed rules the phases keep (tests/distributed proves them):
- one backward per D step; the penalty's input gradient is taken inside that graph;
- D is frozen during the G step and run unwrapped, so neither DDP nor DeepSpeed computes or
  all-reduces D's gradients there;
- with train.grad_accum = M each update is M micro-batches, all-reduced only on the last;
- every process draws its own latent noise and augmentation (the pipe) from its own RNG, and so
  does G its style mixing and noise maps (equivalence tests hand them in instead);
- the running mean path length is updated from the batch mean averaged over ranks (one
  all-reduce): the same on every rank and for any number of processes.
The losses are pure functions (objectives.py); this module does the backward through the backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distgan import objectives
from distgan.augment import AugmentPipe
from distgan.config import ExperimentConfig, ObjectiveConfig
from distgan.distributed import Backend, World


@dataclass(frozen=True)
class PhaseSettings:
    """What the phases read of the experiment, gathered once."""

    objective: ObjectiveConfig
    latent_dim: int
    num_classes: int
    micro_batches: int  # train.grad_accum
    global_batch: int  # data.batch_size: images per D step, all processes together
    pure_batches: bool  # D has batch statistics (BatchNorm, minibatch std): real and fake apart
    path_length: bool  # path-length regularization of G (objective.pl_weight > 0)

    @classmethod
    def of(cls, cfg: ExperimentConfig) -> PhaseSettings:
        return cls(
            cfg.objective,
            cfg.model.latent_dim,
            cfg.model.num_classes,
            cfg.train.grad_accum,
            cfg.data.batch_size,
            cfg.model.d_norm == "batch" or cfg.model.arch == "stylegan2",  # BatchNorm, minibatch std
            cfg.objective.pl_weight > 0,
        )


def micro_batches(count: int, *tensors: torch.Tensor | None) -> list[tuple]:
    """Each tensor (None stays None) split into `count` equal micro-batches along the batch dim."""
    return list(zip(*(t.chunk(count) if t is not None else (None,) * count for t in tensors), strict=True))


def rows_of(params, count: int, i: int, size: int):
    """Micro-batch i's share of a batch's augmentation parameters or G's draws (micro-batches of
    `size`); anything with `select(rows)`, or None."""
    if params is None or count == 1:
        return params
    return params.select(slice(i * size, (i + 1) * size))


def mean_of(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The micro-batches' values as one step's (means of equal-sized parts: the full batch's)."""
    if len(parts) == 1:
        return parts[0]
    return {k: torch.stack([part[k].detach().float() for part in parts]).mean() for k in parts[0]}


def warn_batchnorm_accumulation(grad_accum: int, backend: Backend, local_batch: int, print_) -> None:
    """With BatchNorm, micro-batches normalise with their own statistics: not the full batch's."""
    if grad_accum == 1:
        return
    modules = [*backend.generator_module.modules(), *backend.discriminator_module.modules()]
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in modules):
        print_(
            f"warning: train.grad_accum={grad_accum} with BatchNorm: each micro-batch of "
            f"{local_batch // grad_accum} normalises with its own statistics, so the update is "
            f"not the one a batch of {local_batch} per process would give (docs/distributed.md: gradient accumulation)"
        )


def draws_option(draws) -> dict:
    """G's forward arguments for given style-mixing and noise draws (none: G draws its own)."""
    return {} if draws is None else {"draws": draws}


@dataclass(frozen=True)
class PathLengthInputs:
    """G reg's random inputs, given instead of drawn (equivalence tests): a process's rows."""

    latent: torch.Tensor
    labels: torch.Tensor | None
    directions: torch.Tensor | None  # y: random image-space directions, N(0, I) / sqrt(H W)
    draws: object = None  # G's style-mixing and noise draws (models.stylegan2.StyleDraws)


class PathLengthMean:
    """The running mean path length a (StyleGAN2's pl_mean): the same on every rank, kept in
    meta.json (a float32 value, exact in JSON), so a resume and a rollback restore it."""

    def __init__(self) -> None:
        self.value = torch.zeros(())

    def update(self, batch_mean: torch.Tensor, decay: float) -> torch.Tensor:
        self.value = objectives.updated_pl_mean(self.value.to(batch_mean.device), batch_mean, decay)
        return self.value

    def state_dict(self) -> dict:
        return {"pl_mean": float(self.value)}

    def load_state_dict(self, meta: dict) -> None:
        self.value = torch.tensor(float(meta.get("pl_mean", 0.0)), device=self.value.device)


class Phases:
    """The D and G updates of one iteration over a backend, with the augmentation pipe. `world`
    averages G reg's batch mean over ranks (None: one process)."""

    def __init__(
        self, backend: Backend, settings: PhaseSettings, augment: AugmentPipe, world: World | None = None
    ) -> None:
        self.backend, self.settings, self.augment, self.world = backend, settings, augment, world
        self.path_length = PathLengthMean()

    def regularize_d(self, images_seen: int) -> bool:
        """D reg's interval: D steps 0, N, 2N, ... of the run (N = objective.r1_every)."""
        return (images_seen // self.settings.global_batch) % self.settings.objective.r1_every == 0

    def regularize_g(self, step: int) -> bool:
        """G reg's interval: G steps 0, N, 2N, ... of the run (N = objective.pl_every)."""
        return self.settings.path_length and step % self.settings.objective.pl_every == 0

    def latent(self, count: int, device) -> torch.Tensor:
        return torch.randn(count, self.settings.latent_dim, device=device)

    def discriminator_step(
        self, batch, latent=None, alpha=None, *, augment_params=None, regularize: bool = True, draws=None
    ) -> dict[str, torch.Tensor]:
        """D main (+ D reg when `regularize`): per micro-batch ONE forward and ONE backward,
        all-reduced only on the last; one optimizer step. `latent`, the penalty's `alpha`, the
        (real, fake) `augment_params` and G's `draws` are drawn here unless given (equivalence
        tests fix them)."""
        real = batch.images
        labels = batch.labels if self.settings.num_classes > 0 else None  # unconditional: no labels
        latent = self.latent(real.shape[0], real.device) if latent is None else latent
        real_params, fake_params = augment_params or (
            self.augment.draw(real.shape[0], real.device),
            self.augment.draw(real.shape[0], real.device),
        )
        count, parts = self.settings.micro_batches, []
        size = real.shape[0] // count
        for i, (real_i, labels_i, latent_i, alpha_i) in enumerate(
            micro_batches(count, real, labels, latent, alpha)
        ):
            last = i == count - 1
            with self.backend.accumulating("d", last):  # no all-reduce before the last micro-batch
                params = rows_of(real_params, count, i, size), rows_of(fake_params, count, i, size)
                draws_i = rows_of(draws, count, i, size)
                parts.append(
                    self._discriminator_losses(
                        real_i, labels_i, latent_i, alpha_i, *params, regularize, draws_i
                    )
                )
                stepped = self.backend.update("d", parts[-1]["loss"], first=i == 0, last=last)
        return {**mean_of(parts), **stepped}

    def _discriminator_losses(
        self, real, labels, latent, alpha, real_params, fake_params, regularize: bool, draws=None
    ) -> dict[str, torch.Tensor]:
        """D's losses on one (micro-)batch. The penalty sees the discriminator through the real batch's
        augmentation: R1 is the gradient of D(T(x)) w.r.t. x (WGAN-GP: the interpolates of the
        un-augmented batches, seen through the real's T)."""
        backend, seen_by_d = self.backend, self.augment.seen_by_d
        with torch.no_grad():
            fake = backend.generate(latent, labels, **draws_option(draws)).to(real.dtype)
        discriminator = backend.penalty_discriminator
        penalty_discriminator = (
            discriminator
            if real_params is None
            else (lambda x, y: discriminator(seen_by_d(x, real_params), y))
        )
        seen_real, seen_fake = seen_by_d(real, real_params), seen_by_d(fake, fake_params)
        if self.settings.pure_batches:
            # BatchNorm must see pure real and pure fake batches, as D sees a pure fake batch in the
            # G step; a mixed batch lets D key on batch statistics that the G step never shows it.
            d_real, d_fake = (
                backend.discriminate(seen_real, labels),
                backend.discriminate(seen_fake, labels),
            )
        else:  # one forward for both halves: one DDP forward per backward
            both_labels = None if labels is None else torch.cat([labels, labels])
            d_real, d_fake = backend.discriminate(torch.cat([seen_real, seen_fake]), both_labels).chunk(2)
        losses = objectives.discriminator_losses(
            self.settings.objective, d_real, d_fake, penalty_discriminator=penalty_discriminator, real=real, fake=fake,
            labels=labels, alpha=alpha, loss_scale=backend.loss_scale(), r1_due=regularize,
        )  # fmt: skip
        return {**losses, **self.augment.measure(d_real)}

    def generator_step(
        self,
        count: int,
        device,
        latent=None,
        labels=None,
        *,
        augment_params=None,
        draws=None,
        regularize: bool = False,
        path_length_inputs: PathLengthInputs | None = None,
    ) -> dict:
        """G main (+ G reg when `regularize`): `count` fakes through a frozen, unwrapped D (no D
        gradients, no D all-reduce), in micro-batches with one all-reduce and one optimizer step.
        D sees the fakes through a fresh augmentation (differentiable: G learns through it).
        `latent`, `labels`, `augment_params`, G's `draws` and G reg's inputs are drawn here unless
        given (equivalence tests fix them)."""
        settings, micro = self.settings, self.settings.micro_batches
        latent = self.latent(count, device) if latent is None else latent
        if labels is None and settings.num_classes > 0:
            labels = torch.randint(0, settings.num_classes, (count,), device=device)
        params = augment_params if augment_params is not None else self.augment.draw(count, device)
        parts, size = [], count // micro
        # the running mean on every step, so a log window's mean of it is the mean itself
        regularizer = (
            {"pl_mean": self.path_length.value.to(device, copy=True)} if settings.path_length else {}
        )
        with self.backend.frozen_discriminator() as discriminator:
            for i, (latent_i, labels_i) in enumerate(micro_batches(micro, latent, labels)):
                last = i == micro - 1
                with self.backend.accumulating("g", last):
                    fake = self.backend.generate(
                        latent_i, labels_i, **draws_option(rows_of(draws, micro, i, size))
                    )
                    seen = self.augment.seen_by_d(fake, rows_of(params, micro, i, size))
                    parts.append(
                        objectives.generator_losses(settings.objective, discriminator(seen, labels_i))
                    )
                    if regularize and last:
                        # G reg joins G main's backward (as D reg joins D main's): one backward and one
                        # optimizer step per update, after the wrapped forward that DDP and ZeRO
                        # reduce for; the backend divides every micro-batch's loss by their number.
                        regularizer = self._path_length(count, device, path_length_inputs)
                        parts[-1]["loss"] = parts[-1]["loss"] + regularizer.pop("loss") * micro
                    stepped = self.backend.update("g", parts[-1]["loss"], first=i == 0, last=last)
        return {**mean_of(parts), **regularizer, **stepped}

    def _path_length(self, count: int, device, given: PathLengthInputs | None) -> dict[str, torch.Tensor]:
        """G reg on count / objective.pl_batch_shrink fresh latents: the penalty's terms, after the
        running mean took in the batch mean averaged over ranks (ONE all-reduce)."""
        objective = self.settings.objective
        if given is None:
            size = max(1, count // objective.pl_batch_shrink)
            labels = None
            if self.settings.num_classes > 0:
                labels = torch.randint(0, self.settings.num_classes, (size,), device=device)
            given = PathLengthInputs(self.latent(size, device), labels, None)
        # The plain G: autograd.grad through a DeepSpeed engine's forward breaks (FACTS.md).
        images, ws = self.backend.penalty_generator(
            given.latent, given.labels, return_ws=True, **draws_option(given.draws)
        )
        directions = given.directions
        if directions is None:
            directions = objectives.path_length_directions(images)
        lengths = objectives.path_lengths(images, ws, directions, self.backend.loss_scale())
        batch_mean = lengths.detach().mean()
        if self.world is not None and self.world.size > 1:
            batch_mean = self.world.sum(batch_mean.clone()) / self.world.size
        pl_mean = self.path_length.update(batch_mean, objective.pl_decay)
        return objectives.path_length_terms(objective, lengths, pl_mean)


def phases_for(backend: Backend, cfg: ExperimentConfig, augment_p: float = 1.0) -> Phases:
    """Phases at a fixed augmentation probability: one step outside the loop (tests, benchmarks)."""
    pipe = AugmentPipe.fixed(cfg.augment, cfg.data.resolution, augment_p)
    return Phases(backend, PhaseSettings.of(cfg), pipe)


def d_step(
    backend,
    cfg: ExperimentConfig,
    batch,
    latent=None,
    alpha=None,
    *,
    augment_p=1.0,
    augment_params=None,
    r1_due=True,
):
    """One D update outside the loop (tests, benchmarks): `Phases.discriminator_step`."""
    phases = phases_for(backend, cfg, augment_p)
    return phases.discriminator_step(batch, latent, alpha, augment_params=augment_params, regularize=r1_due)


def g_step(
    backend,
    cfg: ExperimentConfig,
    count,
    device,
    latent=None,
    labels=None,
    *,
    augment_p=1.0,
    augment_params=None,
    regularize=False,
):
    """One G update outside the loop (tests, benchmarks): `Phases.generator_step`."""
    phases = phases_for(backend, cfg, augment_p)
    return phases.generator_step(
        count, device, latent, labels, augment_params=augment_params, regularize=regularize
    )
