"""README.md's commands, run as written: the quickstart chain (train, sample, evaluate, export,
load, resume), the Python block, and the multi-GPU lines on CPU (`ACCELERATE_USE_CPU=1`, the same
flags with 2 processes, 127.0.0.1 as the head node). Only `train.steps` is shortened. Every other
command of the README names the test that covers it, so a new command cannot go untested.
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.launching import cpu_env, free_port

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
STEPS = "train.steps=2"

# Run in one process, in this order, in one directory (each needs the one before it).
QUICKSTART = [
    "distgan train --config configs/quickstart.yaml",
    "distgan sample --checkpoint runs/quickstart --num 64 --out samples.png",
    "distgan evaluate --checkpoint runs/quickstart --num 1000",
    "distgan export --checkpoint runs/quickstart --out exports/quickstart",
    "distgan sample --checkpoint exports/quickstart --num 16 --out loaded.png",
    "distgan train --config configs/quickstart.yaml train.steps=4000",
    "distgan train --config configs/mnist_best.yaml",
]
ONE_NODE = (
    "accelerate launch --config_file accelerate_config.yaml --num_processes 8 -m distgan.train "
    "--config configs/mnist_best.yaml"
)
TWO_NODES = (
    "accelerate launch --multi_gpu --num_machines 2 --machine_rank 0 --num_processes 16 "
    "--main_process_ip HEAD_IP --main_process_port 29500 -m distgan.train --config configs/mnist_best.yaml"
)
# Commands run elsewhere, or not runnable here, and why.
ELSEWHERE = {
    "accelerate launch --multi_gpu --num_processes 8 -m distgan.train --config configs/mnist_best.yaml": (
        "the 2-node line below runs these flags; tests/distributed launches --multi_gpu --num_processes 2"
    ),
    "python3 -m venv .venv": "an install: tests/test_fresh_install.py installs the wheel in a fresh venv",
    ". .venv/bin/activate": "an install step",
    "pip install torch==2.13.0": "an install step (.ci/run runs it)",
    "pip install -e .": "an install: tests/test_fresh_install.py",
    'pip install -e ".[dev,deepspeed,wandb,tensorboard]"': "the test install: the same extras as .ci/run",
    "python -m pytest -q": "the test command: .ci/run runs exactly this",
    "git clone <this repository's URL> distgan": "needs the network",
    "cd distgan": "part of the clone",
    "distgan train --config configs/celeba_dcgan.yaml data.source=imagefolder data.path=/data/my_images "
    "train.out_dir=runs/mine": "your data: tests/data covers the imagefolder source",
    "distgan train --config configs/celeba_dcgan.yaml data.source=hub data.path=nielsr/CelebA-faces": (
        "needs the Hub: tests/data covers hub ids through local files"
    ),
    "distgan train --config configs/celeba_dcgan.yaml data.source=parquet data.path='/data/celeba/*.parquet'": (
        "your data: tests/data covers parquet"
    ),
    "distgan prepare --config configs/celeba_dcgan.yaml --out data/celeba64 --num-shards 16": (
        "your data: tests/data covers prepare"
    ),
    "distgan train --config configs/celeba_dcgan.yaml data.source=prepared data.path=data/celeba64": (
        "your data: tests/data covers prepared shards"
    ),
    "accelerate launch --use_deepspeed --zero_stage 2 --num_processes 8 -m distgan.train "
    "--config configs/celeba_resnet.yaml": "CelebA from the Hub: tests/distributed runs ZeRO-2 on CPU",
    "sbatch --nodes=2 --gpus-per-node=8 launch/slurm_multinode.sbatch configs/celeba_resnet.yaml "
    "train.steps=100000": "Slurm: tests/slurm submits these scripts to a real 2-node Slurm",
    "sbatch --gpus-per-node=8 launch/slurm_single.sbatch configs/mnist_best.yaml": "Slurm: tests/slurm",
    "distgan evaluate --checkpoint runs/celeba --extractor inception --inception-weights auto --num 50000": (
        "downloads the FID weights: tests/metrics checks auto offline"
    ),
    "distgan export --checkpoint runs/quickstart --out exports/quickstart --push-to-hub you/mnist-quickstart": (
        "the Hub: tests/test_export.py pushes to a local stand-in Hub"
    ),
    "distgan sample --checkpoint you/mnist-quickstart --num 16 --out from_hub.png": (
        "the Hub: tests/test_export.py loads by repo id from a stand-in Hub"
    ),
}


def readme_commands() -> list[str]:
    """Every shell command of the README's bash blocks (`a && b` is two), comments removed."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = re.split(r"\s{2,}#", line)[0].strip()
            if line and not line.startswith("#"):
                commands += [part.strip() for part in line.split(" && ")]
    return commands


