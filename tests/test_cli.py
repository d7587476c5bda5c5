"""End to end through the command line: train -> run directory -> sample -> load_generator."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import TINY


def run(*args, timeout=300):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "quick"
    result = run(
        "-m",
        "distgan.train",
        "--config",
        "configs/quickstart.yaml",
        *TINY,
        "train.steps=4",
        "checkpoint.every=2",
        "log.every=2",
        "log.sample_every=2",
        f"train.out_dir={out}",
    )
    return out, result


def test_train_writes_the_run_directory_contract(quickstart_run):
    out, result = quickstart_run
    assert "step 2/4" in result.stdout and "img/s" in result.stdout
    assert (out / "config.yaml").is_file()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]
    for key in ("images_seen", "loss_d", "loss_g", "lr_d", "lr_g", "images_per_sec", "wall_time"):
        assert key in lines[-1], key
    assert lines[-1]["images_seen"] == 4 * 16
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert latest == "step_0000004"
    ckpt = out / "checkpoints" / latest
    for name in (
        "generator.safetensors",
        "generator_ema.safetensors",
        "discriminator.safetensors",
        "meta.json",
    ):
        assert (ckpt / name).is_file(), name
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["step"] == 4 and meta["world_size"] == 1 and meta["images_seen"] == 64
    assert "config_hash" in meta and "torch" in meta["versions"]


def test_sample_npz_contract(quickstart_run, tmp_path):
    out, _ = quickstart_run
    run("-m", "distgan.sample", "--checkpoint", str(out), "--num", "10", "--out", str(tmp_path / "s.npz"))
    arrays = np.load(tmp_path / "s.npz")
    assert set(arrays.files) == {"images", "labels"}  # the quickstart is class-conditional
    assert arrays["labels"].dtype == np.int64 and arrays["labels"].tolist() == [*range(10)]
    images = arrays["images"]
    assert images.dtype == np.uint8 and images.shape == (10, 28, 28, 1)
    assert images.max() > images.min()
    run(
        "-m",
        "distgan.sample",
        "--checkpoint",
        str(out / "checkpoints" / "step_0000002"),
        "--num",
        "9",
        "--out",
        str(tmp_path / "grid.png"),
    )
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_generator_in_a_fresh_process(quickstart_run):
    out, _ = quickstart_run
    code = (
        "import sys, distgan; g = distgan.load_generator(sys.argv[1]); "
        "x = g.sample(3, seed=0); y = g.sample(3, seed=0); "
        "assert not g.training and g.latent_dim == 100; "
        "assert tuple(x.shape) == (3, 1, 28, 28) and float(x.abs().max()) <= 1.0; "
        "assert bool((x == y).all()); print('ok', 'distgan.trainer' in sys.modules)"
    )
    result = run("-c", code, str(out))
    assert result.stdout.strip() == "ok False"  # loaded without importing the trainer


def test_sample_rejects_bad_checkpoint(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "distgan.sample",
            "--checkpoint",
            str(tmp_path),
            "--num",
            "2",
            "--out",
            "x.npz",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "not a checkpoint; expected a run directory with checkpoints/latest" in result.stderr


def test_debug_mode_runs_one_process_few_steps(tmp_path):
    out = tmp_path / "dbg"
    result = run(
        "-m",
        "distgan.train",
        "--config",
        "configs/quickstart.yaml",
        "--debug",
        "model.g_width=8",
        "model.d_width=8",
        "data.batch_size=8",
        f"train.out_dir={out}",
    )
    assert "parameters" in result.stdout  # verbose: model summaries
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))
    resolved = (out / "config.yaml").read_text()
    assert "detect_anomaly: true" in resolved


def test_overrides_may_follow_options():
    from distgan.train import parse_args

    args = parse_args(["--config", "c.yaml", "train.steps=3", "--resume", "never", "log.every=1", "--debug"])
    assert args.overrides == ["train.steps=3", "log.every=1"]
    assert (args.resume, args.debug) == ("never", True)
