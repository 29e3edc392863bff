#!/usr/bin/env bash
# bf16 against fp32 on the shared 500 images (README "Precision: fp32 and bf16"): for each model, no reduction,
# ToMe r=13, PiToMe-code at ToMe r=13's GMACs and LTMP with its 0.6 target thresholds, each through
# `compare --dtype bf16 --against fp32`, which runs both precisions on the same decoded images and prints both
# accuracies, the paired top-1 difference with its 95% interval and McNemar p, and how many (image, block)
# partitions bf16 keeps. Prints the blocks (docs/results/bf16_accuracy.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
images=${IMAGES:-../shared/data/imagenet-sample}
row() {
  local model=$1 method=$2 out
  # compare exits 1 when partitions differ (they do under bf16); a run without its accuracy lines failed.
  out=$(./build/app/mergescope-cli compare --model "$model" --dtype bf16 --against fp32 --method "$method" \
    --images "$images" --quiet 2>&1 | grep -v '^fp32 reference \|^compare ' || true)
  echo "$out"
  grep -q '^top-1 difference' <<<"$out" || { echo "bf16_accuracy: $model $method failed" >&2; exit 1; }
  echo
}
for model in deit_tiny_patch16_224 vit_tiny_patch16_224.augreg_in21k_ft_in1k; do
  case $model in
    deit*) ltmp=docs/results/learned_thresholds/ltmp_t0.6.json ;;
    *) ltmp=docs/sweep/thresholds/ltmp_vit_tiny_t0.6.json ;;
  esac
  for method in none tome:r=13 pitome-code:ratio=0.9047 "ltmp:thresholds=$ltmp"; do row "$model" "$method"; done
done
