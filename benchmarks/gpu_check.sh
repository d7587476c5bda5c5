#!/usr/bin/env bash
# The one-command GPU check (distgan/bench/gpu.py): one GPU, under 8 minutes, nothing installed
# beyond the README install. Writes benchmarks/results/gpu_check.json; extra arguments pass through
# (e.g. --peak-tflops 989, or --dry-run on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m distgan.bench gpu --out benchmarks/results/gpu_check.json "$@"
