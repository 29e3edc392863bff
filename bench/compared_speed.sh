#!/usr/bin/env bash
# Speed of the methods PiToMe is compared against on random-weight ViTs at batch 32, all cores, one run: none,
# ToMe r=13, and ToFu, MCTF, DCT, DiffRate and EViT at ToMe r=13's GMACs (--match-macs). The methods take turns in
# every round; medians, speed-ups against none, the MAC ratio, and the reducer's share of block time
# (docs/results/compared_speed.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
for arch in ${ARCHS:-deit_small_patch16_224 vit_base_patch16_224}; do
  ./build/app/mergescope-cli bench --random-weights "$arch" --batch "${BATCH:-32}" --warmup 1 --repeat "${REPEAT:-5}" \
    --method tome:r=13 --method tofu --method mctf --method dct --method diffrate --method evit --match-macs tome:r=13
done
