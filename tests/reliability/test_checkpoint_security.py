"""A resume never runs code from a checkpoint, and `latest` never leads out of the run.

For each backend a tiny run writes a real checkpoint; then EVERY pickle file in it (found by its
magic bytes, not by a list of names, so a new file cannot be forgotten) gets a payload whose
unpickling would create a marker file, and the real CLI resumes from it: exit 2, one error line
naming the file, and the marker never appears.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from distgan.checkpoint import CheckpointError, checkpoint_name, resolve_checkpoint
from distgan.checkpoint.locate import write_manifest
from distgan.distributed.rng_state import load_rng_state, save_rng_state
from distgan.distributed.safe_load import is_pickle_file
from tests.launching import REPO, TINY_OVERRIDES, cpu_env

BACKENDS = {
    "ddp": ["distributed.backend=ddp"],
    "zero1": ["distributed.backend=deepspeed", "distributed.zero_stage=1"],
    "zero2": ["distributed.backend=deepspeed", "distributed.zero_stage=2"],
}
# What each checkpoint must contain as pickles: the walk below may find more, never fewer.
EXPECTED_PICKLES = {
    "ddp": {"state/optimizer.bin", "state/optimizer_1.bin", "state/random_states_0.pkl"},
    **{
        zero: {
            f"state/{engine}/{name}"
            for engine in ("generator", "discriminator")
            for name in ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt")
        }
        for zero in ("zero1", "zero2")
    },
}


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def train_cli(backend: str, out_dir: Path, steps: int) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "distgan.train",
        "--config",
        str(REPO / "configs" / "quickstart.yaml"),
        *TINY_OVERRIDES,
        *BACKENDS[backend],
        "checkpoint.every=2",
        f"train.steps={steps}",
        f"train.out_dir={out_dir}",
    ]
    return subprocess.run(cmd, cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=240)


def pickle_files(checkpoint: Path) -> list[str]:
    return sorted(
        str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.is_file() and is_pickle_file(p)
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """backend -> a run directory holding one real checkpoint at step 2 (trained once per module)."""
    runs = {}

    def get(backend: str) -> Path:
        if backend not in runs:
            out = tmp_path_factory.mktemp(backend) / "run"
            proc = train_cli(backend, out, steps=2)
            assert proc.returncode == 0, proc.stderr[-4000:]
            runs[backend] = out
        return runs[backend]

    return get


# ZeRO-1 writes the same files with the same types as ZeRO-2 (the clean resume above checks that it
# loads): planting in ZeRO-2's keeps the suite short.
CASES = [(backend, name) for backend in ("ddp", "zero2") for name in sorted(EXPECTED_PICKLES[backend])]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_pickle_of_a_checkpoint_is_covered_and_a_clean_resume_works(trained, tmp_path, backend):
    run = tmp_path / "run"
    shutil.copytree(trained(backend), run)
    checkpoint = run / "checkpoints" / checkpoint_name(2)
    found = pickle_files(checkpoint)
    # A pickle this test does not plant a payload in would be an unguarded file: list them all here.
    assert set(found) == EXPECTED_PICKLES[backend], found
    for suffix in (".pt", ".bin", ".pkl"):  # nothing named like a pickle escapes the magic-byte walk
        assert all(str(p.relative_to(checkpoint)) in found for p in checkpoint.rglob(f"*{suffix}"))
    proc = train_cli(backend, run, steps=3)  # the safe loaders accept the real thing
    assert proc.returncode == 0, proc.stderr[-4000:]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend, name", CASES, ids=[f"{b}:{Path(n).parent.name}/{Path(n).name}" for b, n in CASES]
)
def test_payload_in_a_checkpoint_file_is_refused_and_never_runs(trained, tmp_path, backend, name):
    run = tmp_path / "run"
    shutil.copytree(trained(backend), run)
    target = run / "checkpoints" / checkpoint_name(2) / name
    marker = tmp_path / "pwned"
    state = torch.load(target, weights_only=False)  # our own file, written a moment ago
    assert isinstance(state, dict)
    state["x"] = Payload(marker)
    torch.save(state, target)
    write_manifest(run / "checkpoints" / checkpoint_name(2))  # an attacker rewrites the manifest too

    proc = train_cli(backend, run, steps=3)

    assert not marker.exists(), f"the payload in {name} ran"
    assert proc.returncode == 2, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(target) in errors[0], proc.stderr[-2000:]
    assert "refused to load" in errors[0] and "posix.system" in errors[0]


@pytest.mark.slow
def test_bare_pickle_in_place_of_the_rng_file_is_refused(trained, tmp_path):
    """A payload written with plain pickle (not torch.save's zip) is refused the same way."""
    run = tmp_path / "run"
    shutil.copytree(trained("ddp"), run)
    target = run / "checkpoints" / checkpoint_name(2) / "state" / "random_states_0.pkl"
    marker = tmp_path / "pwned"
    target.write_bytes(pickle.dumps({"x": Payload(marker)}, protocol=2))
    write_manifest(target.parent.parent)
    proc = train_cli("ddp", run, steps=3)
    assert not marker.exists()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: {target}: refused to load" in proc.stderr


@pytest.mark.slow
def test_missing_rng_file_is_an_error_not_a_silent_reseed(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained("ddp"), run)
    target = run / "checkpoints" / checkpoint_name(2) / "state" / "random_states_0.pkl"
    target.unlink()
    write_manifest(target.parent.parent)  # consistent manifest: the backend itself must refuse
    proc = train_cli("ddp", run, steps=3)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: {target}: refused to load" in proc.stderr


# --- distgan's own RNG files (DeepSpeed backend): JSON + safetensors ----------------------------------


def test_rng_state_round_trips_exactly(tmp_path):
    import random

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_rng_state(tmp_path, 0)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    load_rng_state(tmp_path, 0)
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1), expected[2])
    assert not any(is_pickle_file(p) for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "file, content",
    [
        ("rng_state_0.json", "{not json"),
        ("rng_state_0.json", '{"python": {"version": 3, "internal": [1, 2], "gauss": null}}'),
        ("rng_state_0.safetensors", "garbage"),
    ],
)
def test_broken_rng_file_is_a_checkpoint_error_naming_it(tmp_path, file, content):
    save_rng_state(tmp_path, 0)
    (tmp_path / file).write_text(content)
    with pytest.raises(CheckpointError, match=rf"{tmp_path / file}: not a usable RNG state file"):
        load_rng_state(tmp_path, 0)


