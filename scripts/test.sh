#!/usr/bin/env bash
# Installs dependencies, builds everything, runs the whole test suite (CTest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DMERGESCOPE_BUILD_TESTS=ON
ctest --test-dir build --output-on-failure --parallel 2
