#!/usr/bin/env bash
# Accuracy with mergescope's own decoding + preprocessing vs the same weights fed PIL/torchvision
# preprocessing in eager PyTorch (scripts/pyref), on the 500 shared images; prints a Markdown table
# and how many images change their top-1 between the two pipelines.
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-../shared/data/imagenet-sample}
cli=${MERGESCOPE_CLI:-./build/app/mergescope-cli}  # the same variable the tests use for another build
tmp=$(mktemp -d)
echo "| model | mergescope top-1 | top-5 | PIL + PyTorch top-1 | top-5 | images whose top-1 differs |"
echo "|---|---|---|---|---|---|"
for m in deit_tiny_patch16_224 vit_tiny_patch16_224.augreg_in21k_ft_in1k; do
  "$cli" eval --model "$m" --images "$images" --json "$tmp/cpp.json" >/dev/null 2>&1
  /usr/bin/python3 scripts/pyref/vit_ref.py eval --model "../shared/models/$m" --images "$images" \
      --labels ../shared/data/synset_words.txt --json "$tmp/py.json" >/dev/null
  /usr/bin/python3 - "$m" "$tmp/cpp.json" "$tmp/py.json" <<'PY'
import json, os, sys
m, cpp, py = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
ours = {os.path.basename(r["file"]): r["top5"][0][1] for r in cpp["results"]}
ref = {os.path.basename(r["file"]): r["top5"][0] for r in py["images"]}
diff = sum(1 for f in ours if ours[f] != ref[f])
print(f"| {m} | {cpp['top1']:.2f} | {cpp['top5']:.2f} | {py['top1']:.2f} | {py['top5']:.2f} | {diff} of {len(ours)} |")
PY
done
rm -rf "$tmp"
