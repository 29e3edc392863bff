#!/usr/bin/env bash
# How close ToMe r=13's speed-up comes to what this engine allows: bench_reducer_ceiling times the blocks
# at ToMe's token counts without the reducer (the speed-up a free reducer would give) in the same rounds as
# the real forwards. Random weights, batch 32, all cores. Needs the bench target (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load $(cat /proc/loadavg)"
./build/bench/bench_reducer_ceiling deit_small_patch16_224 "${SPEC:-tome:r=13}" "${BATCH:-32}" "${ROUNDS:-7}"
./build/bench/bench_reducer_ceiling vit_base_patch16_224 "${SPEC:-tome:r=13}" "${BATCH:-32}" "${ROUNDS:-5}"
echo "load $(cat /proc/loadavg)"
