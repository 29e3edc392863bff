#!/usr/bin/env bash
# Regenerates the README's screenshots of the desktop app (under Xvfb): ToMe and PiToMe side by side at an
# early and a late block, and the spectrum and energy plots.
set -euo pipefail
cd "$(dirname "$0")/.."
app=build/app/gui/mergescope
out=docs/screenshots
mkdir -p "$out"
img=../shared/data/imagenet-sample/n01440764_tench.JPEG
shot() { xvfb-run -a -s "-screen 0 1600x1000x24" "$app" "$img" --method tome:r=13 --method pitome:ratio=0.9074 \
           --size 1600x1000 --frames 4 "$@"; }
shot --layer 2 --plots cost --screenshot "$out/main_block2.png"
shot --layer 11 --fill palette --pin 7,6 --plots energy --screenshot "$out/main_block11.png"
shot --layer 11 --fill energy --plots spectrum --screenshot "$out/spectrum_block11.png"
shot --layer 6 --fill protected --plots energy --screenshot "$out/energy_block6.png"
