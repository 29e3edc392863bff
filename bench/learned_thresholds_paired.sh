#!/usr/bin/env bash
# Each learned LTP/LTMP row of README "Learned thresholds" paired against ToMe and PiToMe at its measured GMACs
# (docs/results/learned_thresholds/matches.txt, written by learned_thresholds_table.sh), on the held-out images
# 251..500: one eval per learned row, its paired block giving ToMe's and PiToMe's top-1 difference from the learned
# thresholds with a 95% interval and McNemar's p. Prints the blocks (docs/results/learned_thresholds/paired.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${MERGESCOPE_CLI:-./build/app/mergescope-cli}
model=${MODEL:-deit_tiny_patch16_224}
matches=docs/results/learned_thresholds/matches.txt
for learned in $(cut -d' ' -f1 "$matches" | uniq); do
  others=()
  while read -r spec _ matched; do
    [ "$spec" = "$learned" ] && others+=(--method "$matched")
  done < "$matches"
  $cli eval --model "$model" --images ../shared/data/imagenet-sample --offset 250 --method "$learned" "${others[@]}" \
    --paired-against "$learned" 2>/dev/null | sed -n '/^top-1 against/,$p'
  echo
done
