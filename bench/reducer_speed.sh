#!/usr/bin/env bash
# Reducer speed on random-weight ViTs at batch 32, all cores, one run: none, ToMe r=13, pitome and
# pitome-code at ToMe r=13's GMACs. Reports medians, speed-up against none, and the share of block time
# spent inside the reducer (planning + applying merges).
set -euo pipefail
cd "$(dirname "$0")/.."
for arch in ${ARCHS:-deit_small_patch16_224 vit_base_patch16_224}; do
  ./build/app/mergescope-cli bench --random-weights "$arch" --batch "${BATCH:-32}" --warmup 1 --repeat "${REPEAT:-5}" \
    --method tome:r=13 --method pitome --method pitome-code --match-macs tome:r=13
done
