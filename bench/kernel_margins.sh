#!/usr/bin/env bash
# How far the same decision margins (trace "margin", core/reduce/ops.h) move between two OpenBLAS kernels:
# the evidence behind kTieTolerance (analysis/trace_compare.h). Traces N shared images with each method under
# both kernels and prints, per method and block, the largest and the median |margin difference| over the
# tokens of blocks whose input partition is still the same in both runs (tokens matched by their group, so
# a different output order does not count), and every image whose partitions come apart, with the smallest
# margin there.
#   usage: bench/kernel_margins.sh [N images, default 120] [kernel A, default Prescott] [kernel B, default Zen]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-120}
ka=${2:-Prescott}
kb=${3:-Zen}
cli=${MERGESCOPE_CLI:-./build/app/mergescope-cli}
images=../shared/data/imagenet-sample
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
methods=(tome:r=13 pitome-code:ratio=0.9)
for f in $(ls "$images" | head -n "$n"); do
  for k in "$ka" "$kb"; do
    for m in "${methods[@]}"; do
      OPENBLAS_CORETYPE=$k "$cli" trace --model deit_tiny_patch16_224 --method "$m" "$images/$f" \
        --out "$tmp/$k.${m%%:*}.$f.json" >/dev/null
    done
  done
done
/usr/bin/python3 - "$tmp" "$ka" "$kb" "$n" <<'PY'
import json, math, os, statistics, sys
tmp, ka, kb, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def groups(layers, l):
    """For block l's input tokens: the smallest original token each holds (a run-independent name)."""
    if l == 0:
        return {t: t for t in range(len(layers[0]["cluster_of_token"]))}
    name = {}
    for t, i in enumerate(layers[l - 1]["cluster_of_token"]):
        if i >= 0:
            name[i] = min(name.get(i, t), t)
    return name

def canonical(c):
    seen = {}
    return [-1 if v < 0 else seen.setdefault(v, t) for t, v in enumerate(c)]

for method in ("tome", "pitome-code"):
    diffs, apart = {}, []
    for f in sorted(os.listdir(tmp)):
        if not f.startswith(ka + "." + method + "."):
            continue
        image = f[len(ka) + len(method) + 2:]
        a = json.load(open(os.path.join(tmp, f)))["layers"]
        b = json.load(open(os.path.join(tmp, f"{kb}.{method}.{image}")))["layers"]
        for l in range(len(a)):
            na, nb = groups(a, l), groups(b, l)
            ma = {na[i]: (math.inf if m is None else m) for i, m in enumerate(a[l]["margin"])}
            mb = {nb[i]: (math.inf if m is None else m) for i, m in enumerate(b[l]["margin"])}
            diffs.setdefault(l, []).extend(abs(ma[g] - mb[g]) for g in ma
                                           if math.isfinite(ma[g]) and math.isfinite(mb[g]))
            if canonical(a[l]["cluster_of_token"]) != canonical(b[l]["cluster_of_token"]):
                apart.append((image, l, min(ma.values()), min(mb.values())))
                break
    print(f"{method}: |margin({ka}) - margin({kb})| over {n} images, per block: max (median)")
    print("  " + "  ".join(f"{l}: {max(d):.1e} ({statistics.median(d):.0e})" for l, d in sorted(diffs.items()) if d))
    overall = max(max(d) for d in diffs.values() if d)
    print(f"  largest: {overall:.2e}; partitions came apart in {len(apart)} of {n} images")
    for image, l, sa, sb in apart:
        print(f"    {image}: block {l}, smallest margin there {sa:.2e} ({ka}) / {sb:.2e} ({kb})")
PY
