#!/usr/bin/env bash
# Runs one libFuzzer target the way CTest (tests/fuzz/CMakeLists.txt) and bench/fuzz.sh do:
#
#   run_target.sh TARGET FUZZER SECONDS WORK_DIR
#
# 1. replays every file in tests/fuzz/regressions/TARGET/ once (a crash, sanitizer report or hang fails; with
#    FUZZ_CAMPAIGN=1, as bench/fuzz.sh sets, the failure is reported and fuzzing goes on);
# 2. when SECONDS > 0, fuzzes for SECONDS from WORK_DIR/seeds/TARGET (make_seeds.py), the regressions and
#    WORK_DIR/corpus/TARGET, where new inputs are kept; a crash is written to WORK_DIR/artifacts/TARGET/ and
#    fails the run. The libFuzzer log is WORK_DIR/logs/TARGET.log; its last lines are printed.
# Exit status: libFuzzer's (0 when nothing was found).
set -euo pipefail
target=$1 fuzzer=$2 seconds=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
regressions=$here/regressions/$target

# Per-target libFuzzer options. -timeout: an input that takes this long is a hang (the slowest legitimate input,
# a 178-megapixel image at the decode budget, decodes in a few seconds under ASan). -rss_limit_mb also caps one
# malloc (libFuzzer's -malloc_limit_mb defaults to it): a tiny file asking for gigabytes is a finding.
# -max_len bounds what the mutator makes; it is left out of the replay, which would cut a longer regression
# input short (libFuzzer truncates files to -max_len).
opts=(-timeout=30 -rss_limit_mb=3072 -print_final_stats=1)
case $target in
  safetensors) opts+=(-dict="$here/dict/json.dict") max_len=4096 ;;
  config) opts+=(-dict="$here/dict/json.dict") max_len=8192 ;;
  thresholds) opts+=(-dict="$here/dict/json.dict") max_len=8192 ;;
  method_spec) opts+=(-dict="$here/dict/method_spec.dict") max_len=256 ;;
  image) opts+=(-dict="$here/dict/image.dict") max_len=16384 ;;
  *) echo "run_target.sh: unknown target '$target'" >&2; exit 2 ;;
esac

# Sanitizer options (cmake/Sanitizers.cmake explains them). Unlike the test suite, the fuzzers check leaks:
# libFuzzer looks for them only when an input's mallocs and frees do not balance, which LibTorch's process-wide
# state never trips once initialised, and a parser that leaks on an error path (a longjmp out of libpng) leaks
# again on every bad file the app is given.
# Options already in the environment come last, so they win.
export ASAN_OPTIONS="abort_on_error=1:handle_abort=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# File:line in the stacks: Debian's llvm-14 installs the symbolizer as llvm-symbolizer-14 only.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && ! command -v llvm-symbolizer >/dev/null; then
  ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer-14 || true)
  export ASAN_SYMBOLIZER_PATH
fi

shopt -s nullglob
inputs=("$regressions"/*)
if [ ${#inputs[@]} -gt 0 ]; then
  echo "fuzz_$target: replaying ${#inputs[@]} regression input(s) from $regressions"
  set +e
  "$fuzzer" "${opts[@]}" "${inputs[@]}" >"${TMPDIR:-/tmp}/fuzz_$target.$$.replay" 2>&1
  status=$?
  set -e
  grep -v -E '^INFO: |^Running: |^Executed ' "${TMPDIR:-/tmp}/fuzz_$target.$$.replay" | tail -n 40 || true
  rm -f "${TMPDIR:-/tmp}/fuzz_$target.$$.replay"
  if [ "$status" -ne 0 ]; then
    echo "fuzz_$target: a regression input fails (exit $status)"
    # A campaign (bench/fuzz.sh) goes on to look for other findings; CTest's run stops here.
    [ -n "${FUZZ_CAMPAIGN:-}" ] || exit "$status"
  fi
fi
[ "$seconds" -gt 0 ] || exit 0

mkdir -p "$work/corpus/$target" "$work/artifacts/$target" "$work/logs"
log=$work/logs/$target.log
dirs=("$work/corpus/$target")
[ -d "$work/seeds/$target" ] && dirs+=("$work/seeds/$target")
# Known findings seed the search too, except in a campaign, where one not fixed yet would end it at once.
[ -d "$regressions" ] && [ -z "${FUZZ_CAMPAIGN:-}" ] && dirs+=("$regressions")
extra=()  # FUZZ_EXTRA_ARGS: more libFuzzer options, e.g. "-jobs=1 -workers=1" or "-use_value_profile=1"
[ -n "${FUZZ_EXTRA_ARGS:-}" ] && read -ra extra <<<"$FUZZ_EXTRA_ARGS"
echo "fuzz_$target: fuzzing for ${seconds}s (log: $log)"
set +e
"$fuzzer" "${opts[@]}" -max_len="$max_len" -max_total_time="$seconds" -artifact_prefix="$work/artifacts/$target/" \
  ${extra[@]+"${extra[@]}"} "${dirs[@]}" >"$log" 2>&1
status=$?
set -e
# The end of the log without progress lines and libFuzzer's dictionary suggestions.
grep -v -E '^#[0-9]|^"|ecommended dictionary|^INFO: |^  NEW_FUNC' "$log" | tail -n 60 || true
if [ "$status" -ne 0 ]; then
  echo "fuzz_$target: FINDING (exit $status); the input is in $work/artifacts/$target/ -- reproduce with"
  echo "  $fuzzer ${opts[*]} <input>   and add it to tests/fuzz/regressions/$target/ once understood"
fi
exit "$status"
