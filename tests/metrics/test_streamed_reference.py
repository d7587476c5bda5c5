"""The real side streamed: statistics of the whole split in one pass, sharded equal to one process,
a cache that is never trusted blindly, sample counts too small to mean anything refused."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from distgan.config import load_config
from distgan.data import evaluation_stream, real_examples
from distgan.data.sources import EMBEDDED_PATH
from distgan.metrics import MetricsError, prepare_evaluation
from distgan.metrics.moments import Moments
from tests.metrics.thread_world import run_ranks

ROWS = 130  # uneven over 2 ranks and over the 256-row batches' remainder


@pytest.fixture(scope="module")
def local_split(tmp_path_factory):
    """A local parquet stand-in for a dataset split: the first ROWS rows of the embedded MNIST sample."""
    path = tmp_path_factory.mktemp("split") / "train.parquet"
    pq.write_table(pq.read_table(EMBEDDED_PATH).slice(0, ROWS), path, row_group_size=50)
    return path


def config(path, *overrides):
    return load_config(
        None, ["data.source=parquet", f"data.path={path}", "eval.extractor=raw", "eval.metrics=[fd,kid]",
               *overrides],
    )  # fmt: skip


def test_running_moments_equal_one_pass_statistics_to_float64_rounding():
    rows = np.random.default_rng(0).normal(3.0, 2.0, size=(1001, 7))
    moments, other = Moments(7), Moments(7)
    for start in range(0, 600, 97):  # uneven batches, then a second "process" merged in
        moments.add(rows[start : min(start + 97, 600)])
    other.add(rows[600:])
    moments.merge(other.count, other.mean, other.scatter)
    mean, cov = moments.statistics()
    assert moments.count == 1001
    np.testing.assert_allclose(mean, rows.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(cov, np.cov(rows, rowvar=False), rtol=1e-12)


def test_full_reference_equals_the_whole_split_in_one_pass_and_two_ranks_equal_one(local_split):
    cfg = config(local_split, "eval.reference=full", "eval.num=100")
    whole = real_examples(cfg, ROWS).images.reshape(ROWS, -1).double().numpy()

    def prepare(rank, world_size, gather):
        return prepare_evaluation(cfg, ["fd", "kid"], 100, rank, world_size, gather,
                                  real_stream=evaluation_stream(cfg, None))  # fmt: skip

    one = prepare(0, 1, None)
    assert one.num_real == ROWS and one.tag == "_full"
    np.testing.assert_allclose(one.real_stats[0], whole.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(one.real_stats[1], np.cov(whole, rowvar=False), rtol=1e-10, atol=1e-13)
    assert torch.equal(one.real_feats.double(), torch.from_numpy(whole))  # rows in file order
    two = run_ranks(2, prepare)
    for ref in two:  # every rank holds the same reference
        assert torch.equal(ref.real_feats, one.real_feats) and ref.num_real == ROWS
        np.testing.assert_allclose(ref.real_stats[1], one.real_stats[1], rtol=1e-12, atol=1e-14)


def test_a_sampled_reference_is_the_same_rows_on_one_or_two_ranks(local_split):
    cfg = config(local_split, "eval.reference=60")
    stream = evaluation_stream(cfg, 60)
    single = [(i, x) for i, x in stream(0, 1)]
    rows = torch.cat([i for i, _ in single])
    assert len(rows) == 60 and not torch.equal(rows, torch.arange(60))  # a random sample, not the head
    split = [torch.cat([i for i, _ in stream(r, 2)]) for r in range(2)]
    assert torch.equal(torch.cat(split), rows)
    assert torch.cat([x for _, x in single]).dtype == torch.uint8  # streamed as 8-bit images


def test_fd_from_statistics_only_keeps_no_feature_rows(local_split):
    cfg = config(local_split, "eval.reference=full", "eval.metrics=[fd]")
    ref = prepare_evaluation(cfg, ["fd"], 100, real_stream=evaluation_stream(cfg, None))
    assert ref.real_feats is None and ref.num_real == ROWS


def cached_files(directory):
    return sorted(directory.glob("*.safetensors")), sorted(directory.glob("*.json"))


def test_a_broken_cache_entry_is_named_in_a_warning_and_computed_again(local_split, tmp_path):
    cfg = config(local_split, "eval.reference=60")
    reads = []

    def stream(rank, world_size):
        reads.append(1)
        return evaluation_stream(cfg, 60)(rank, world_size)

    def prepare():
        return prepare_evaluation(cfg, ["fd", "kid"], 100, real_stream=stream, cache_dir=tmp_path)

    first = prepare()
    (tensors,), (meta,) = cached_files(tmp_path)
    prepare()
    assert reads == [1]  # reused

    tensors.write_bytes(tensors.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match=f"reference cache {tensors}: unreadable"):
        again = prepare()
    assert reads == [1, 1] and torch.equal(again.real_feats, first.real_feats)

    record = json.loads(meta.read_text())
    record["num_real"] = 59  # a row count that disagrees with its key
    meta.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="holds 59 rows, its key says 60"):
        prepare()
    assert reads == [1, 1, 1]


def test_nan_in_cached_real_features_is_blamed_on_the_cache_not_the_generator(local_split, tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = config(local_split, "eval.reference=60")
    prepare_evaluation(cfg, ["fd", "kid"], 100, real_stream=evaluation_stream(cfg, 60), cache_dir=tmp_path)
    (tensors,), _ = cached_files(tmp_path)
    stored = load_file(str(tensors))
    stored["features"][3, 5] = float("nan")
    save_file(stored, str(tensors))
    with pytest.warns(UserWarning, match=f"{tensors}: the cached real features hold NaN"):
        ref = prepare_evaluation(cfg, ["fd", "kid"], 100, real_stream=evaluation_stream(cfg, 60),
                                 cache_dir=tmp_path)  # fmt: skip
    assert torch.isfinite(ref.real_feats).all()


def test_nan_in_fresh_real_features_names_the_data_not_the_generator(local_split):
    cfg = config(local_split, "eval.reference=60")

    def poisoned(rank, world_size):
        for rows, images in evaluation_stream(cfg, 60)(rank, world_size):
            images = images.float()
            images[0, 0, 0, 0] = float("nan")
            yield rows, images

    with pytest.raises(MetricsError, match="real features .*data.path=.* NaN or inf: .*not the generator"):
        prepare_evaluation(cfg, ["fd", "kid"], 100, real_stream=poisoned)


@pytest.mark.parametrize(("metric", "floor"), [("kid", 50), ("precision_recall", 30), ("fd", 10)])
def test_sample_counts_too_small_to_mean_anything_are_refused(metric, floor, local_split):
    cfg = config(local_split, f"eval.metrics=[{metric}]")
    with pytest.raises(
        MetricsError, match=f"metric '{metric}' needs at least {floor} samples per side, got 5"
    ):
        prepare_evaluation(cfg, [metric], 5, real_stream=evaluation_stream(cfg, 5))
    prepare_evaluation(cfg, [metric], floor, real_stream=evaluation_stream(cfg, floor))  # the floor is fine
