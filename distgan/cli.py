"""The `distgan` command: every tool behind one name.

    distgan train --config configs/quickstart.yaml
    distgan sample --checkpoint runs/quickstart --num 64 --out grid.png
    distgan evaluate --checkpoint runs/quickstart --num 1000
    distgan export --checkpoint runs/quickstart --out exports/quickstart
    distgan prepare --config configs/celeba_dcgan.yaml --out data/celeba64 --num-shards 16
    distgan bench --config configs/quickstart.yaml --tiny
    distgan train --help

`distgan COMMAND ...` runs exactly what `python -m distgan.COMMAND ...` runs (prepare is
`distgan.data.prepare`, bench `distgan.bench`), with the same options and exit codes. Several
processes start through `accelerate launch -m distgan.train ...` (or `-m distgan.evaluate`).
Only the chosen command's module is imported, so `distgan --help` answers at once.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module whose main(argv) runs it, one line for the command list)
COMMANDS = {
    "train": ("distgan.train", "train a GAN from a config file (--help-config lists every key)"),
    "sample": ("distgan.sample", "draw samples from a run, checkpoint, export folder or Hub repo"),
    "evaluate": ("distgan.evaluate", "score a checkpoint (FD/FID, KID, precision/recall, coverage)"),
    "export": ("distgan.export", "write a Hub-ready model folder (weights, config, samples, card)"),
    "prepare": ("distgan.data.prepare", "decode, crop and resize a dataset once into parquet shards"),
    "bench": ("distgan.bench.cli", "measure speed, scaling and quality (the docs' tables)"),
}


def usage() -> str:
    from distgan import __version__

    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: distgan COMMAND [ARGS ...]    (distgan {__version__})", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "`distgan COMMAND --help` shows the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        from distgan import __version__

        print(f"distgan {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"distgan: unknown command {command!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
