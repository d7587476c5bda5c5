"""Host memory and CPU time of evaluation's real side and of the FID path.

    nice -n 10 python benchmarks/eval_memory.py            # writes benchmarks/results/eval_memory.json
    nice -n 10 python benchmarks/eval_memory.py --quick    # N = 1k, 5k only

Memory: peak RSS of one process streaming the real side (decode, embed, float64 moments) for
N = 1k, 5k, 20k and 50k images at 64 px from a local parquet stand-in dataset (50k PNGs of random
8x8 colour blocks), each N in a fresh process, FD only (statistics, no rows kept). The feature
network is a stand-in TorchScript module with the FID Inception's call convention and 2048-d
output (average-pool + a fixed linear map): Inception's weights cannot be downloaded here, and its
memory is a constant of the network (about 100 MB of weights), not of N.

Distances: peak RSS of blocked precision/recall and density/coverage at N = 50,000 real and
generated features (`--distances`; 16-d features keep the run to minutes on a CPU: the blocks'
memory depends on N, not on the feature width), against the 20 GB two full 50k x 50k float64
matrices would take.

Time: the fid path at 32 px, on CPU: generation (the quickstart-size DCGAN generator), embedding
(the stand-in network, so this share is a lower bound; the GPU check `python -m distgan.bench gpu`
times fid10k with the real network) and statistics (moments + the 2048-d Fréchet distance), for a
few thousand samples, extrapolated linearly to 50k (the statistics' eigendecompositions are a
constant, not linear).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "eval_memory.json"
SIZES = (1_000, 5_000, 20_000, 50_000)


def write_standin(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    writer = None
    for start in range(0, rows, 5000):
        images = []
        for _ in range(min(5000, rows - start)):
            blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(blocks).resize((64, 64), Image.NEAREST).save(buffer, format="PNG")
            images.append({"bytes": buffer.getvalue(), "path": None})
        table = pa.table({"image": images})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def write_network(path: Path) -> None:
    import torch

    class StandIn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.project = torch.nn.Linear(3 * 8 * 8, 2048)

        def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False):
            pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 8).flatten(1)
            return self.project(pooled)

    torch.manual_seed(0)
    torch.jit.script(StandIn()).save(str(path))


def config(data: Path, network: Path, resolution: int):
    from distgan.config import load_config

    return load_config(None, [
        "data.source=parquet", f"data.path={data}", f"data.resolution={resolution}", "model.channels=3",
        f"eval.inception_weights={network}", "eval.metrics=[fd]",
    ])  # fmt: skip


def measure_one(data: Path, network: Path, count: int) -> dict:
    """In this (fresh) process: the real side of `count` rows; peak RSS before and after."""
    from distgan.data import evaluation_stream
    from distgan.metrics import prepare_evaluation

    cfg = config(data, network, 64)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    reference = prepare_evaluation(cfg, ["fd"], count, real_stream=evaluation_stream(cfg, count))
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert reference.num_real == count and reference.real_feats is None
    return {"n": count, "peak_rss_mb": round(after, 1), "rss_after_imports_mb": round(before, 1),
            "real_side_mb": round(after - before, 1), "seconds": round(seconds, 1)}  # fmt: skip


def measure_distances(count: int) -> dict:
    """In this (fresh) process: precision/recall and density/coverage of `count` x `count` features."""
    import torch

    from distgan.metrics import density_coverage, precision_recall

    generator = torch.Generator().manual_seed(0)
    real = torch.randn(count, 16, generator=generator, dtype=torch.float64)
    fake = torch.randn(count, 16, generator=generator, dtype=torch.float64) + 0.2
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    values = {**precision_recall(real, fake), **density_coverage(real, fake)}
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": count, "dims": 16, "peak_rss_mb": round(after, 1), "rss_before_mb": round(before, 1),
            "seconds": round(seconds, 1), "full_matrix_mb": round(count * count * 8 / 2**20, 1),
            "values": {k: round(v, 4) for k, v in values.items()}}  # fmt: skip


def time_fid_path(network: Path, samples: int) -> dict:
    import torch

    from distgan.metrics.extractors import build_extractor
    from distgan.metrics.frechet import frechet_distance_from_statistics
    from distgan.metrics.moments import Moments
    from distgan.models import build_generator

    cfg = config(Path("unused"), network, 32)
    generator = build_generator(cfg.model, cfg.sample_shape).eval()
    extractor = build_extractor("inception", cfg.sample_shape, "cpu", str(network))
    moments, times = Moments(2048), {"generation": 0.0, "embedding": 0.0, "statistics": 0.0}
    with torch.no_grad():
        for start in range(0, samples, 250):
            t0 = time.perf_counter()
            images = generator.sample(min(250, samples - start), seed=start)
            t1 = time.perf_counter()
            features, _ = extractor.embed(images)
            t2 = time.perf_counter()
            moments.add(features)
            times["generation"] += t1 - t0
            times["embedding"] += t2 - t1
            times["statistics"] += time.perf_counter() - t2
    t0 = time.perf_counter()
    mean, cov = moments.statistics()
    frechet_distance_from_statistics(mean, cov, mean + 0.1, cov)
    final = time.perf_counter() - t0
    linear = {part: seconds * 50_000 / samples for part, seconds in times.items()}
    total_50k = sum(linear.values()) + final
    return {
        "samples_timed": samples, "seconds": {k: round(v, 2) for k, v in times.items()},
        "final_statistics_seconds": round(final, 2),
        "extrapolated_50k_seconds": {**{k: round(v, 1) for k, v in linear.items()},
                                     "final_statistics": round(final, 1), "total": round(total_50k, 1)},
        "share_50k": {k: round(v / total_50k, 3) for k, v in {**linear, "final_statistics": final}.items()},
        "threads": torch.get_num_threads(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/distgan_eval_memory"))
    parser.add_argument("--quick", action="store_true", help="N = 1k and 5k only")
    parser.add_argument("--time-samples", type=int, default=2000, help="samples in the timed fid path")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)  # child: DATA NETWORK N
    parser.add_argument("--distances", type=int, metavar="N", help="only the blocked distances at N")
    args = parser.parse_args(argv)
    if args.distances:
        row = measure_distances(args.distances)
        print(row)
        result = json.loads(OUT.read_text()) if OUT.exists() else {}
        result["distances"] = {
            **row,
            "command": f"nice -n 10 python benchmarks/eval_memory.py --distances {args.distances}",
        }
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    if args.measure:
        print(json.dumps(measure_one(Path(args.measure[0]), Path(args.measure[1]), int(args.measure[2]))))
        return 0
    sizes = SIZES[:2] if args.quick else SIZES
    args.work.mkdir(parents=True, exist_ok=True)
    data, network = args.work / f"standin_{max(sizes)}.parquet", args.work / "standin_inception.pt"
    if not data.exists():
        write_standin(data, max(sizes))
    write_network(network)
    rows = []
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    for n in sizes:
        result = subprocess.run([sys.executable, __file__, "--measure", str(data), str(network), str(n)],
                                capture_output=True, text=True, env=env, check=True)  # fmt: skip
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    timing = time_fid_path(network, args.time_samples)
    print(timing)
    result = {
        "what": "peak RSS of the real side (FD: statistics only) at 64 px; fid path CPU time at 32 px",
        "dataset": f"local parquet stand-in, {max(sizes)} PNGs of random 8x8 colour blocks at 64 px",
        "network": "stand-in TorchScript, FID Inception call convention, 2048-d features",
        "real_side": rows,
        "growth_mb_from_smallest_to_largest": round(rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1),
        "fid_path_32px": timing,
        "command": "nice -n 10 python benchmarks/eval_memory.py" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
