"""Train a GAN.

    python -m distgan.train --config configs/quickstart.yaml
    python -m distgan.train --config configs/mnist_dcgan.yaml train.steps=200 data.batch_size=64
    python -m distgan.train --config configs/mnist_dcgan.yaml --debug
    python -m distgan.train --config configs/mnist_dcgan.yaml --print-config   # resolved, commented
    python -m distgan.train --help-config                                      # every key explained
    accelerate launch -m distgan.train --config configs/celeba_wgan.yaml
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m distgan.train --config ...

Exit codes: 0 finished, 2 bad input (config, data, checkpoint path, a locked or non-empty run
directory), 3 non-finite values that could not be rolled back, 69 another process died or went
silent (the line names it and the last complete checkpoint; run the same command again), 75 stopped
by a signal after checkpointing (requeue and run the same command again: --resume auto continues).
"""

from __future__ import annotations

import argparse
import sys

from distgan.config import ConfigError, ExperimentConfig, describe, load_config, override
from distgan.distributed import complete_from_launcher, launched_world_size
from distgan.errors import UserError, report
from distgan.run_directory import check_out_dir

DEBUG_STEPS = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m distgan.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="experiment YAML file (see configs/); required unless --help-config")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="e.g. train.steps=200 optim.d.lr=1e-4"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"single process, at most {DEBUG_STEPS} steps, anomaly detection, deterministic, verbose",
    )
    parser.add_argument(
        "--resume",
        default="auto",
        help="auto (default): continue from <out_dir>/checkpoints/latest if it exists; never; or a PATH",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="with --resume never: move an existing run in train.out_dir to previous-<timestamp>/ first",
    )
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume even though the config changes what is trained (model, data, objective, ...)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (defaults, overrides, launcher settings) with each key's comment; no training",
    )
    parser.add_argument(
        "--help-config", action="store_true", help="list every config key with type, default and meaning"
    )
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after the options
    if args.config is None and not args.help_config:
        parser.error("the following arguments are required: --config")
    return args


def debug_overrides(overrides: list[str]) -> list[str]:
    """--debug defaults, placed first so the user's own overrides still win."""
    given = {o.split("=", 1)[0] for o in overrides}
    defaults = {
        "train.detect_anomaly": "true",
        "log.every": "1",
        "log.sample_every": "0",
        "checkpoint.every": "0",
    }
    return [f"{k}={v}" for k, v in defaults.items() if k not in given] + overrides


def build_config(args: argparse.Namespace) -> ExperimentConfig:
    """The config for these arguments: file + overrides, then the --debug limits, validated."""
    overrides = debug_overrides(args.overrides) if args.debug else args.overrides
    world = launched_world_size()
    cfg = load_config(args.config, overrides, world_size=world)
    if args.debug:
        if world > 1:
            raise ConfigError(f"--debug runs one process; the launcher started {world}")
        cfg = override(cfg, [f"train.steps={min(cfg.train.steps, DEBUG_STEPS)}"])
    return cfg


def main(argv: list[str] | None = None, *, hooks=None) -> int:
    """`hooks`: a distgan.trainer.TrainHooks for callers that observe the run (tests)."""
    args = parse_args(argv)
    if args.help_config:
        print(describe.help_text())
        return 0
    try:
        cfg = build_config(args)
        if args.print_config:
            print(describe.annotated_yaml(complete_from_launcher(cfg)))
            return 0
        check_out_dir(cfg.train.out_dir)  # a file or read-only place fails now, not at the first save
        if args.debug:
            import torch

            torch.use_deterministic_algorithms(True)
        from distgan.trainer import TrainHooks, train  # after the config: a bad one fails fast

        return train(
            cfg, resume=args.resume, verbose=args.debug, overwrite=args.overwrite,
            allow_config_change=args.allow_config_change, hooks=hooks or TrainHooks(),
        )  # fmt: skip
    except UserError as err:
        return report(err)


if __name__ == "__main__":
    sys.exit(main())
