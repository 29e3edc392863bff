#!/usr/bin/env bash
# Accuracy of every reducer on the shared 500 images at equal cost: none; ToMe r = 8, 13, 16; pitome and
# pitome-code at the GMACs of each ToMe row (--match-macs); random. One eval per ToMe row so every method
# sees the same decoded batches. Prints the CLI tables; the README's accuracy table is copied from them.
set -euo pipefail
cd "$(dirname "$0")/.."
images=${IMAGES:-../shared/data/imagenet-sample}
for m in ${MODELS:-deit_tiny_patch16_224 vit_tiny_patch16_224.augreg_in21k_ft_in1k}; do
  for r in 8 13 16; do
    ./build/app/mergescope-cli eval --model "$m" --images "$images" \
      --method "tome:r=$r" --method pitome --method pitome-code --match-macs "tome:r=$r" --method "random:r=$r" 2>&1 |
      grep -v '^eval '
  done
done
