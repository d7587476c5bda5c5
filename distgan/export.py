"""Export a trained generator as a Hub-ready folder, and optionally upload it.

    python -m distgan.export --checkpoint runs/quickstart --out exports/quickstart
    python -m distgan.export --checkpoint runs/quickstart --out exports/quickstart --push-to-hub me/mnist-dcgan

The folder holds generator.safetensors (the EMA weights when the run kept an EMA), the resolved
config.yaml, samples.png (64 samples, seed 0), eval.json when `distgan.evaluate` wrote one for the
checkpoint, and README.md, the model card. `distgan.load_generator(FOLDER or "owner/name")` loads it.
--out must be empty, missing, or an earlier export: the new export is built beside it and replaces
it whole (a killed export leaves the earlier one); links inside --out are refused.
Upload: huggingface_hub with its usual token (`hf auth login` or HF_TOKEN) and HF_ENDPOINT.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import glob
import json
import os
import shutil
import sys
from pathlib import Path

from safetensors.torch import save_file

from distgan.checkpoint import EMA_WEIGHTS, RunLock, read_meta, resolve_checkpoint
from distgan.errors import UserError, brief, report
from distgan.generation import generator_files, load_generator
from distgan.grids import samples_picture, save_png
from distgan.hub import (
    CARD,
    CONFIG,
    EVAL,
    EXPORT_FILES,
    SAMPLES,
    WEIGHTS,
    HubError,
    check_repo_id,
    is_export_dir,
    push,
)
from distgan.model_card import SAMPLES_NUM, SAMPLES_SEED, render

# Beside --out (same filesystem, so the swap is a rename): the lock, and the folder a new export is built in.
LOCK_SUFFIX = ".distgan-export.lock"
STAGING_SUFFIX = ".distgan-export-"


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
    """--out may be missing, empty or an earlier export holding export files only, none of them links."""
    if out.is_symlink():
        raise HubError(f"--out {out}: is a symbolic link; pass the folder it points to ({out.resolve()})")
    if out.exists() and not out.is_dir():
        raise HubError(f"--out {out}: exists and is not a directory")
    if not out.is_dir():
        return
    entries = sorted(out.iterdir())
    for entry in entries:
        if entry.is_symlink():
            raise HubError(
                f"--out {out}: {entry.name} is a symbolic link; distgan never writes through links "
                "(it could overwrite the file it points to): remove the link or choose a new folder"
            )
    if entries and not is_export_dir(out):
        raise HubError(f"--out {out}: not empty and not an earlier export; choose a new or empty folder")
    extra = [entry.name for entry in entries if entry.name not in EXPORT_FILES]
    if extra:
        raise HubError(
            f"--out {out}: holds {extra[0]}, which is not part of an export and would be lost when the export "
            "is replaced; move it away or choose a new folder"
        )


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directory entries in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # the filesystem cannot exchange: fall back to two renames
    raise OSError(code, os.strerror(code), str(b))


def swap_in(staging: Path, out: Path) -> Path | None:
    """Make the folder `staging` be `out`; returns where the earlier `out` now is (None if there was none).

    With an earlier export the swap is one atomic exchange; where the filesystem cannot exchange, a kill
    between the two renames leaves `out` missing (a clear error on load) and the earlier export kept."""
    if not out.exists():
        os.rename(staging, out)
        return None
    if _exchange(staging, out):
        return staging
    earlier = staging.with_name(staging.name + "-earlier")
    os.rename(out, earlier)
    os.rename(staging, out)
    return earlier


def _write_failure(err: Exception) -> bool:
    """An error of the disk (full, read-only, quota), as opposed to a bug: safetensors wraps the OS error."""
    return isinstance(err, OSError) or type(err).__name__ == "SafetensorError"


def _build(staging: Path, checkpoint_path: str, ema: bool, load_as: str) -> None:
    """Write every export file into `staging`, a folder this process just created."""
    checkpoint = resolve_checkpoint(checkpoint_path)
    cfg, weights_file = generator_files(checkpoint, ema)
    meta = read_meta(checkpoint)
    generator = load_generator(checkpoint, ema=ema)
    weights = "ema" if weights_file.name == f"{EMA_WEIGHTS}.safetensors" else "raw"
    results = eval_results_of(checkpoint)
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    save_file(tensors, str(staging / WEIGHTS), metadata={"format": "distgan-generator", "weights": weights})
    cfg.save_yaml(staging / CONFIG)
    samples = generator.sample(SAMPLES_NUM, seed=SAMPLES_SEED)
    save_png(samples_picture(samples, generator.num_classes), staging / SAMPLES)
    if results is not None:
        (staging / EVAL).write_text(json.dumps(results, indent=2) + "\n")
    parameters = sum(p.numel() for p in generator.parameters())
    card = render(cfg, meta, weights=weights, parameters=parameters, load_as=load_as, eval_results=results)
    (staging / CARD).write_text(card)


def export(checkpoint_path: str, out: Path, ema: bool = True, load_as: str | None = None) -> Path:
    """Write the export folder for `checkpoint_path` (run or checkpoint directory) into `out`.

    The new export is built in a fresh sibling folder and swapped in whole, under a lock: `out` is
    always the old export or the new one, never a mixture, and nothing is written through a link."""
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out, path=out.parent / f".{out.name}{LOCK_SUFFIX}", role=("--out", "export"))
    lock.acquire()
    try:
        _check_out(out)  # again, now that no other export can change it
        # What a killed export left beside --out (its half-built folder, or the earlier export it replaced).
        for leftover in out.parent.glob(f".{glob.escape(out.name)}{STAGING_SUFFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = out.parent / f".{out.name}{STAGING_SUFFIX}{os.getpid()}"
        staging.mkdir()
        try:
            _build(staging, checkpoint_path, ema, load_as or str(out))
            replaced = swap_in(staging, out)
        except Exception as err:
            shutil.rmtree(staging, ignore_errors=True)
            if not _write_failure(err):
                raise
            raise HubError(
                f"--out {out}: cannot write the export ({_reason(err)}); "
                f"{'the earlier export is unchanged' if out.exists() else 'nothing was written'}"
            ) from None
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)  # the earlier export, now swapped out
    finally:
        lock.release()
    return out


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return brief(str(err), 120)


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