def python_block() -> str:
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    return block


def test_every_readme_command_is_run_here_or_names_what_covers_it():
    run_here = {*QUICKSTART, ONE_NODE, TWO_NODES}
    commands = readme_commands()
    assert not [c for c in commands if c not in run_here and c not in ELSEWHERE]
    assert run_here <= set(commands), sorted(run_here - set(commands))


def test_the_readme_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    (block,) = [b for b in re.findall(r"```bash\n(.*?)```", README, re.S) if "pytest" in b]
    assert block.strip().endswith(" && python -m pytest -q") and "\npython -m pytest -q\n" in ci
    (extras,) = re.findall(r'pip install -e "\.\[([a-z,]+)\]"', block)  # the extras the tests need
    assert re.search(rf'pip install -q -e "\.\[{extras}\]"', ci), extras
    assert len(README.splitlines()) <= 250


def with_steps(command: str) -> list[str]:
    """The command's arguments, with train.steps shortened (added when the README gives none)."""
    args = [a for a in shlex.split(command) if not a.startswith("train.steps=")]
    shortened = "train.steps=3" if "train.steps=" in command else STEPS  # a resume goes one step further
    return args + [shortened] if args[:2] == ["distgan", "train"] or "distgan.train" in args else args


def workdir(path: Path) -> Path:
    """A directory that looks like the repository root to the README's relative paths."""
    path.mkdir()
    (path / "configs").symlink_to(REPO / "configs")
    (path / "accelerate_config.yaml").symlink_to(REPO / "accelerate_config.yaml")
    return path


def env() -> dict:
    return cpu_env(PYTHONPATH=str(REPO))


# `distgan X` is `distgan.cli:main(X)` (the console script); one process saves a torch import per step.
CHAIN = r"""
import json, sys
from accelerate.state import AcceleratorState, GradientState, PartialState
from distgan.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    AcceleratorState._reset_state(True); GradientState._reset_state(); PartialState._reset_state()
    codes.append(main(argv))
exec(sys.argv[2])  # the README's Python block
print(json.dumps({"codes": codes, "shape": list(x.shape), "range": [x.min().item(), x.max().item()]}))
"""


@pytest.mark.slow
def test_the_quickstart_chain_runs_as_written(tmp_path):
    cwd = workdir(tmp_path / "repo")
    argvs = [with_steps(c)[1:] for c in QUICKSTART]
    done = subprocess.run(
        [sys.executable, "-c", CHAIN, json.dumps(argvs), python_block()],
        cwd=cwd, env=env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0] * len(QUICKSTART), result
    assert result["shape"] == [16, 1, 28, 28] and -1 <= result["range"][0] <= result["range"][1] <= 1
    for made in ("samples.png", "loaded.png", "exports/quickstart/README.md", "runs/mnist_best/config.yaml"):
        assert (cwd / made).is_file(), made
    assert (cwd / "runs/quickstart/checkpoints/latest").read_text().strip() == "step_0000003"  # resumed
    (evaluation,) = (cwd / "runs/quickstart/eval").glob("*.json")
    assert "fd1k_mnist_classifier" in json.loads(evaluation.read_text())


def launch(command: str, **replace: str) -> list[str]:
    """A README `accelerate launch` line for 2 CPU processes: `accelerate` run by this Python."""
    for old, new in {
        "--num_processes 8": "--num_processes 2",
        "--num_processes 16": "--num_processes 2",
        **replace,
    }.items():
        command = command.replace(old, new)
    args = with_steps(command)
    assert args[:2] == ["accelerate", "launch"], command
    return [sys.executable, "-m", "accelerate.commands.launch", *args[2:]]


@pytest.mark.slow
def test_the_multi_gpu_lines_run_on_cpu_with_the_same_flags(tmp_path):
    # one node, through accelerate_config.yaml (DDP, bf16)
    cwd = workdir(tmp_path / "one_node")
    done = subprocess.run(launch(ONE_NODE), cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    meta = json.loads((cwd / "runs/mnist_best/checkpoints/step_0000002/meta.json").read_text())
    config = (cwd / "runs/mnist_best/config.yaml").read_text()
    assert meta["world_size"] == 2 and "mixed_precision: bf16" in config

    # 2 nodes: the same line once per node (machine rank 0 and 1), 1 process each, head = this host
    cwd, port = workdir(tmp_path / "two_nodes"), str(free_port())
    nodes = [
        subprocess.Popen(
            launch(
                TWO_NODES,
                HEAD_IP="127.0.0.1",
                **{"29500": port, "--machine_rank 0": f"--machine_rank {rank}"},
            ),
            cwd=cwd,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    meta = json.loads((cwd / "runs/mnist_best/checkpoints/step_0000002/meta.json").read_text())
    assert meta["world_size"] == 2
