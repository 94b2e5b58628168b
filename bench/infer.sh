#!/usr/bin/env bash
# infer.sh BUILD — inference images/s and peak memory of graft and onnxruntime-node, measured
# in the same run on the same exported models (torchvision, random weights), 2 threads.
set -euo pipefail
build=$1
cache=${GRAFT_CACHE:-$HOME/.cache/graft}
models="$build/bench-models"
seconds=${BENCH_SECONDS:-10}
threads=2
mkdir -p "$models"
/usr/bin/python3 scripts/export_torchvision.py "$models" --models resnet18,mobilenet_v2 --opset 13 >&2
declare -A ratio
printf '%-14s %5s %12s %10s %14s %10s %7s\n' model batch "graft img/s" "graft MB" "onnxrt img/s" "onnxrt MB" ratio
for name in resnet18 mobilenet_v2; do
  for batch in 1 32; do
    onnx="$models/${name}_op13.onnx"
    g=$("$build/bench/bench_infer" "$onnx" $batch $threads "$seconds")
    o=$(NODE_PATH="$cache/node_modules" node bench/ort_bench.js "$onnx" $batch $threads "$seconds")
    gi=$(echo "$g" | awk '{print $2}'); gm=$(echo "$g" | awk '{print $5}')
    oi=$(echo "$o" | awk '{print $2}'); om=$(echo "$o" | awk '{print $5}')
    r=$(awk -v a="$gi" -v b="$oi" 'BEGIN{printf "%.2f", a/b}')
    printf '%-14s %5d %12s %10s %14s %10s %7s\n' $name $batch "$gi" "$gm" "$oi" "$om" "${r}x"
    ratio[$name.$batch]=$r
  done
done
echo "resnet18 ${ratio[resnet18.32]}x onnxruntime, mobilenet_v2 ${ratio[mobilenet_v2.32]}x onnxruntime (batch 32, 2 threads)"
