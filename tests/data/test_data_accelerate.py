"""A real 2-process `accelerate launch` reads a local parquet source through the streaming path."""

from __future__ import annotations

import json

import pytest
from data_helpers import cfg_for, image_keys

from distgan.data import real_examples
from tests.launching import REPO, accelerate_launch, run


@pytest.mark.slow
def test_two_process_accelerate_launch_reads_disjoint_complete_shares(celeba_dir, tmp_path):
    # 126 rows in 3 files, 2 processes: split by examples, 63 per process = 9 local batches of 7.
    cmd = accelerate_launch(
        2,
        str(REPO / "tests" / "data" / "accelerate_reader.py"),
        "--path",
        str(celeba_dir),
        "--out",
        str(tmp_path),
        "--batches",
        "9",
    )
    run(cmd, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2], "accelerate did not form a 2-process world"
    assert all(r["shapes"] == [[7, 3, 64, 64]] for r in ranks)
    assert all("split by examples" in r["describe"] for r in ranks)
    assert all((r["state"]["epoch"], r["state"]["index"]) == (0, 63) for r in ranks)
    a, b = (set(r["keys"]) for r in ranks)
    assert len(a) == len(b) == 63 and not a & b
    everything = set(
        image_keys(
            real_examples(
                cfg_for("data.source=parquet", f"data.path={celeba_dir}", config="configs/celeba_dcgan.yaml"),
                126,
            ).images
        )
    )
    assert a | b == everything
