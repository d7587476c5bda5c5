#!/usr/bin/env bash
# Train the same short runs with another commit's code and with this tree; compare the final weights
# bitwise. A refactoring that keeps the training math prints "bitwise equal: True" on every line.
#   bash scripts/bitwise_against.sh COMMIT [OUT_DIR]
set -euo pipefail
commit=$1
out=${2:-/tmp/distgan-bitwise}
here=$(cd "$(dirname "$0")/.." && pwd)
other=$out/tree
rm -rf "$out" && mkdir -p "$out"
git -C "$here" worktree add --detach "$other" "$commit" >/dev/null
trap 'git -C "$here" worktree remove --force "$other"' EXIT
export OMP_NUM_THREADS=1
run() {  # TREE NAME CONFIG [OVERRIDES...]
  local tree=$1 name=$2 config=$3
  shift 3
  (cd "$tree" && PYTHONPATH="$tree" python -m distgan.train --config "configs/$config" "$@" \
    train.out_dir="$out/$name" log.sample_every=0 checkpoint.every=0 >"$out/$name.log" 2>&1)
}
for side in other this; do
  tree=$other
  [ "$side" = this ] && tree=$here
  run "$tree" "quickstart_$side" quickstart.yaml train.steps=30 log.every=10
  run "$tree" "toy_ring_$side" toy_ring.yaml train.steps=200 log.every=50
  run "$tree" "ada_$side" quickstart.yaml train.steps=30 log.every=10 augment.policy=ada augment.interval=2 \
    augment.speed_images=2000 "augment.ops=[xflip,translation,color,cutout]" model.num_classes=0 \
    train.ema_decay=0 train.ema_images=500
  run "$tree" "wgan_$side" mnist_wgan.yaml train.steps=10 log.every=5 data.source=embedded
done
python - "$out" <<'PY'
import glob, sys
import torch
from safetensors.torch import load_file
out = sys.argv[1]
for name in ("quickstart", "toy_ring", "ada", "wgan"):
    for weights in ("generator", "discriminator", "generator_ema"):
        a = sorted(glob.glob(f"{out}/{name}_other/checkpoints/step_*/{weights}.safetensors"))
        b = sorted(glob.glob(f"{out}/{name}_this/checkpoints/step_*/{weights}.safetensors"))
        if a or b:
            x, y = load_file(a[-1]), load_file(b[-1])
            same = x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
            print(f"{name:10s} {weights:14s} bitwise equal: {same}")
PY
