"""Worker for test_distributed_evaluation.py: evaluate one fixed generator with any number of processes.

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 tests/metrics/metrics_eval_worker.py OUT.json

The generator serves real MNIST digits plus seeded noise (so precision, recall and
class coverage are far from 0 and 1, and a wrong gather order or dropped row shows).
"""

from __future__ import annotations

import json
import sys

import torch

from distgan.config import load_config
from distgan.data import real_examples
from distgan.metrics import evaluate_generator

METRICS = ["fd", "kid", "precision_recall", "class_coverage"]
NUM = 700  # 3 chunks of 250/250/200: ranks get unequal shares, the last one partial


class NoisyDigits(torch.nn.Module):
    num_classes = 0

    def __init__(self, pool: torch.Tensor) -> None:
        super().__init__()
        self.pool = pool

    def sample(self, n, labels=None, seed=None):
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, len(self.pool), (n,), generator=g)
        return (self.pool[idx] + 0.1 * torch.randn(n, *self.pool.shape[1:], generator=g)).clamp(-1, 1)


def evaluate(rank: int = 0, world_size: int = 1, gather=None) -> dict:
    cfg = load_config("configs/quickstart.yaml")
    pool = real_examples(cfg, 3000).images[1000:]  # not the first NUM, which are the reference set
    return evaluate_generator(
        NoisyDigits(pool), cfg, METRICS, NUM, rank=rank, world_size=world_size, gather=gather, kid_subsets=5,
        real=real_examples(cfg, NUM),
    )  # fmt: skip


def main() -> None:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    result = evaluate(accelerator.process_index, accelerator.num_processes, accelerator.gather)
    if accelerator.is_main_process:
        result["world_size"] = accelerator.num_processes
        with open(sys.argv[1], "w") as f:
            json.dump(result, f)
    else:
        assert result == {}, "only the main process returns metrics"
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()
