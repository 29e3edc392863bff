#!/usr/bin/env bash
# The methods PiToMe is compared against (ToFu, MCTF, DCT, DiffRate, EViT) on the shared 500 images:
#  - matched: each at the GMACs of ToMe r = 8, 13, 16 (--match-macs: the r, keep ratio or keep rate whose predicted
#    MACs come closest), next to ToMe itself and PiToMe (paper and code); one eval per ToMe row, so every method
#    sees the same decoded batches, and eval's paired block gives each method's top-1 difference from ToMe with its
#    95% interval;
#  - released: the settings the released code and papers evaluate: MCTF r=16 on blocks 1-11 and MCTF-Fast (0.35 at
#    blocks 3, 6, 9), EViT keep 0.7 at blocks 3, 6, 9 with and without the fused token, and ratio 0.9 for ToFu, DCT,
#    DiffRate and PiToMe-code (the same --ratio for every method, as PiToMe's eval_ic_all.sh does).
# Prints the CLI tables (docs/results/accuracy_compared.txt); PART=matched or PART=released runs one half.
set -euo pipefail
cd "$(dirname "$0")/.."
images=${IMAGES:-../shared/data/imagenet-sample}
models=${MODELS:-deit_tiny_patch16_224 vit_tiny_patch16_224.augreg_in21k_ft_in1k}
eval_() { ./build/app/mergescope-cli eval --images "$images" "$@" 2>&1 | grep -v '^eval '; }
if [ "${PART:-all}" != released ]; then
  for m in $models; do
    for r in 8 13 16; do
      eval_ --model "$m" --method "tome:r=$r" --method tofu --method mctf --method dct --method diffrate --method evit \
        --method pitome --method pitome-code --match-macs "tome:r=$r" --paired-against "tome:r=$r"
    done
  done
fi
if [ "${PART:-all}" != matched ]; then
  for m in $models; do
    eval_ --model "$m" --method mctf:r=16 --method "mctf:r=0.35,blocks=3;6;9" --method evit --method evit:keep=0.7,fuse=0 \
      --method tofu:ratio=0.9 --method dct:ratio=0.9 --method diffrate:ratio=0.9 --method pitome-code:ratio=0.9
  done
fi
