#!/usr/bin/env bash
# Installs dependencies, builds everything, runs the whole test suite (CTest); then the sanitizer step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The repository's .clang-format holds for every C++ and CUDA source (clang-format-14 -i FILES fixes a failure).
git ls-files -z '*.cpp' '*.h' '*.cu' | xargs -0 clang-format-14 --dry-run --Werror
echo "clang-format: every C++ source formatted"
bash scripts/build.sh -DMERGESCOPE_BUILD_TESTS=ON
ctest --test-dir build --output-on-failure --parallel 2

# Sanitizer step: the suite again (no GUI) built with clang, ASan and UBSan (float-cast-overflow included, a
# UBSan report fails its test) in ./build-asan, and every parser fuzz target: its regression inputs, then
# MERGESCOPE_FUZZ_SECONDS (20) of fuzzing each (cmake/SanitizerBuild.cmake, tests/fuzz/). Time-boxed: past
# MERGESCOPE_SANITIZER_MINUTES (40) it fails instead of eating CI's 90 minutes. MERGESCOPE_SANITIZERS=0 skips it.
if [ "${MERGESCOPE_SANITIZERS:-1}" != 0 ]; then
  step_start=$SECONDS
  deadline=$((step_start + ${MERGESCOPE_SANITIZER_MINUTES:-40} * 60))
  left() { local n=$((deadline - SECONDS)); echo $((n > 1 ? n : 1)); }  # seconds left in the box (timeout 0 = none)
  cmake -C cmake/SanitizerBuild.cmake -S . -B build-asan -G Ninja \
    -DMERGESCOPE_FUZZ_SECONDS="${MERGESCOPE_FUZZ_SECONDS:-20}" >/dev/null
  timeout "$(left)" cmake --build build-asan --parallel "$(nproc)"
  echo "sanitizer step: build took $((SECONDS - step_start)) s"
  status=0
  timeout "$(left)" ctest --test-dir build-asan --output-on-failure --parallel 2 || status=$?
  echo "sanitizer step: $((SECONDS - step_start)) s in all"
  if [ "$status" -eq 124 ]; then
    echo "sanitizer step: over its ${MERGESCOPE_SANITIZER_MINUTES:-40}-minute time box" >&2
  fi
  exit "$status"
fi
