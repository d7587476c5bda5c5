"""The scaling model's overlap and compression rules (benchmarks/scaling_model.py), by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from scaling_model import FIRST_BUCKET_BYTES, Layer, Network, allreduce_s, buckets, exposed_comm_s, wire_bytes  # noqa: E402

LINK = (1e9, 0.0)  # 1 GB/s, no latency: an all-reduce of S bytes on 2 GPUs takes S / 1e9 s


def test_buckets_follow_ddp_first_bucket_then_cap():
    mib = 2**18  # float32 values per MiB
    network = Network([Layer(((mib // 2,),), 1.0), Layer(((mib,),), 2.0), Layer(((3 * mib,),), 3.0)])
    got = buckets(network, bucket_bytes=4 * 2**20)
    assert FIRST_BUCKET_BYTES == 2**20
    # 0.5 MiB is under the first bucket's 1 MiB, 1.5 MiB closes it; the 3 MiB tensor opens the next.
    assert [(shapes, done) for shapes, done in got] == [
        ([(mib // 2,), (mib,)], 3.0),
        (
            [
                (3 * mib,),
            ],
            6.0,
        ),
    ]


def test_exposed_communication_with_and_without_overlap():
    # Two buckets of 1e6 bytes (1 ms each on LINK at p=2), ready at 1 ms and 10 ms of a 10 ms backward.
    bucket_list = [([(250_000,)], 1.0), ([(250_000,)], 10.0)]
    serial = exposed_comm_s(bucket_list, 1000.0, 1.0, 2, LINK, "none", overlap=False)
    overlapped = exposed_comm_s(bucket_list, 1000.0, 1.0, 2, LINK, "none", overlap=True)
    assert serial == pytest.approx(2e-3)  # both after the backward
    assert overlapped == pytest.approx(1e-3)  # the first hides under the backward, the last cannot
    # One bucket: nothing to overlap with.
    one = [([(500_000,)], 10.0)]
    assert exposed_comm_s(one, 1000.0, 1.0, 2, LINK, "none", overlap=True) == pytest.approx(2e-3)


def test_compression_wire_bytes():
    conv = (512, 256, 4, 4)  # PowerSGD rank 1 sends 512 + 4096 values instead of 512 * 4096
    assert wire_bytes([conv], "none") == (4.0 * 512 * 4096, 1)
    assert wire_bytes([conv], "bf16") == (2.0 * 512 * 4096, 1)
    assert wire_bytes([conv], "powersgd") == (4.0 * (512 + 4096), 3)
    assert wire_bytes([(512,)], "powersgd") == (4.0 * 512, 3)  # vectors go uncompressed
    assert wire_bytes([(3, 3)], "powersgd") == (36.0, 3)  # rank 1 of 3x3 (6 values) would not halve 9


def test_allreduce_cost_terms():
    assert allreduce_s(8e9, 2, 1e9, 0.0) == pytest.approx(8.0)  # 2 (p-1)/p S/B
    assert allreduce_s(0.0, 8, 1e9, 1e-5, collectives=3) == pytest.approx(3 * 2 * 3 * 1e-5)
