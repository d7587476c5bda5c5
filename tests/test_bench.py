"""The benchmark harness in its tiny CI mode: it runs end to end and reports every row it promises.

Timings are NOT asserted (they belong to `python -m distgan.bench`, on a quiet machine): only that
the table and the JSON hold the expected rows, and that the derived rows are computed from the
measured ones (ratios of the runs actually timed).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MEASURED = [  # rows that must hold a positive number on any machine
    "trainer_images_per_sec",
    "reference_images_per_sec",
    "overhead_ratio",
    "loader_images_per_sec",
    "loader_to_consumption",
    "trainer_real_data_images_per_sec",
    "gp_d_step_ms",
    "plain_d_step_ms",
    "gp_cost_ratio",
    "model_gflop_per_iteration",
    "achieved_tflops",
    "one_process_images_per_sec",
    "two_process_images_per_sec",
    "weak_scaling_efficiency",
    "stop_flag_allreduce_us",
    "buffer_allreduce_us",
    "collectives_fraction",
    "gradient_allreduce_us",
    "gradient_allreduce_fraction",
    "overhead_ratio_cpu_time",
    "weak_scaling_efficiency_cpu_time",
    "peak_rss_mib_one_process",
    "peak_rss_mib_two_process",
    "peak_rss_mib_bench",
]
GPU_ONLY = ["gpu_peak_mib_trainer", "gpu_peak_mib_reference", "mfu"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_tiny_bench_prints_table_and_writes_every_row(tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "distgan.bench", "--config", "configs/quickstart.yaml", "--tiny"]
    done = subprocess.run(
        [*command, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert set(MEASURED + GPU_ONLY) <= set(rows), sorted(set(MEASURED + GPU_ONLY) - set(rows))
    for key in MEASURED:
        value = rows[key]["value"]
        assert isinstance(value, float) and value > 0, (key, value)
        assert rows[key]["label"] in done.stdout, f"table lacks the row {rows[key]['label']!r}"

    def value(key):
        return rows[key]["value"]

    # derived rows are the ratios of what was measured (one repeat in tiny mode)
    assert value("overhead_ratio") == pytest.approx(
        value("trainer_images_per_sec") / value("reference_images_per_sec")
    )
    assert value("weak_scaling_efficiency") == pytest.approx(
        value("two_process_images_per_sec") / (2 * value("one_process_images_per_sec"))
    )
    assert value("loader_to_consumption") == pytest.approx(
        value("loader_images_per_sec") / value("trainer_images_per_sec")
    )
    assert value("gp_cost_ratio") == pytest.approx(value("gp_d_step_ms") / value("plain_d_step_ms"))
    for key, target in (
        ("overhead_ratio", 0.97),
        ("weak_scaling_efficiency", 0.85),
        ("loader_to_consumption", 3),
    ):
        assert rows[key]["target"] == target and rows[key]["met"] == (value(key) >= target)
    assert result["settings"]["tiny"] and result["environment"]["threads"] == 1
