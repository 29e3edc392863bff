#!/usr/bin/env bash
# Speed of the spectrum pipeline on one image: 197 tokens (DeiT-Ti at 224 px) and 1025 tokens (DeiT-Ti at
# 512 px, position embedding resampled), three methods x 12 blocks, both views; with and without baselines.
# `spectrum` prints its own split (forward passes / graphs and spectra / export); /usr/bin/time the total.
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-../shared/data/imagenet-sample/n01440764_tench.JPEG}
out=$(mktemp -d)
for size in 224 512; do
  for extra in "" "--no-baselines"; do
    echo "== ${size} px ${extra:-with baselines}"
    /usr/bin/time -f "whole command: %e s" ./build/app/mergescope-cli spectrum --model deit_tiny_patch16_224 --img-size "$size" \
      --method tome:r=13 --method pitome --method pitome-code --match-macs tome:r=13 $extra "$img" --out "$out" 2>&1 |
      grep -E '^(time|whole)'
  done
done
rm -rf "$out"
