#!/usr/bin/env bash
# C++ engine vs eager PyTorch (Debian's python3-torch, the same 1.13 build) on the same threads, one run.
# This machine is shared and noisy: for every point the two engines alternate for ROUNDS rounds, each round
# a median over repeated runs after warm-up; the table gives the median of the round medians (and the
# rounds themselves, so the spread is visible).
# usage: bench/engine_vs_pytorch.sh [THREADS]   (Markdown table on stdout; raw JSON lines on stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${ROUNDS:-3}
cli=./build/app/mergescope-cli
py="/usr/bin/python3 scripts/pyref/vit_ref.py"
points=(
  "--model deit_tiny_patch16_224|../shared/models/deit_tiny_patch16_224|1|3|20"
  "--model deit_tiny_patch16_224|../shared/models/deit_tiny_patch16_224|32|1|5"
  "--random-weights deit_small_patch16_224|deit_small_patch16_224|1|3|12"
  "--random-weights deit_small_patch16_224|deit_small_patch16_224|32|1|3"
  "--random-weights vit_base_patch16_224|vit_base_patch16_224|1|2|6"
  "--random-weights vit_base_patch16_224|vit_base_patch16_224|32|1|2"
)
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/"; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| model | batch | threads | mergescope img/s | PyTorch eager img/s | ratio | rounds (mergescope / PyTorch) |"
echo "|---|---|---|---|---|---|---|"
for p in "${points[@]}"; do
  IFS='|' read -r cpp_model py_model batch warmup repeat <<<"$p"
  if [[ $py_model == ../* ]]; then py_arg="--model $py_model"; else py_arg="--random-weights $py_model"; fi
  a_all=() b_all=()
  for ((r = 0; r < rounds; r++)); do
    cpp=$($cli bench $cpp_model --batch "$batch" --threads "$threads" --warmup "$warmup" --repeat "$repeat" --json)
    pyt=$($py bench $py_arg --batch "$batch" --threads "$threads" --warmup "$warmup" --repeat "$repeat")
    echo "$cpp" >&2
    echo "$pyt" >&2
    a_all+=("$(echo "$cpp" | field images_per_s)")
    b_all+=("$(echo "$pyt" | field images_per_s)")
  done
  a=$(echo "${a_all[*]}" | median)
  b=$(echo "${b_all[*]}" | median)
  echo "| $(basename "$py_model") | $batch | $threads | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2fx", a/b}') | ${a_all[*]} / ${b_all[*]} |"
done
