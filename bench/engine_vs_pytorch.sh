#!/usr/bin/env bash
# C++ engine vs eager PyTorch (Debian's python3-torch, the same 1.13 build) on the same threads, one run.
# For each point the two engines alternate so both see the same machine load; reports medians and ratio.
# usage: bench/engine_vs_pytorch.sh [THREADS]   (prints a Markdown table; raw JSON lines go to stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
cli=./build/app/mergescope-cli
py="/usr/bin/python3 scripts/pyref/vit_ref.py"
points=(
  "--model deit_tiny_patch16_224|../shared/models/deit_tiny_patch16_224|1|3|30"
  "--model deit_tiny_patch16_224|../shared/models/deit_tiny_patch16_224|32|2|7"
  "--random-weights deit_small_patch16_224|deit_small_patch16_224|1|3|20"
  "--random-weights deit_small_patch16_224|deit_small_patch16_224|32|1|5"
  "--random-weights vit_base_patch16_224|vit_base_patch16_224|1|2|10"
  "--random-weights vit_base_patch16_224|vit_base_patch16_224|32|1|3"
)
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/"; }
echo "| model | batch | threads | mergescope img/s | PyTorch eager img/s | ratio |"
echo "|---|---|---|---|---|---|"
for p in "${points[@]}"; do
  IFS='|' read -r cpp_model py_model batch warmup repeat <<<"$p"
  if [[ $py_model == ../* ]]; then py_arg="--model $py_model"; else py_arg="--random-weights $py_model"; fi
  cpp=$($cli bench $cpp_model --batch "$batch" --threads "$threads" --warmup "$warmup" --repeat "$repeat" --json)
  pyt=$($py bench $py_arg --batch "$batch" --threads "$threads" --warmup "$warmup" --repeat "$repeat")
  echo "$cpp" >&2
  echo "$pyt" >&2
  a=$(echo "$cpp" | field images_per_s)
  b=$(echo "$pyt" | field images_per_s)
  echo "| $(basename "$py_model") | $batch | $threads | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2fx", a/b}') |"
done
