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
# The methods PiToMe is compared against, at ToMe r = 13's GMACs, after block 8 (ToFu merges from block 7 on, EViT
# has fused at blocks 3 and 6); DCT next to ToMe, where the pane says that it has no groups to draw.
compared() { xvfb-run -a -s "-screen 0 1600x1000x24" "$app" "$img" --size 1600x1000 --frames 4 --layer 8 \
               --fill palette --plots cost "$@"; }
compared --method tofu:ratio=0.9086 --method mctf:r=15 --method diffrate:ratio=0.9106 --method evit:keep=0.6224 \
  --screenshot "$out/compared_block8.png"
compared --method tome:r=13 --method dct:ratio=0.8888 --screenshot "$out/dct_block8.png"
