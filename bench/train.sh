#!/usr/bin/env bash
# train.sh BUILD — training images/s and peak memory of graft and PyTorch, measured in the same
# run on the same models (torchvision resnet18 / mobilenet_v2, random weights, 10 classes),
# batch 32 at 224x224, 2 threads, SGD with momentum, cross-entropy, in three modes:
#   all   every parameter trains, every BatchNorm in training mode
#   last  only the last block and the head train (resnet18 layer4.1 + fc, mobilenet_v2
#         features.18 + classifier); frozen BatchNorms in inference mode
#   head  only the classifier trains
# Each (engine, model, mode) runs in its own process, so peak RSS (ru_maxrss) is per mode; graft
# and PyTorch alternate case by case so that both see the same machine load. Speed is the best of
# WINDOWS timed windows of about SECONDS each (whole steps, at least one), after WARMUP steps: on
# a shared machine other load only slows a window down. Medians are printed beside it, every
# window on stderr; "cpu ms" is the least process CPU time per step (both threads), a cross-check.
# The whole alternation runs ROUNDS times (other agents' load comes and goes for minutes) and each
# case keeps its best round; peak memory is the largest over the rounds. BENCH_WARMUP,
# BENCH_WINDOWS, BENCH_SECONDS, BENCH_ROUNDS and BENCH_NOGRAD override the defaults.
# PyTorch runs the ordinary fine-tuning code (requires_grad_(False) on frozen parameters,
# model.train() then .eval() on frozen BatchNorms); the ratios use it. The "no_grad" rows are
# PyTorch with the frozen trunk under torch.no_grad() as well, for reference (BENCH_NOGRAD=0 skips).
set -euo pipefail
build=$1
models="$build/bench-models"
batch=32
threads=2
warmup=${BENCH_WARMUP:-2}
windows=${BENCH_WINDOWS:-8}
seconds=${BENCH_SECONDS:-1.5}
rounds=${BENCH_ROUNDS:-2}
nograd=${BENCH_NOGRAD:-1}
export OMP_NUM_THREADS=$threads
py=/usr/bin/python3
$py bench/torch_train.py export "$models"
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}'; }
# keep KEY LINE ENGINE: res[KEY] becomes LINE when it is faster; mem[KEY] the largest peak RSS.
declare -A res mem
keep() {
  local new old
  new=$(echo "$2" | field "$3")
  old=$(echo "${res[$1]:-x 0}" | field "$3")
  if awk -v a="$new" -v b="${old:-0}" 'BEGIN{exit !(a > b)}'; then res[$1]=$2; fi
  new=$(echo "$2" | field peak_rss)
  if awk -v a="$new" -v b="${mem[$1]:-0}" 'BEGIN{exit !(a > b)}'; then mem[$1]=$new; fi
}
echo "load before: $(uptime)"
echo "batch $batch, 224x224, $threads threads; $warmup warm-up steps, best (median) of $windows windows of ~${seconds} s, best of $rounds rounds"
for round in $(seq "$rounds"); do
  for name in resnet18 mobilenet_v2; do
    for mode in all last head; do
      g=$("$build/bench/bench_train" "$models/$name.onnx" "$models/${name}_$mode.txt" $batch $threads $warmup $windows $seconds)
      o=$($py bench/torch_train.py run $name $mode $batch $threads $warmup $windows $seconds)
      echo "  round $round $name $mode: $g" >&2
      echo "  round $round $name $mode: $o" >&2
      keep "g.$name.$mode" "$g" graft
      keep "t.$name.$mode" "$o" torch
      if [ "$nograd" = 1 ] && [ $mode != all ]; then
        o=$($py bench/torch_train.py run $name $mode $batch $threads $warmup $windows $seconds nograd)
        echo "  round $round $name $mode no_grad: $o" >&2
        keep "n.$name.$mode" "$o" torch
      fi
    done
  done
  echo "  round $round done: $(uptime)" >&2
done
declare -A ratio
worst_mem=0
printf '%-13s %-5s %18s %8s %8s %8s %18s %8s %8s %8s %7s %7s\n' model mode "graft img/s (med)" "graft ms" \
  "cpu ms" "graft MB" "torch img/s (med)" "torch ms" "cpu ms" "torch MB" speed memory
for name in resnet18 mobilenet_v2; do
  for mode in all last head; do
    g=${res[g.$name.$mode]}; o=${res[t.$name.$mode]}
    gi=$(echo "$g" | field graft); gd=$(echo "$g" | field median); gs=$(echo "$g" | field step_ms)
    gc=$(echo "$g" | field cpu_ms); gm=${mem[g.$name.$mode]}
    oi=$(echo "$o" | field torch); od=$(echo "$o" | field median); os=$(echo "$o" | field step_ms)
    oc=$(echo "$o" | field cpu_ms); om=${mem[t.$name.$mode]}
    r=$(awk -v a="$gi" -v b="$oi" 'BEGIN{printf "%.2f", a/b}')
    rm=$(awk -v a="$gm" -v b="$om" 'BEGIN{printf "%.2f", a/b}')
    worst_mem=$(awk -v a="$rm" -v b="$worst_mem" 'BEGIN{print (a > b) ? a : b}')
    printf '%-13s %-5s %18s %8s %8s %8s %18s %8s %8s %8s %7s %7s\n' $name $mode "$gi ($gd)" "$gs" "$gc" "$gm" \
      "$oi ($od)" "$os" "$oc" "$om" "${r}x" "${rm}x"
    ratio[$name.$mode]=$r
  done
done
if [ "$nograd" = 1 ]; then
  echo "PyTorch best practice (frozen trunk under torch.no_grad(); not used in the ratios):"
  for name in resnet18 mobilenet_v2; do
    for mode in last head; do
      o=${res[n.$name.$mode]}
      printf '%-13s %-5s %18s %8s %8s %8s  (torch, no_grad trunk)\n' $name $mode \
        "$(echo "$o" | field torch) ($(echo "$o" | field median))" "$(echo "$o" | field step_ms)" \
        "$(echo "$o" | field cpu_ms)" "${mem[n.$name.$mode]}"
    done
  done
fi
h=${res[g.resnet18.head]}; a=${res[g.resnet18.all]}
echo "frozen means free (graft, resnet18): head $(echo "$h" | field backward_steps) backward steps, ${mem[g.resnet18.head]} MB peak," \
  "$(echo "$h" | field step_ms) ms/step; all $(echo "$a" | field backward_steps) backward steps, ${mem[g.resnet18.all]} MB peak," \
  "$(echo "$a" | field step_ms) ms/step"
echo "load after: $(uptime)"
echo "PyTorch = ordinary fine-tuning code (requires_grad_(False) + frozen BatchNorms .eval(), no torch.no_grad())"
printf 'resnet18 all/last/head %sx/%sx/%sx pytorch, mobilenet_v2 all/last/head %sx/%sx/%sx pytorch, peak memory %.2fx\n' \
  "${ratio[resnet18.all]}" "${ratio[resnet18.last]}" "${ratio[resnet18.head]}" \
  "${ratio[mobilenet_v2.all]}" "${ratio[mobilenet_v2.last]}" "${ratio[mobilenet_v2.head]}" "$worst_mem"
