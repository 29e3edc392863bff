#!/usr/bin/env bash
# Fuzz campaign: the libFuzzer targets of tests/fuzz (all, or those named), one after another, MINUTES each, on
# one core (libFuzzer's fork mode with one job: a crash, hang, OOM or leak is saved and the campaign goes on).
# Prints a table: target, executions, corpus size, findings this run (crash/timeout/oom/leak), and where the
# inputs are. Each finding's input goes to tests/fuzz/regressions/<target>/ once understood; every run of
# tests/fuzz/run_target.sh (CTest's fuzz_<target>, this script) replays those first.
#
#   bench/fuzz.sh [TARGET...]       targets: safetensors config thresholds method_spec image
#
# Environment:
#   MINUTES    per target (default 10)
#   FUZZ_DIR   seeds, corpora, artifacts and logs; default ~/.cache/mergescope-fuzz, outside the repository, so
#              corpora survive rebuilds and a later campaign starts where the last one stopped
#   BUILD_DIR  the sanitizer + fuzz build (default build-asan, configured from cmake/SanitizerBuild.cmake,
#              the build scripts/test.sh makes); built here when out of date
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-10}
FUZZ_DIR=${FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mergescope-fuzz}
BUILD_DIR=${BUILD_DIR:-build-asan}
all=(safetensors config thresholds method_spec image)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

cmake -C cmake/SanitizerBuild.cmake -S . -B "$BUILD_DIR" -G Ninja >/dev/null
cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target "${targets[@]/#/fuzz_}"
/usr/bin/python3 tests/fuzz/make_seeds.py "$FUZZ_DIR/seeds" ../shared

declare -A execs corpus found
for t in "${targets[@]}"; do
  stamp=$FUZZ_DIR/.start_$t
  mkdir -p "$FUZZ_DIR" && touch "$stamp"
  echo "== $t: $MINUTES min"
  FUZZ_CAMPAIGN=1 FUZZ_EXTRA_ARGS="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1" \
    tests/fuzz/run_target.sh "$t" "$BUILD_DIR/tests/fuzz/fuzz_$t" $((MINUTES * 60)) "$FUZZ_DIR" || true
  # Fork mode's progress lines: "#<executions>: cov: ... corp: <n> exec/s <r> oom/timeout/crash: a/b/c ..."
  execs[$t]=$(grep -Eo '^#[0-9]+: cov' "$FUZZ_DIR/logs/$t.log" | tail -n 1 | tr -dc '0-9')
  corpus[$t]=$(find "$FUZZ_DIR/corpus/$t" -type f | wc -l)
  summary=""
  for kind in crash timeout oom leak; do
    n=$(find "$FUZZ_DIR/artifacts/$t" -type f -name "$kind-*" -newer "$stamp" | wc -l)
    [ "$n" -eq 0 ] || summary+="${summary:+, }$n $kind"
  done
  found[$t]=${summary:-none}
done

echo
echo "fuzz campaign: $MINUTES min per target, one core each; inputs under $FUZZ_DIR/artifacts/<target>/"
printf "| %-12s | %12s | %11s | %-30s |\n" target executions "corpus size" "findings"
printf "| %-12s | %12s | %11s | %-30s |\n" ------------ ------------ ----------- ------------------------------
for t in "${targets[@]}"; do
  printf "| %-12s | %12s | %11s | %-30s |\n" "$t" "${execs[$t]:-?}" "${corpus[$t]}" "${found[$t]}"
done