# --- checkpoints/latest names a checkpoint inside this run, never a path ------------------------------


def _run_with_checkpoint(root: Path) -> Path:
    checkpoint = root / "checkpoints" / checkpoint_name(100)
    (checkpoint / "state").mkdir(parents=True)
    (checkpoint / "meta.json").write_text('{"step": 100}')
    write_manifest(checkpoint)
    (root / "checkpoints" / "latest").write_text(checkpoint_name(100) + "\n")
    return checkpoint


def test_latest_with_a_plain_name_resolves(tmp_path):
    checkpoint = _run_with_checkpoint(tmp_path / "run")
    assert resolve_checkpoint(tmp_path / "run") == checkpoint
    assert resolve_checkpoint(tmp_path / "run" / "checkpoints") == checkpoint


@pytest.mark.parametrize(
    "pointer",
    [
        "ABSOLUTE",  # another run's checkpoint, by absolute path
        "../../other/checkpoints/step_0000100",
        "..",
        "sub/step_0000100",
        "./step_0000100",
        "OUTSIDE_LINK",  # a symlink in checkpoints/ that leads out of it
        "OUTSIDE_LINK_NAMED_LIKE_A_CHECKPOINT",
    ],
)
def test_latest_pointing_outside_the_run_is_refused(tmp_path, pointer):
    other = _run_with_checkpoint(tmp_path / "other")  # a complete checkpoint that must not be used
    run = tmp_path / "run"
    _run_with_checkpoint(run)
    (run / "checkpoints" / "sub").mkdir()
    shutil.copytree(other, run / "checkpoints" / "sub" / checkpoint_name(100))
    if pointer == "ABSOLUTE":
        pointer = str(other)
    elif pointer == "OUTSIDE_LINK":
        (run / "checkpoints" / "elsewhere").symlink_to(other)
        pointer = "elsewhere"
    elif pointer == "OUTSIDE_LINK_NAMED_LIKE_A_CHECKPOINT":
        (run / "checkpoints" / checkpoint_name(200)).symlink_to(other)
        pointer = checkpoint_name(200)
    (run / "checkpoints" / "latest").write_text(pointer + "\n")
    with pytest.raises(CheckpointError, match="not a checkpoint name like step_0000100|a link to outside"):
        resolve_checkpoint(run)


@pytest.mark.slow
def test_latest_pointing_outside_the_run_exits_2_through_the_cli(tmp_path):
    other = _run_with_checkpoint(tmp_path / "other")
    run = tmp_path / "run"
    _run_with_checkpoint(run)
    (run / "checkpoints" / "latest").write_text(str(other))
    cmd = [sys.executable, "-m", "distgan.train", "--config", str(REPO / "configs" / "toy_ring.yaml")]
    proc = subprocess.run(
        [*cmd, f"train.out_dir={run}"], cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{run / 'checkpoints' / 'latest'} holds '{other}'" in proc.stderr
