#!/usr/bin/env bash
# LTMP and LTP thresholds learned on the first 250 of the 500 shared images (class order), evaluated on the
# other 250 only, next to ToMe and PiToMe at the same measured GMACs. Writes
#   docs/results/learned_thresholds.csv / .md   the table (+ calibration seconds and the load at the time)
#   docs/results/learned_thresholds/*.json      the learned thresholds (with their calibration settings)
# Usage: bench/learned_thresholds_table.sh [MODEL] [TARGETS...]   (default deit_tiny_patch16_224 0.75 0.6 0.5)
# SKIP_CALIBRATION=1 keeps the threshold files and their calibration times and redoes steps 2-4 (evals, table).
# Every calibration + eval is a line below; DISTILL="0 1" (default) runs both task losses, METHODS="ltmp ltp".
# EVAL_THREADS=1 runs the evals single-threaded: on a 2-core machine shared with another busy process the
# 2-thread OpenMP evals slowed ~10x (spinning threads); the committed table's matched eval used 1 thread.
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${MERGESCOPE_CLI:-./build-ltmp/app/mergescope-cli}
model=${1:-deit_tiny_patch16_224}
shift || true
targets=${*:-0.75 0.6 0.5}
methods=${METHODS:-ltmp ltp}
distills=${DISTILL:-0 1}
data=../shared/data/imagenet-sample
out=docs/results
dir=$out/learned_thresholds
mkdir -p "$dir"
csv=$out/learned_thresholds.csv
log=$out/learned_thresholds.log
[ "${SKIP_CALIBRATION:-0}" = 1 ] || : > "$log"  # the calibrations' log stays when they are skipped

# 1. Calibrate on images 1..250 (SKIP_CALIBRATION=1 re-evaluates the committed threshold files instead).
if [ "${SKIP_CALIBRATION:-0}" != 1 ]; then
for method in $methods; do
  for target in $targets; do
    for distill in $distills; do
      name=${method}_t${target}$([ "$distill" = 1 ] && echo _distill || true)
      load=$(cut -d' ' -f1 /proc/loadavg)
      echo "== calibrate $name (load $load)" | tee -a "$log"
      $cli calibrate --model "$model" --method "$method" --images "$data" --limit 250 --target-macs "$target" \
        $([ "$distill" = 1 ] && echo --distill || true) --seed 0 --out "$dir/$name.json" 2>>"$log" | tee -a "$log"
      echo "$name $load" >> "$dir/loads.txt.tmp"
    done
  done
done
mv "$dir/loads.txt.tmp" "$dir/loads.txt"
fi

# 2. Evaluate every learned set on images 251..500 (one eval, the unreduced model once).
specs=()
for f in "$dir"/*_t*.json; do
  m=$(basename "$f" | cut -d_ -f1)
  specs+=(--method "$m:thresholds=$f")
done
$cli eval --model "$model" --images "$data" --offset 250 ${EVAL_THREADS:+--threads $EVAL_THREADS} "${specs[@]}" 2>>"$log" | tee "$dir/eval_learned.txt"

# 3. ToMe and PiToMe matched to each learned row's measured GMACs, on the same 250 images.
matched=()
while read -r spec top1 top5 gmacs rest; do
  [[ -n $spec ]] || break  # the table ends at its first empty line (eval's paired block follows)
  [[ $spec == ltmp:* || $spec == ltp:* ]] || continue
  for m in tome pitome; do
    s=$($cli eval --model "$model" --images "$data" --offset 250 --limit 1 --method $m --match-gmacs "$gmacs" 2>&1 >/dev/null |
        sed -n "s/^$m matches .*: \(.*\)$/\1/p")
    echo "$spec $m $s" >> "$dir/matches.txt.tmp"
    matched+=("$s")
  done
done < "$dir/eval_learned.txt"
mv "$dir/matches.txt.tmp" "$dir/matches.txt"
uniq_specs=()
for s in $(printf '%s\n' "${matched[@]}" | sort -u); do uniq_specs+=(--method "$s"); done
$cli eval --model "$model" --images "$data" --offset 250 ${EVAL_THREADS:+--threads $EVAL_THREADS} "${uniq_specs[@]}" 2>>"$log" | tee "$dir/eval_matched.txt"

# 4. Table.
python3 - "$dir" "$csv" "$out/learned_thresholds.md" "$model" <<'PY'
import json, sys, os, re
d, csv_path, md_path, model = sys.argv[1:]
def rows(path):
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 4 and f[1].endswith('%') and ':' in f[0] or (f and f[0] == 'none' and len(f) >= 4):
            out[f[0]] = (float(f[1].rstrip('%')), float(f[2].rstrip('%')), float(f[3]))
    return out
learned, matched = rows(f"{d}/eval_learned.txt"), rows(f"{d}/eval_matched.txt")
loads = dict(l.split() for l in open(f"{d}/loads.txt"))
match = {}
for l in open(f"{d}/matches.txt"):
    spec, m, s = l.split()
    match[(spec, m)] = s
lines = ["method,target_macs,distill,calib_seconds,load_1min,top1,top5,gmacs,tome_spec,tome_top1,tome_top5,tome_gmacs,pitome_spec,pitome_top1,pitome_top5,pitome_gmacs"]
md = ["| method | target | task loss | top-1 | top-5 | GMACs | ToMe (same GMACs) | top-1 | GMACs | PiToMe (same GMACs) | top-1 | GMACs | calibration s (load) |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
none = learned.get('none')
for spec, (t1, t5, g) in sorted(learned.items(), key=lambda kv: (kv[0].split(':')[0] != 'ltmp', kv[0])):
    if spec == 'none': continue
    path = spec.split('=', 1)[1]
    info = json.load(open(path))['calibration']
    name = os.path.basename(path)[:-5]
    distill = info['loss'] == 'kl_to_unreduced'
    ts, ps = match[(spec, 'tome')], match[(spec, 'pitome')]
    tt, pt = matched[ts], matched[ps]
    target = info.get('target_macs', info.get('target_flops'))  # files written before the rename say target_flops
    lines.append(f"{spec.split(':')[0]},{target},{int(distill)},{info['seconds']:.1f},{loads[name]},{t1},{t5},{g},{ts},{tt[0]},{tt[1]},{tt[2]},{ps},{pt[0]},{pt[1]},{pt[2]}")
    md.append(f"| {spec.split(':')[0]} | {target} | {'KL to unreduced' if distill else 'cross-entropy'} | {t1:.1f} | {t5:.1f} | {g:.3f} | `{ts}` | {tt[0]:.1f} | {tt[2]:.3f} | `{ps}` | {pt[0]:.1f} | {pt[2]:.3f} | {info['seconds']:.0f} ({loads[name]}) |")
if none:
    md.append(f"| none | 1 | | {none[0]:.1f} | {none[1]:.1f} | {none[2]:.3f} | | | | | | | |")
open(csv_path, 'w').write('\n'.join(lines) + '\n')
open(md_path, 'w').write(f"{model}, learned on images 1-250, evaluated on images 251-500 of ../shared/data/imagenet-sample\n\n" + '\n'.join(md) + '\n')
print('\n'.join(md))
PY
