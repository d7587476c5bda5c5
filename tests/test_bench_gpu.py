"""`python -m distgan.bench gpu --dry-run` checks its own plumbing on CPU: every variant is built and
run for a step, and the JSON has the schema the GPU run will write; the sync counter counts torch's
sync warnings; two processes on one GPU are refused in words (the check runs before any GPU use)."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from distgan.bench import gpu
from distgan.distributed import DistributedError
from distgan.distributed.world import check_gpus_per_machine

NUMBERS = ("images_per_sec", "reference_images_per_sec", "overhead_ratio", "model_gflop_per_iteration")


def test_dry_run_builds_runs_and_reports_every_variant(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu.main(["--dry-run", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["schema"] == gpu.SCHEMA and result["dry_run"] is True and result["device"] == "cpu"
    expected, missing = gpu.variants()
    assert [v["name"] for v in result["variants"]] == [v.name for v in expected]
    assert result["models_without_config"] == missing
    assert {"celeba_wgan/bf16", "celeba_wgan/fp16", "celeba_wgan/bf16/compile", "stylegan2_ffhq256/bf16"} <= {
        v.name for v in expected
    }
    for variant in result["variants"]:
        assert variant["status"] == "ok", variant
        assert all(math.isfinite(variant[k]) and variant[k] > 0 for k in NUMBERS), variant
        assert variant["syncs_per_iteration"] is None and variant["peak_memory_mib"] is None  # CPU: unknown
        assert ("fp16" in variant) == variant["name"].split("/")[1].startswith("fp16")
    fp16 = next(v for v in result["variants"] if v["name"].endswith("/fp16"))
    assert fp16["fp16"]["penalty_finite"] is True and "fp16 ran as fp32" in fp16["note"]
    assert result["two_processes_one_gpu"]["status"] == "skipped"
    fid = result["fid"]  # the fid path timed end to end: every part, shares that add up
    assert fid["status"] == "ok" and fid["key"] == "fid300" and fid["samples"] == 300, fid
    assert all(fid["seconds"][part] > 0 for part in ("generation", "embedding", "statistics"))
    assert sum(fid["share"].values()) == pytest.approx(1.0, abs=0.01)


def test_sync_counter_counts_torch_sync_warnings():
    counter = gpu.SyncCounter(torch.device("cpu"))
    counter.start()
    warnings.warn(f"aten::item: {gpu.SYNC_WARNING}", UserWarning, stacklevel=1)
    warnings.warn(f"aten::nonzero: {gpu.SYNC_WARNING}", UserWarning, stacklevel=1)
    warnings.warn("something else", UserWarning, stacklevel=1)
    counter.stop()
    assert counter.count == 2
    quiet = gpu.SyncCounter(torch.device("cpu"))
    quiet.start()
    quiet.stop()
    assert quiet.count is None  # CPU and nothing seen: unknown, not zero


def test_two_processes_on_one_gpu_are_refused_in_words():
    with pytest.raises(DistributedError, match="2 processes on this machine but 1 GPU"):
        check_gpus_per_machine(2, 1)
    check_gpus_per_machine(2, 2)
    check_gpus_per_machine(4, 0)  # no GPU: CPU processes, nothing to check
