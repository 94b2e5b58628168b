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
# window on stderr. BENCH_WARMUP, BENCH_WINDOWS, BENCH_SECONDS, BENCH_NOGRAD override.
# PyTorch runs the ordinary fine-tuning code (requires_grad_(False) on frozen parameters,
# model.train() then .eval() on frozen BatchNorms); the ratios use it. The "no_grad" rows are
# PyTorch with the frozen trunk under torch.no_grad() as well, for reference (BENCH_NOGRAD=0 skips).
set -euo pipefail
build=$1
models="$build/bench-models"
batch=32
threads=2
warmup=${BENCH_WARMUP:-2}
windows=${BENCH_WINDOWS:-5}
seconds=${BENCH_SECONDS:-3}
nograd=${BENCH_NOGRAD:-1}
export OMP_NUM_THREADS=$threads
py=/usr/bin/python3
$py bench/torch_train.py export "$models"
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}'; }
echo "load before: $(uptime)"
echo "batch $batch, 224x224, $threads threads; $warmup warm-up steps, best (median) of $windows windows of ~${seconds} s"
declare -A ratio
worst_mem=0
printf '%-13s %-5s %18s %8s %8s %18s %8s %8s %7s %7s\n' model mode "graft img/s (med)" "graft ms" "graft MB" \
  "torch img/s (med)" "torch ms" "torch MB" speed memory
for name in resnet18 mobilenet_v2; do
  for mode in all last head; do
    g=$("$build/bench/bench_train" "$models/$name.onnx" "$models/${name}_$mode.txt" $batch $threads $warmup $windows $seconds)
    o=$($py bench/torch_train.py run $name $mode $batch $threads $warmup $windows $seconds)
    echo "  graft: $g" >&2
    echo "  torch: $o" >&2
    gd=$(echo "$g" | field median); od=$(echo "$o" | field median)
    gi=$(echo "$g" | field graft); gm=$(echo "$g" | field peak_rss); gs=$(echo "$g" | field step_ms)
    oi=$(echo "$o" | field torch); om=$(echo "$o" | field peak_rss); os=$(echo "$o" | field step_ms)
    r=$(awk -v a="$gi" -v b="$oi" 'BEGIN{printf "%.2f", a/b}')
    rm=$(awk -v a="$gm" -v b="$om" 'BEGIN{printf "%.2f", a/b}')
    worst_mem=$(awk -v a="$rm" -v b="$worst_mem" 'BEGIN{print (a > b) ? a : b}')
    printf '%-13s %-5s %18s %8s %8s %18s %8s %8s %7s %7s\n' $name $mode "$gi ($gd)" "$gs" "$gm" "$oi ($od)" "$os" "$om" \
      "${r}x" "${rm}x"
    ratio[$name.$mode]=$r
    eval "bw_${name}_$mode=$(echo "$g" | field backward_steps) ms_${name}_$mode=$gs mb_${name}_$mode=$gm"
  done
done
if [ "$nograd" = 1 ]; then
  echo "PyTorch best practice (frozen trunk under torch.no_grad(); not used in the ratios):"
  for name in resnet18 mobilenet_v2; do
    for mode in last head; do
      o=$($py bench/torch_train.py run $name $mode $batch $threads $warmup $windows $seconds nograd)
      echo "  torch no_grad: $o" >&2
      printf '%-13s %-5s %18s %8s %8s  (torch, no_grad trunk)\n' $name $mode "$(echo "$o" | field torch) ($(echo "$o" | field median))" \
        "$(echo "$o" | field step_ms)" "$(echo "$o" | field peak_rss)"
    done
  done
fi
echo "frozen means free (graft, resnet18): head $bw_resnet18_head backward steps, ${mb_resnet18_head} MB peak, \
${ms_resnet18_head} ms/step; all $bw_resnet18_all backward steps, ${mb_resnet18_all} MB peak, ${ms_resnet18_all} ms/step"
echo "load after: $(uptime)"
echo "PyTorch = ordinary fine-tuning code (requires_grad_(False) + frozen BatchNorms .eval(), no torch.no_grad())"
printf 'resnet18 all/last/head %sx/%sx/%sx pytorch, mobilenet_v2 all/last/head %sx/%sx/%sx pytorch, peak memory %.2fx\n' \
  "${ratio[resnet18.all]}" "${ratio[resnet18.last]}" "${ratio[resnet18.head]}" \
  "${ratio[mobilenet_v2.all]}" "${ratio[mobilenet_v2.last]}" "${ratio[mobilenet_v2.head]}" "$worst_mem"
