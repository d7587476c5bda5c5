"""Export a trained generator as a Hub-ready folder, and optionally upload it.

    python -m distgan.export --checkpoint runs/quickstart --out exports/quickstart
    python -m distgan.export --checkpoint runs/quickstart --out exports/quickstart --push-to-hub me/mnist-dcgan

The folder holds generator.safetensors (the EMA weights when the run kept an EMA), the resolved
config.yaml, samples.png (64 samples, seed 0), eval.json when `distgan.evaluate` wrote one for the
checkpoint, and README.md, the model card. `distgan.load_generator(FOLDER or "owner/name")` loads it.
--out must be empty, missing, or an earlier export (whose files are replaced).
Upload: huggingface_hub with its usual token (`hf auth login` or HF_TOKEN) and HF_ENDPOINT.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from distgan.checkpoint import EMA_WEIGHTS, read_meta, resolve_checkpoint
from distgan.errors import UserError, report
from distgan.generation import generator_files, load_generator
from distgan.grids import samples_picture, save_png
from distgan.hub import CARD, CONFIG, EVAL, SAMPLES, WEIGHTS, HubError, check_repo_id, is_export_dir, push
from distgan.model_card import SAMPLES_NUM, SAMPLES_SEED, render


def eval_results_of(checkpoint: Path) -> dict | None:
    """The eval JSON `distgan.evaluate` writes by default for `checkpoint` (its default_out), if any."""
    if checkpoint.parent.name == "checkpoints":
        path = checkpoint.parent.parent / "eval" / f"{checkpoint.name}.json"
    else:
        path = checkpoint / "eval.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise HubError(
            f"{path}: not readable JSON; rerun `python -m distgan.evaluate` or delete it"
        ) from None


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise HubError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not is_export_dir(out):
        raise HubError(f"--out {out}: not empty and not an earlier export; choose a new or empty folder")


def export(checkpoint_path: str, out: Path, ema: bool = True, load_as: str | None = None) -> Path:
    """Write the export folder for `checkpoint_path` (run or checkpoint directory) into `out`."""
    _check_out(out)
    checkpoint = resolve_checkpoint(checkpoint_path)
    cfg, weights_file = generator_files(checkpoint, ema)
    meta = read_meta(checkpoint)
    generator = load_generator(checkpoint, ema=ema)
    weights = "ema" if weights_file.name == f"{EMA_WEIGHTS}.safetensors" else "raw"
    results = eval_results_of(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "distgan-generator", "weights": weights})
    cfg.save_yaml(out / CONFIG)
    samples = generator.sample(SAMPLES_NUM, seed=SAMPLES_SEED)
    save_png(samples_picture(samples, generator.num_classes), out / SAMPLES)
    if results is not None:
        (out / EVAL).write_text(json.dumps(results, indent=2) + "\n")
    else:
        (out / EVAL).unlink(missing_ok=True)  # an earlier export's numbers would describe another checkpoint
    parameters = sum(p.numel() for p in generator.parameters())
    card = render(
        cfg, meta, weights=weights, parameters=parameters, load_as=load_as or str(out), eval_results=results
    )
    (out / CARD).write_text(card)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distgan.export", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint directory")
    parser.add_argument("--out", required=True, help="folder to write (empty, missing, or an earlier export)")
    parser.add_argument(
        "--push-to-hub", metavar="OWNER/NAME", help="upload the folder to this Hub model repo"
    )
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--no-ema", action="store_true", help="export the raw generator, not its EMA")
    args = parser.parse_args(argv)
    try:
        if args.push_to_hub:
            check_repo_id(args.push_to_hub)  # before any work
        out = export(args.checkpoint, Path(args.out), ema=not args.no_ema, load_as=args.push_to_hub)
        print(f"wrote {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
        if args.push_to_hub:
            url = push(out, args.push_to_hub, private=args.private)
            print(f"pushed to {args.push_to_hub}: {url}")
    except UserError as err:
        return report(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
