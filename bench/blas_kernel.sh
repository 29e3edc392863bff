#!/usr/bin/env bash
# OpenBLAS kernel selection (core/blas_select.h) on a CPU that OpenBLAS 0.3.21 does not recognise, simulated
# on this one:
#   before: OPENBLAS_CORETYPE=Prescott, the generic kernel OpenBLAS falls back to on such a CPU;
#   after:  the same plus MERGESCOPE_BLAS_ASSUME_GENERIC=1, so mergescope treats Prescott as that fallback,
#           selects this CPU's best kernel and re-executes.
# The two processes alternate for ROUNDS rounds (one `bench` run each: WARMUP warm-ups, REPEAT timed batches,
# its median); the table gives each round's images/s, the median over rounds and after/before.
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${MERGESCOPE_CLI:-./build/app/mergescope-cli}
ARCH=${ARCH:-deit_small_patch16_224}
BATCH=${BATCH:-32}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-}  # empty: all cores (the CLI's default)

# Start from a plain environment whatever the caller exported.
clean=(env -u OPENBLAS_CORETYPE -u MERGESCOPE_BLAS_SELECTED -u MERGESCOPE_BLAS_REPLACED -u MERGESCOPE_BLAS_ASSUME_GENERIC)
declare -A setting=(
  [before]="OPENBLAS_CORETYPE=Prescott"
  [after]="OPENBLAS_CORETYPE=Prescott MERGESCOPE_BLAS_ASSUME_GENERIC=1"
)
run() {  # run CASE ARGS...
  local case=$1
  shift
  # shellcheck disable=SC2086  # the setting is a list of NAME=VALUE words
  "${clean[@]}" ${setting[$case]} "$CLI" "$@"
}

declare -A kernel ips med
threads="?"
for case in before after; do
  echo "== $case: ${setting[$case]} $CLI --version"
  run "$case" --version
  kernel[$case]=$(run "$case" --version | sed -n 's/^BLAS kernel: \([^,]*\),.*/\1/p')
  ips[$case]=""
done
echo

for round in $(seq "$ROUNDS"); do
  for case in before after; do
    json=$(run "$case" bench --random-weights "$ARCH" --batch "$BATCH" --warmup "$WARMUP" --repeat "$REPEAT" \
          --method none --json ${THREADS:+--threads "$THREADS"})
    v=$(sed -n 's/.*"images_per_s": \([0-9.]*\).*/\1/p' <<<"$json")
    threads=$(sed -n 's/.*"threads": \([0-9]*\).*/\1/p' <<<"$json")
    [[ -n "$v" ]] || { echo "blas_kernel.sh: no images/s from the $case run" >&2; exit 1; }
    ips[$case]+="$v "
    echo "round $round  $case  $v images/s" >&2
  done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "$ARCH  batch $BATCH  method none  threads $threads  $ROUNDS alternating rounds of --warmup $WARMUP --repeat $REPEAT"
printf "%-7s %-12s" case kernel
for round in $(seq "$ROUNDS"); do printf " %9s" "round $round"; done
printf " %10s\n" "median"
for case in before after; do
  printf "%-7s %-12s" "$case" "${kernel[$case]}"
  for v in ${ips[$case]}; do printf " %9.2f" "$v"; done
  med[$case]=$(echo "${ips[$case]}" | median)
  printf " %10.2f\n" "${med[$case]}"
done
awk -v a="${med[after]}" -v b="${med[before]}" 'BEGIN {printf "after/before: %.2fx (images/s medians)\n", a / b}'
