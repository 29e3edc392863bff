#!/usr/bin/env bash
# Interaction latency of the desktop app on this machine (Xvfb + Mesa llvmpipe, CPU LibTorch): layer changes
# (served from the traces: overlay re-render only) and method changes (one pane re-run: engine + spectra +
# overlay), plus frame times while the worker runs. deit_tiny, 4 panes, the tench image.
# Usage: bench/gui_latency.sh [OUT_JSON]   (default docs/results/gui_latency.json)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/results/gui_latency.json}
mkdir -p "$(dirname "$out")"
app=build/app/gui/mergescope
[ -x "$app" ] || { echo "build the app first: bash scripts/build.sh" >&2; exit 1; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
xvfb-run -a -s "-screen 0 1600x1000x24" "$app" ../shared/data/imagenet-sample/n01440764_tench.JPEG \
  --model deit_tiny_patch16_224 --method none --method tome:r=13 --method pitome:ratio=0.9074 \
  --method pitome-code:ratio=0.9074 --size 1600x1000 --bench-latency "$out"
echo "wrote $out"
