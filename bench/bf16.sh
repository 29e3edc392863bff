#!/usr/bin/env bash
# fp32 vs bf16 (core/precision.h): random-weight models, batch 1 and 32, methods none, tome:r=13 and pitome at
# ToMe r=13's GMACs. In every round the two dtypes run one after the other (one `bench` process each: WARMUP
# warm-ups, REPEAT timed batches, methods interleaved); the table gives the medians over ROUNDS rounds and the
# ratios; eager PyTorch with CPU autocast to bf16 (scripts/pyref/vit_ref.py bench --dtype bf16, no reducer) runs
# in the same rounds at the points in PYTORCH_BATCHES (empty: none).
#   bench/bf16.sh > table.md      (progress on stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${MERGESCOPE_CLI:-./build/app/mergescope-cli}
MODELS=${MODELS:-deit_small_patch16_224 vit_base_patch16_224}
BATCHES=${BATCHES:-1 32}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
PYTORCH_BATCHES=${PYTORCH_BATCHES-1 32}
py="/usr/bin/python3 scripts/pyref/vit_ref.py"
methods=(--method none --method tome:r=13 --method pitome --match-macs tome:r=13)
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

$CLI --version | grep -E '^(BLAS kernel|bf16|threads)' | sed 's/^/    /'
echo
echo "| model | batch | method | GMACs | fp32 img/s | bf16 img/s | bf16 / fp32 | bf16 speed-up vs none | MAC ratio | PyTorch bf16 img/s | mergescope / PyTorch (bf16) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for model in $MODELS; do
  for batch in $BATCHES; do
    declare -A ips=() gmacs=() speedup=() macratio=()
    py_ips=""
    for round in $(seq "$ROUNDS"); do
      for dtype in fp32 bf16; do
        out=$($CLI bench --random-weights "$model" --batch "$batch" --warmup "$WARMUP" --repeat "$REPEAT" \
              "${methods[@]}" --dtype "$dtype" --json 2>/dev/null)
        while IFS= read -r line; do
          m=$(sed -E 's/.*"method": "([^"]*)".*/\1/' <<<"$line")
          ips[$dtype|$m]+="$(sed -E 's/.*"images_per_s": ([0-9.]+).*/\1/' <<<"$line") "
          gmacs[$m]=$(sed -E 's/.*"gmacs": ([0-9.]+).*/\1/' <<<"$line")
          macratio[$m]=$(sed -E 's/.*"mac_ratio": ([0-9.]+).*/\1/' <<<"$line")
          [[ $dtype == bf16 ]] && speedup[$m]+="$(sed -E 's/.*"speedup": ([0-9.]+).*/\1/' <<<"$line") "
        done <<<"$out"
        echo "$model batch $batch round $round $dtype done" >&2
      done
      if [[ " $PYTORCH_BATCHES " == *" $batch "* ]]; then
        w=$([ "$batch" -gt 1 ] && echo 0 || echo "$WARMUP")
        pj=$($py bench --random-weights "$model" --batch "$batch" --threads "$(nproc)" --warmup "$w" --repeat 1 --dtype bf16)
        py_ips+="$(sed -E 's/.*"images_per_s": ([0-9.]+).*/\1/' <<<"$pj") "
        echo "$model batch $batch round $round pytorch bf16 done" >&2
      fi
    done
    for m in none tome:r=13 $(tr ' ' '\n' <<<"${!gmacs[*]}" | grep '^pitome'); do
      f=$(median <<<"${ips[fp32|$m]}") b=$(median <<<"${ips[bf16|$m]}")
      s=$(median <<<"${speedup[$m]}")
      pyc="" ratio=""
      if [[ $m == none && -n $py_ips ]]; then
        pyc=$(median <<<"$py_ips")
        ratio=$(awk -v a="$b" -v p="$pyc" 'BEGIN {printf "%.2fx", a / p}')
      fi
      awk -v mo="$model" -v ba="$batch" -v me="$m" -v g="${gmacs[$m]}" -v f="$f" -v b="$b" -v s="$s" -v r="${macratio[$m]}" \
          -v pc="$pyc" -v pr="$ratio" 'BEGIN {printf "| %s | %s | %s | %.3f | %.2f | %.2f | %.2fx | %.2fx | %.2fx | %s | %s |\n", mo, ba, me, g, f, b, b / f, s, r, pc, pr}'
    done
    unset ips gmacs speedup macratio
  done
done
echo
echo "$ROUNDS rounds of --warmup $WARMUP --repeat $REPEAT per dtype; medians over rounds; PyTorch: one timed batch per round"
