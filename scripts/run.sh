#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job: the desktop app on a sample image with ToMe and
# PiToMe side by side (arguments go to the app). Without a display it runs the app under Xvfb and saves a
# screenshot instead, after the CLI's classification of the same image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/app/mergescope-cli --version
if [ -n "${DISPLAY:-}" ]; then
  exec ./build/app/gui/mergescope "$@"
fi
./build/app/mergescope-cli classify --model deit_tiny_patch16_224 ../shared/data/imagenet-sample/n01440764_tench.JPEG
echo "no display: running the app under Xvfb and saving its window to mergescope-screenshot.png"
xvfb-run -a -s "-screen 0 1600x1000x24" ./build/app/gui/mergescope "$@" --screenshot mergescope-screenshot.png
