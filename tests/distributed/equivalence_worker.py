"""One training iteration on a FIXED global batch, through distgan's real loop functions; dump weights.

Every process slices the same global real batch, latent noise and penalty alphas by its rank and
runs the D phase (`step.Phases.discriminator_step`) n_critic times and the G phase once, through the backend
`build_backend` picks (DDP via accelerate, or DeepSpeed engines): the code path of training.
With world size 1 this is the reference; with N processes (or nodes) the weights must match it.

    python tests/distributed/equivalence_worker.py --out DIR wgan-gp/ddp nonsaturating/ddp
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 \
        tests/distributed/equivalence_worker.py --out DIR wgan-gp/ddp wgan-gp/zero2
    # GPU check (2+ GPUs, NCCL), with G's BatchNorm as SyncBatchNorm in training mode:
    python tests/distributed/equivalence_worker.py --sync-batchnorm --out REF wgan-gp/ddp
    accelerate launch --multi_gpu --num_processes 2 tests/distributed/equivalence_worker.py \
        --sync-batchnorm --out DIR wgan-gp/ddp

A case is OBJECTIVE/BACKEND[/PLANT][/accumM]: BACKEND is ddp, zero1 or zero2; OBJECTIVE is wgan-gp,
nonsaturating, or sngan: the SN-ResNet (32 px, spectral norm on D) with hinge loss, DiffAugment
(fixed per-sample parameters of the global batch, sliced by rank), lazy R1 (every 2nd D step, so
the iteration has one D step with and one without it) and the EMA by images (dumped as ema.*,
updated as the trainer does with the GLOBAL images), or stylegan2: a tiny StyleGAN2 with lazy R1
(every 2nd D step), path-length regularization on its G step, style mixing in every G forward
(the mixing latent, cutoff and noise maps of the global batch fixed and sliced by rank, as are G
reg's latents and directions), ADA's ops at p = 1 with fixed per-sample parameters and the EMA by
images; its rows are strided (rank r takes r, r + W, ...), so that D's minibatch-std groups
(sample n in group n mod N/G) hold the same samples on 1 and 2 processes, and its running mean
path length is dumped as metadata pl_mean. PLANT=split_backward plants
FACTS.md's silent failure `w.backward(retain_graph=True); gp.backward()` (the penalty's gradients
are then never all-reduced) so the test can show that it is caught; PLANT=local_pl_mean updates
the running mean path length from each process's own batch mean (no all-reduce); accumM trains with
train.grad_accum=M. `--global-batch B` changes the global batch (default 8).
Writes DIR/<case with / -> __>.rank<R>.safetensors: g.* and d.* parameters and buffers after the
iteration (metadata: rank, world size, network namespace, and under DDP comm_d / comm_g: the
gradient all-reduces of the iteration, counted by a DDP comm hook), and <case>.init.safetensors.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from distgan import augment, step
from distgan.config import load_config
from distgan.data import Batch
from distgan.distributed import World, build_accelerator, build_backend
from distgan.ema import GeneratorEMA
from distgan.models import build_discriminator, build_generator

GLOBAL_BATCH = 8
BATCH = {"global": GLOBAL_BATCH}  # --global-batch
N_CRITIC = 2
LATENT_DIM = 16
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


SNGAN = [  # SN-ResNet + hinge + DiffAugment + lazy R1 + EMA by images
    "model.arch=resnet",
    "data.resolution=32",
    "model.spectral_norm=d",
    "model.g_width=4",
    "model.d_width=4",
    "objective.r1_weight=1",
    "objective.r1_every=2",
    "augment.policy=diffaugment",
    "augment.ops=[xflip,translation,color,cutout]",
    "train.ema_decay=0",
    "train.ema_images=8",
    "train.ema_rampup=0",
    "optim.d.lr=5e-3",  # one Adam step moves these orthogonal-init weights by ~1e-2, 1000x the tolerance
    "optim.g.lr=5e-3",
]


STYLEGAN2 = [  # tiny StyleGAN2 + lazy R1 + path length + style mixing + ADA's ops + EMA by images
    "model.arch=stylegan2",
    "model.g_width=64",
    "model.d_width=64",
    "model.d_norm=none",
    "data.resolution=32",
    "model.w_dim=16",
    "model.mapping_layers=2",
    "model.channel_base=256",
    "model.channel_max=16",
    "model.mbstd_group=4",
    "model.style_mixing=1",  # every forward mixes: the fixed draws then always exercise it
    "objective.r1_weight=1",
    "objective.r1_every=2",
    "objective.pl_weight=2",
    "augment.policy=ada",
    "augment.ops=[xflip,translation,color,cutout]",
    "train.ema_decay=0",
    "train.ema_images=8",
    "train.ema_rampup=0",
    "optim.d.lr=1e-2",
    "optim.g.lr=1e-2",
]


def grad_accum(case: str) -> int:
    return next((int(part[5:]) for part in case.split("/")[2:] if part.startswith("accum")), 1)


def case_config(case: str, world_size: int, sync_batchnorm: bool = False):
    objective, backend, *_ = case.split("/")
    sngan, stylegan2 = objective == "sngan", objective == "stylegan2"
    objective = "hinge" if sngan else "nonsaturating" if stylegan2 else objective
    overrides = [
        f"train.grad_accum={grad_accum(case)}",
        "model.arch=dcgan",
        f"model.latent_dim={LATENT_DIM}",
        "model.g_width=8",
        "model.d_width=8",
        # GroupNorm(1, C) in the critic: per-sample, so it is exercised without coupling samples
        f"model.d_norm={'layer' if objective == 'wgan-gp' else 'none'}",
        "data.source=embedded",
        f"data.batch_size={BATCH['global']}",
        f"objective.loss={objective}",
        f"train.n_critic={N_CRITIC}",
        "optim.d.lr=1e-3",
        "optim.g.lr=1e-3",
        f"distributed.backend={'ddp' if backend == 'ddp' else 'deepspeed'}",
        f"distributed.sync_batchnorm={str(sync_batchnorm).lower()}",
        *(SNGAN if sngan else []),
        *(STYLEGAN2 if stylegan2 else []),
    ]
    if backend.startswith("zero"):  # the shipped JSON files, so they are proven to work too
        stage = backend[-1]
        overrides += [
            f"distributed.zero_stage={stage}",
            f"distributed.deepspeed_config={CONFIGS}/deepspeed_zero{stage}.json",
        ]
    return load_config(None, overrides, world_size=world_size)


def plant(backend, accelerator, kind: str) -> None:
    """Deliberately break the backend the way FACTS.md says breaks silently (test sensitivity)."""
    if kind != "split_backward":
        raise SystemExit(f"unknown plant {kind!r}")
    parts = {}
    losses = step.objectives.discriminator_losses

    def remember_parts(*args, **kwargs):
        out = losses(*args, **kwargs)
        parts["adversarial"], parts["penalty"] = out["d_adversarial"], out["loss"] - out["d_adversarial"]
        return out

    update = backend.update

    def split_update(name, loss, **micro_batch):
        if name != "d":
            return update(name, loss, **micro_batch)
        backend.optimizers["d"].zero_grad(set_to_none=True)
        accelerator.backward(parts["adversarial"], retain_graph=True)
        accelerator.backward(parts["penalty"])
        backend.optimizers["d"].step()
        return {}

    step.objectives.discriminator_losses = remember_parts
    backend.update = split_update


def run_case(case: str, accelerator, out_dir: Path, sync_batchnorm: bool = False) -> None:
    rank, world = accelerator.process_index, accelerator.num_processes
    cfg = case_config(case, world, sync_batchnorm)
    local = cfg.local_batch(world)
    stylegan2 = cfg.model.arch == "stylegan2"
    rows = slice(rank, None, world) if stylegan2 else slice(rank * local, (rank + 1) * local)
    device = accelerator.device
    original_losses = step.objectives.discriminator_losses

    torch.manual_seed(cfg.train.seed)
    generator, discriminator = (
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )
    # G's BatchNorm couples the samples of a batch: per-process batch statistics differ from
    # global ones by design (SyncBatchNorm's job, GPU only). Running statistics make it per-sample.
    for module in generator.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not sync_batchnorm:
            module.eval()
    with torch.no_grad():  # StyleGAN2's noise strengths start at 0: as after some training, the
        for key, parameter in generator.named_parameters():  # noise maps then change the images
            if key.endswith("noise_strength"):
                parameter.fill_(0.5)
    name = case.replace("/", "__")
    if rank == 0:  # the weights before the iteration: the test checks that it changed them
        init = weights(generator, discriminator)
        init.update(
            {f"ema.{k[2:]}": v.clone() for k, v in init.items() if k.startswith("g.")}
        )  # EMA starts at G
        save_file(init, str(out_dir / f"{name}.init.safetensors"))
    backend = build_backend(accelerator, cfg, generator, discriminator)
    plants = [kind for kind in case.split("/")[2:] if not kind.startswith("accum")]
    for kind in plants:
        if kind != "local_pl_mean":
            plant(backend, accelerator, kind)
    comm = count_gradient_all_reduces(backend)

    ema = GeneratorEMA.of(cfg.train, backend.generator_module)
    phases = step.Phases(
        backend,
        step.PhaseSettings.of(cfg),
        augment.AugmentPipe.fixed(cfg.augment, cfg.data.resolution, 1.0),
        None if "local_pl_mean" in plants else World.of(accelerator),  # the plant: no all-reduce
    )

    # The fixed GLOBAL inputs, identical on every process; each takes its rows.
    rng = torch.Generator().manual_seed(1234)
    shape = (cfg.data.batch_size, cfg.model.channels, cfg.data.resolution, cfg.data.resolution)

    def augmentation():  # this process's rows of one augmentation of the global batch (or none)
        if cfg.augment.policy == "none":
            return None
        params = augment.draw(cfg.augment, cfg.data.batch_size, cfg.data.resolution, 1.0, "cpu", rng)
        return params.select(rows).to(device)

    def style_draws(count):  # this process's rows of G's draws for one forward of `count` (or none)
        if not stylegan2:
            return None
        return backend.generator_module.draw(count, rng).select(rows).to(device)

    def path_length_inputs():  # this process's rows of G reg's inputs for the global G reg batch
        if not stylegan2:
            return None
        count = cfg.data.batch_size // cfg.objective.pl_batch_shrink
        latent = torch.randn(count, cfg.model.latent_dim, generator=rng)
        directions = torch.randn(count, *cfg.sample_shape, generator=rng) / cfg.data.resolution
        draws = style_draws(count)
        return step.PathLengthInputs(latent[rows].to(device), None, directions[rows].to(device), draws)

    for d_index in range(cfg.train.n_critic):
        real = torch.rand(shape, generator=rng) * 2 - 1
        latent = torch.randn(cfg.data.batch_size, cfg.model.latent_dim, generator=rng)
        alpha = torch.rand(cfg.data.batch_size, generator=rng)
        batch = Batch(real[rows].to(device), None)
        phases.discriminator_step(
            batch, latent=latent[rows].to(device), alpha=alpha[rows].to(device),
            augment_params=(augmentation(), augmentation()),
            regularize=phases.regularize_d(d_index * cfg.data.batch_size), draws=style_draws(cfg.data.batch_size),
        )  # fmt: skip
    latent = torch.randn(cfg.data.batch_size, cfg.model.latent_dim, generator=rng)
    phases.generator_step(
        local, device, latent=latent[rows].to(device), augment_params=augmentation(),
        draws=style_draws(cfg.data.batch_size), regularize=phases.regularize_g(0),
        path_length_inputs=path_length_inputs(),
    )  # fmt: skip
    backend.sync_buffers()
    if ema is not None:
        ema.update(backend.generator_module, 1, 0, cfg.train.n_critic * cfg.data.batch_size)  # G step 1
    step.objectives.discriminator_losses = original_losses

    # Which network namespace ("node") this rank ran in: the 2-node test checks the placement.
    where = {"rank": str(rank), "world_size": str(world), "netns": str(os.stat("/proc/self/ns/net").st_ino)}
    where.update({f"comm_{k}": str(v) for k, v in comm.items()})
    if stylegan2:
        where["pl_mean"] = repr(float(phases.path_length.value))
    tensors = weights(backend.generator_module, backend.discriminator_module)
    if ema is not None:
        tensors.update(
            {f"ema.{k}": v.detach().float().cpu().clone() for k, v in ema.model.state_dict().items()}
        )
    save_file(tensors, str(out_dir / f"{name}.rank{rank}.safetensors"), metadata=where)


def count_gradient_all_reduces(backend) -> dict[str, int]:
    """DDP comm-hook calls (one per gradient bucket all-reduce) of G and D; {} without DDP."""
    counts: dict[str, int] = {}
    for name, wrapped in (("g", backend.generator), ("d", backend.discriminator)):
        if isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
            counts[name] = 0

            def counting_hook(state, bucket, name=name):
                counts[name] += 1
                return allreduce_hook(state, bucket)

            wrapped.register_comm_hook(None, counting_hook)
    return counts


def weights(generator: torch.nn.Module, critic: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.{key}": value.detach().float().cpu().clone().contiguous()
        for prefix, module in (("g", generator), ("d", critic))
        for key, value in module.state_dict().items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("cases", nargs="+", help="OBJECTIVE/BACKEND[/PLANT][/accumM]")
    parser.add_argument("--global-batch", type=int, default=GLOBAL_BATCH)
    parser.add_argument(
        "--sync-batchnorm",
        action="store_true",
        help="GPU only: G's BatchNorm stays in training mode as SyncBatchNorm (global batch statistics)",
    )
    args = parser.parse_args()
    BATCH["global"] = args.global_batch
    # Exact fp32 on GPUs too: TF32 convolutions would round differently for different batch splits.
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    accelerator = build_accelerator(case_config("wgan-gp/ddp", 1, args.sync_batchnorm))
    args.out.mkdir(parents=True, exist_ok=True)
    for case in args.cases:
        run_case(case, accelerator, args.out, args.sync_batchnorm)
        accelerator.wait_for_everyone()
    accelerator.print(f"wrote {len(args.cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
