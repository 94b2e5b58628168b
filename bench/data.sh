#!/usr/bin/env bash
# data.sh BUILD — data loading images/s and peak memory of graft's loader and torchvision's
# DataLoader (ImageFolder, PIL), measured in the same run on the same ~3000 generated JPEGs of
# about 500x375: decode + Resize 256 + CenterCrop 224 + ToTensor + Normalize, batch 32,
# 2 workers (the machine has 2 cores), one warm-up epoch then one timed epoch each, best of
# BENCH_ROUNDS (3) interleaved rounds.
set -euo pipefail
build=$1
cache=${GRAFT_CACHE:-$HOME/.cache/graft}
jpegs="$cache/bench-jpegs"
workers=${BENCH_WORKERS:-2}
batch=32
if [ ! -d "$jpegs" ]; then
  echo "data.sh: generating the benchmark JPEGs once into $jpegs" >&2
  /usr/bin/python3 bench/make_jpegs.py "$jpegs" 3000 10
fi
n=$(find "$jpegs" -name '*.jpg' | wc -l)
load=$(cut -d' ' -f1 /proc/loadavg)
# The machine is shared: run both ${BENCH_ROUNDS:-3} times, interleaved, and keep each one's best
# round (the one least disturbed by other load).
best() { sort -k2,2 -g | tail -1; }
g_all=""; t_all=""
for round in $(seq "${BENCH_ROUNDS:-3}"); do
  g_all+="$("$build/bench/bench_data" "$jpegs" $workers $batch)"$'\n'
  t_all+="$(/usr/bin/python3 bench/torch_loader.py "$jpegs" $workers $batch)"$'\n'
done
g=$(printf '%s' "$g_all" | best); t=$(printf '%s' "$t_all" | best)
gi=$(echo "$g" | awk '{print $2}'); gm=$(echo "$g" | awk '{print $5}'); gd=$(echo "$g" | awk '{print $8}')
gc=$(echo "$g" | awk '{print $10}')
ti=$(echo "$t" | awk '{print $2}'); tm=$(echo "$t" | awk '{print $5}'); tw=$(echo "$t" | awk '{print $8}')
tc=$(echo "$t" | awk '{print $11}')
echo "rounds (img/s): graft $(printf '%s' "$g_all" | awk '{printf "%s ", $2}')| torchvision $(printf '%s' "$t_all" | awk '{printf "%s ", $2}')"
r=$(awk -v a="$gi" -v b="$ti" 'BEGIN{printf "%.2f", a/b}')
echo "$n JPEGs, batch $batch, $workers workers; graft decodes the JPEGs at $gd size (TurboJPEG; IDCT scaling only for images >= 2x the 256 needed)"
echo "load average $load before the runs on $(nproc) cores; img/s moves with other load, cpu ms/img (all threads or processes, per image) much less"
printf '%-12s %10s %12s %10s %s\n' loader "img/s" "cpu ms/img" "peak MB" ""
printf '%-12s %10s %12s %10s %s\n' graft "$gi" "$gc" "$gm" "(one process, $workers threads)"
printf '%-12s %10s %12s %10s %s\n' torchvision "$ti" "$tc" "$tm" "(main process; each of $workers workers up to $tw MB more)"
echo "loader ${r}x torchvision DataLoader ($workers workers)"
