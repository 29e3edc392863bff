#!/usr/bin/env bash
# ToMe r=13 speed-up in eager PyTorch (scripts/pyref/tome_ref.py, Debian's python3-torch 1.13) and in mergescope
# (same LibTorch 1.13 build), random-weight models, batch 32, THREADS threads.
# Every round runs, in this order: PyTorch none, mergescope none + tome:r=13 (one process, as `bench --method none
# --method tome:r=13` prints them), PyTorch tome:r=13; each a median over repeated runs after warm-up. ROUNDS rounds;
# the table gives the median of the round medians, with the rounds beside it (this machine is shared and noisy).
# usage: bench/tome_vs_pytorch.sh [THREADS]   (Markdown on stdout; raw JSON lines on stderr)
#   env: ROUNDS (3), ARCHS, BATCH (32), R (13), PARTS=0 to skip the per-op timing of one eager block
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${ROUNDS:-3}
batch=${BATCH:-32}
r=${R:-13}
cli=./build/app/mergescope-cli
py="/usr/bin/python3 scripts/pyref/tome_ref.py"
[[ -x $cli ]] || { echo "missing $cli (build it first; this script does not build)" >&2; exit 1; }
# arch|warmup|repeat
points=(${POINTS:-"vit_base_patch16_224|1|3" "deit_small_patch16_224|1|5"})
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/"; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

echo "load at start: $(uptime)"
echo
echo "| model | PyTorch none img/s | PyTorch ToMe img/s | mergescope none img/s | mergescope ToMe img/s | PyTorch ToMe/none | mergescope ToMe/none | mergescope ToMe / PyTorch ToMe | mergescope none / PyTorch none |"
echo "|---|---|---|---|---|---|---|---|---|"
raw=()
for p in "${points[@]}"; do
  IFS='|' read -r arch warmup repeat <<<"$p"
  pn=() pt=() mn=() mt=() rp=() rm=() loads=()
  for ((i = 0; i < rounds; i++)); do
    loads+=("$(cut -d' ' -f1 /proc/loadavg)")
    a=$($py bench --random-weights "$arch" --batch "$batch" --threads "$threads" --warmup "$warmup" --repeat "$repeat")
    m=$($cli bench --random-weights "$arch" --batch "$batch" --threads "$threads" --warmup "$warmup" --repeat "$repeat" \
          --method none --method "tome:r=$r" --json)
    b=$($py bench --random-weights "$arch" --r "$r" --batch "$batch" --threads "$threads" --warmup "$warmup" --repeat "$repeat")
    printf '%s\n%s\n%s\n' "$a" "$m" "$b" >&2
    pn+=("$(echo "$a" | field images_per_s)")
    pt+=("$(echo "$b" | field images_per_s)")
    mn+=("$(echo "$m" | grep '"method": "none"' | field images_per_s)")
    mt+=("$(echo "$m" | grep "\"method\": \"tome:r=$r\"" | field images_per_s)")
    rp+=("$(ratio "${pt[i]}" "${pn[i]}")")
    rm+=("$(ratio "${mt[i]}" "${mn[i]}")")
  done
  PN=$(echo "${pn[*]}" | median) PT=$(echo "${pt[*]}" | median)
  MN=$(echo "${mn[*]}" | median) MT=$(echo "${mt[*]}" | median)
  echo "| $arch | $PN | $PT | $MN | $MT | $(ratio "$PT" "$PN")x | $(ratio "$MT" "$MN")x | $(ratio "$MT" "$PT")x | $(ratio "$MN" "$PN")x |"
  raw+=("| $arch | ${pn[*]} | ${pt[*]} | ${mn[*]} | ${mt[*]} | ${rp[*]} | ${rm[*]} | ${loads[*]} |")
done
echo
echo "Rounds (images/s per round; ratios per round; 1-minute load average when each round started):"
echo
echo "| model | PyTorch none | PyTorch ToMe | mergescope none | mergescope ToMe | PyTorch ToMe/none | mergescope ToMe/none | load |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${raw[@]}"
echo
echo "load at end of the rounds: $(uptime)"
if [[ ${PARTS:-1} != 0 ]]; then
  echo
  echo '```'
  $py parts --random-weights vit_base_patch16_224 --batch "$batch" --threads "$threads" --tokens 197 125
  echo '```'
  echo
  echo "load after the per-op timing: $(uptime)"
fi
