#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job: classify a sample image with the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/app/mergescope-cli --version
./build/app/mergescope-cli classify --model deit_tiny_patch16_224 "${@:-../shared/data/imagenet-sample/n01440764_tench.JPEG}"
