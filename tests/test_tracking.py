"""Tracking: metrics.jsonl truncation, wandb offline history (read back from the .wandb file),
resume into the same wandb run, online failure without network, fallback, disabled mode.

Training runs go through `python -m distgan.train` in a subprocess: wandb keeps process-wide
state. No test reaches the network: WANDB_BASE_URL points at a local port nobody listens on.

Look at an offline run's history yourself:  python tests/test_tracking.py RUN_DIR
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from distgan.config import load_config
from distgan.tracking import WANDB_ID_FILE, Tracker, truncate_metrics

REPO = Path(__file__).resolve().parents[1]
TINY_WANDB = [
    "model.g_width=8",
    "model.d_width=8",
    "data.batch_size=16",
    "log.every=1",
    "log.sample_every=2",
    "log.num_samples=16",
]
SCALAR_KEYS = ("loss_d", "loss_g", "d_real", "d_fake", "lr_d", "lr_g", "images_per_sec", "images_seen")


# ------------------------------------------------------------ reading wandb's offline run file


def wandb_records(path: Path):
    """Yield the wandb_internal Record protos of a .wandb file.

    wandb 0.31 has no Python reader; the file is a LevelDB-style log: a 7-byte header
    (b":W&B", magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a 7-byte header
    (crc32 of type+data, length, type FULL=1/FIRST=2/MIDDLE=3/LAST=4)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, f"not a .wandb file: {path}"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if (crc, length, kind) == (0, 0, 0):  # zero padding up to the next block
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, f"bad crc in {path}"
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def offline_history(run_file: Path) -> tuple[list[dict], dict]:
    """(history rows as dicts with nested keys joined by '/', the run record's fields)."""
    rows, run = [], {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            rows.append(row)
        elif kind == "run":
            r = record.run
            config = {item.key: json.loads(item.value_json) for item in r.config.update}
            run = {"id": r.run_id, "project": r.project, "name": r.display_name, "tags": list(r.tags)}
            run["config"] = config
    return rows, run


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def describe(run_dir: Path) -> str:
    """A human summary of every offline run under run_dir (for issue notes)."""
    lines = []
    for offline in offline_runs(run_dir):
        rows, run = offline_history(next(offline.glob("run-*.wandb")))
        images = [r["_step"] for r in rows if r.get("samples/_type") == "image-file"]
        keys = sorted({k for r in rows for k in r if not k.startswith(("_", "samples/"))})
        lines += [
            f"{offline.name}: id={run.get('id')} project={run.get('project')} name={run.get('name')} "
            f"tags={run.get('tags')} config sections={sorted(run.get('config', {}))}",
            f"  steps={[r['_step'] for r in rows]} images at steps {images}",
            f"  scalar keys={keys}",
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ helpers


@pytest.fixture
def wandb_env(tmp_path):
    """Environment for a training subprocess: every wandb path in tmp, server unreachable."""
    with socket.socket() as sock:  # bound but never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
        env.update(
            WANDB_BASE_URL=f"http://127.0.0.1:{sock.getsockname()[1]}",
            WANDB_DIR=str(tmp_path / "wandb_dir"),
            WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"),
            WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"),
            WANDB_DATA_DIR=str(tmp_path / "wandb_data"),
            WANDB_INIT_TIMEOUT="5",
            PYTHONPATH=str(REPO),
        )
        yield env


def train(env: dict, *overrides: str, timeout: int = 180) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        "-m",
        "distgan.train",
        "--config",
        "configs/quickstart.yaml",
        *TINY_WANDB,
        *overrides,
    ]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def metric_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# -------------------------------------------------------------------------------- tests


def test_truncate_metrics_drops_later_steps_and_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss_d": 0.1 * s}) for s in (1, 2, 3, 4)]
    path.write_text("\n".join(lines) + '\n{"step": 5, "loss_d": 0.')  # hard kill mid-write
    assert truncate_metrics(path, 3) == 3
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]
    assert path.read_text().endswith("\n")
    path.write_text("\n".join(lines) + '\n{"step": 5, "lo')
    assert truncate_metrics(path, 10) == 4  # torn line dropped even when its step would be kept
    assert truncate_metrics(tmp_path / "missing.jsonl", 3) == 0


def test_disabled_tracker_writes_history_and_no_wandb_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    cfg = load_config("configs/quickstart.yaml", ["train.steps=3", "log.wandb.mode=disabled"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / WANDB_ID_FILE).write_text("oldrun01\n")  # left by an earlier run in this directory
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 9, "loss_d": 0.0}) + "\n")
    tracker = Tracker(cfg, run_dir, is_main=True, resumed_step=None)  # fresh start: fresh history
    tracker.log(1, {"loss_d": 1.0, "loss_g": 2.0})
    tracker.log_picture(1, "samples", tmp_path / "nothing.png")  # ignored without wandb
    tracker.log_summary(1, {"eval/fd_raw": 3.5, "eval/extractor": "raw"})
    tracker.close()
    assert metric_steps(run_dir) == [1]
    assert json.loads((run_dir / "eval.jsonl").read_text()) | {"wall_time": 0} == {
        "step": 1,
        "eval/fd_raw": 3.5,
        "eval/extractor": "raw",
        "wall_time": 0,
    }
    assert not (run_dir / "wandb").exists() and not (run_dir / WANDB_ID_FILE).exists()
    assert not (tmp_path / "wandb_dir").exists()
    Tracker(cfg, tmp_path / "other", is_main=False, resumed_step=None).log(1, {"loss_d": 1.0})
    assert not (tmp_path / "other").exists()  # only the main process writes


