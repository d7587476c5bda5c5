"""The wheel alone, in a fresh venv without extras: `distgan --help` and every command's --help
answer, the quickstart trains and samples, and what needs an extra (DeepSpeed, wandb) is exit 2
naming the `pip install "distgan[X]"` to run. Nothing of the repository is importable there: the
venv sees only what the wheel installed.

Slow (it installs torch and the dependencies into a new venv, from pip's cache and indexes).
"""

import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("deepspeed", "transformers", "wandb", "tensorboard", "torch-fidelity")

# Runs inside the fresh venv: every command's --help, a sample of the quickstart run, and the
# one-line exit 2 of each missing extra, in one process (one torch import). Prints JSON.
IN_VENV = r"""
import contextlib, io, json, sys
import distgan
from distgan.cli import COMMANDS, main

config, run, out = sys.argv[1:4]
result = {"distgan": distgan.__file__, "help": {}, "extras": {}}
for command in COMMANDS:
    with contextlib.redirect_stdout(io.StringIO()) as text:
        try:
            main([command, "--help"])
        except SystemExit as stop:
            result["help"][command] = [stop.code, text.getvalue().splitlines()[0]]
result["sample"] = main(["sample", "--checkpoint", run, "--num", "4", "--out", out])
for extra, override in {
    "deepspeed": ["distributed.backend=deepspeed"],
    "wandb": ["log.trackers=[wandb]", "log.wandb.mode=offline"],
}.items():
    args = ["train", "--config", config, "train.steps=2", f"train.out_dir={run}-{extra}", *override]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(args)
    result["extras"][extra] = [code, err.getvalue()]
print(json.dumps(result))
"""


def run(args, cwd, env, timeout=600):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_without_extras_trains_the_quickstart_and_names_each_missing_extra(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    phases = [("start", time.monotonic())]  # printed at the end: where the time goes
    # Build from a copy of what the wheel is made of (no stale build/ of the checkout can leak in);
    # without build isolation: setuptools (>= 77, a dependency of torch) is already here.
    src = tmp_path / "src"
    shutil.copytree(REPO / "distgan", src / "distgan", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    run([*pip_wheel, "-w", str(tmp_path / "dist"), str(src)], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("distgan-*.whl")

    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=False)  # this interpreter's pip installs into it (--python)
    pip = [sys.executable, "-m", "pip", "--python", str(fresh / "bin" / "python")]
    phases.append(("wheel and venv", time.monotonic()))
    run([*pip, "install", "-q", "--no-compile", f"torch=={torch.__version__.split('+')[0]}"], tmp_path, env)
    phases.append(("torch", time.monotonic()))  # as .ci/run: the CPU torch first, then the project
    run([*pip, "install", "-q", "--no-compile", str(wheel)], tmp_path, env)
    phases.append(("distgan and its dependencies", time.monotonic()))
    installed = run([*pip, "list", "--format=json"], tmp_path, env)
    names = {p["name"].lower().replace("_", "-") for p in json.loads(installed)}
    assert "distgan" in names and not names & set(EXTRAS_ONLY), sorted(names & set(EXTRAS_ONLY))

    listing = run([str(fresh / "bin" / "distgan"), "--help"], tmp_path, env)
    assert all(f"\n  {c} " in listing for c in ("train", "sample", "evaluate", "export", "prepare", "bench"))

    config, out_dir = REPO / "configs" / "quickstart.yaml", tmp_path / "quick"
    train = [str(fresh / "bin" / "distgan"), "train", "--config", str(config), "train.steps=2"]
    log = run([*train, "log.every=1", f"train.out_dir={out_dir}"], tmp_path, env)
    assert "done: 2 steps" in log, log
    assert (out_dir / "checkpoints" / "latest").read_text().strip() == "step_0000002"

    script = [
        str(fresh / "bin" / "python"),
        "-c",
        IN_VENV,
        str(config),
        str(out_dir),
        str(tmp_path / "s.npz"),
    ]
    result = json.loads(run(script, tmp_path, env).splitlines()[-1])
    assert Path(result["distgan"]).is_relative_to(fresh), result["distgan"]  # the wheel, not the checkout
    phases.append(("commands", time.monotonic()))
    pairs = zip(phases[:-1], phases[1:], strict=True)
    print(", ".join(f"{name} {end - start:.0f} s" for (_, start), (name, end) in pairs))
    for command, (code, first_line) in result["help"].items():
        assert code == 0 and first_line.startswith("usage: "), (command, first_line)
    assert set(result["help"]) == {"train", "sample", "evaluate", "export", "prepare", "bench"}
    assert result["sample"] == 0 and (tmp_path / "s.npz").is_file()
    for extra, (code, err) in result["extras"].items():
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and f"pip install 'distgan[{extra}]'" in lines[0], (extra, err)