def test_log_adds_gpu_memory_when_cuda_is_in_use(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**30)
    cfg = load_config("configs/quickstart.yaml", ["log.wandb.mode=disabled"])
    tracker = Tracker(cfg, tmp_path, is_main=True, resumed_step=None)
    tracker.log(7, {"loss_d": 1.0})
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert (record["step"], record["gpu_mem_gib"], record["gpu_mem_peak_gib"]) == (7, 1.0, 3.0)
    assert "peak mem 3.00 GiB" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_offline_run_holds_history_and_resume_continues_the_same_run(tmp_path, wandb_env):
    run_dir = tmp_path / "run"
    wandb_flags = [
        "log.wandb.mode=offline",
        "log.wandb.project=distgan-test",
        "log.wandb.tags=[tiny,offline]",
    ]
    first = train(wandb_env, "train.steps=4", f"train.out_dir={run_dir}", *wandb_flags)
    assert first.returncode == 0, first.stdout + first.stderr
    run_id = (run_dir / WANDB_ID_FILE).read_text().strip()
    (offline,) = offline_runs(run_dir)
    assert offline.name.endswith(f"-{run_id}")
    assert f"wandb sync {offline}" in first.stdout  # the upload command is printed at the end
    rows, run = offline_history(offline / f"run-{run_id}.wandb")
    assert (run["id"], run["project"], run["name"], sorted(run["tags"])) == (
        run_id,
        "distgan-test",
        "run",
        ["offline", "tiny"],
    )
    assert run["config"]["train"]["steps"] == 4 and run["config"]["model"]["g_width"] == 8  # resolved config
    assert [r["_step"] for r in rows] == [1, 2, 3, 4]
    jsonl = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row, line in zip(rows, jsonl, strict=True):
        for key in SCALAR_KEYS:
            assert row[key] == pytest.approx(line[key]), key
        assert row["images_seen"] == 16 * row["_step"]
    images = [r for r in rows if r.get("samples/_type") == "image-file"]
    assert [r["_step"] for r in images] == [2, 4]
    assert all((offline / "files" / r["samples/path"]).is_file() for r in images)

    # A requeued job killed after logging step 5 (torn line too) but before a checkpoint.
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "loss_d": 9.0}) + '\n{"step": 6, "loss')
    second = train(wandb_env, "train.steps=6", f"train.out_dir={run_dir}", *wandb_flags)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed from" in second.stdout
    assert (run_dir / WANDB_ID_FILE).read_text().strip() == run_id
    assert metric_steps(run_dir) == [1, 2, 3, 4, 5, 6]
    new = [p for p in offline_runs(run_dir) if p != offline]
    assert len(new) == 1 and new[0].name.endswith(f"-{run_id}")
    rows, run = offline_history(new[0] / f"run-{run_id}.wandb")
    assert (run["id"], run["project"]) == (run_id, "distgan-test") and [r["_step"] for r in rows] == [5, 6]
    assert run["config"]["train"]["steps"] == 6
    assert [r["_step"] for r in rows if r.get("samples/_type") == "image-file"] == [6]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_online_without_server_fails_early_with_a_clear_error(tmp_path, wandb_env):
    wandb_env["WANDB_API_KEY"] = "0" * 40  # a key is configured; the server is what is missing
    run_dir = tmp_path / "run"
    # The bound scales with this machine's present speed: the same command refused at its config
    # (imports and start-up only). wandb's own default would wait 90 s before failing.
    start = time.monotonic()
    assert train(wandb_env, "train.steps=0", f"train.out_dir={run_dir}", timeout=90).returncode == 2
    startup = time.monotonic() - start
    start = time.monotonic()
    result = train(
        wandb_env, "train.steps=2", f"train.out_dir={run_dir}", "log.wandb.mode=online", timeout=90
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stdout + result.stderr
    bound = 3 * startup + 3 * 5 + 10  # generous: 3 x (start-up + the 5 s WANDB_INIT_TIMEOUT) + 10 s
    assert elapsed < bound, f"online failure took {elapsed:.0f} s (start-up {startup:.0f} s)"
    err = result.stderr
    assert "error: log.wandb.mode=online: could not start the wandb run (CommError" in err, err
    assert "WANDB_INIT_TIMEOUT (now 5 s)" in err
    assert "log.wandb.mode=offline" in err and "log.wandb.fallback_to_offline=true" in err
    assert "Traceback" not in err
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").exists()  # no compute


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_online_without_server_falls_back_to_offline_when_configured(tmp_path, wandb_env):
    wandb_env["WANDB_API_KEY"] = "0" * 40
    run_dir = tmp_path / "run"
    result = train(
        wandb_env,
        "train.steps=2",
        f"train.out_dir={run_dir}",
        "log.wandb.mode=online",
        "log.wandb.fallback_to_offline=true",
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "log.wandb.fallback_to_offline=true, logging offline" in result.stdout
    run_id = (run_dir / WANDB_ID_FILE).read_text().strip()
    (offline,) = offline_runs(run_dir)
    rows, run = offline_history(offline / f"run-{run_id}.wandb")
    assert run["id"] == run_id and [r["_step"] for r in rows] == [1, 2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_disabled_training_run_creates_no_wandb_directory(tmp_path, wandb_env):
    run_dir = tmp_path / "run"
    result = train(wandb_env, "train.steps=2", f"train.out_dir={run_dir}", "log.wandb.mode=disabled")
    assert result.returncode == 0, result.stdout + result.stderr
    assert metric_steps(run_dir) == [1, 2]
    assert not (run_dir / "wandb").exists() and not (run_dir / WANDB_ID_FILE).exists()
    assert not Path(wandb_env["WANDB_DIR"]).exists()


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(describe(Path(arg)))
    if len(sys.argv) < 2:
        print(__doc__)
