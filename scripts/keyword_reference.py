#!/usr/bin/env python3
"""keyword_reference.py — openWakeWord's front end and a keyword head in onnxruntime-node, on the
same audio graft ran, as the reference for graft's numbers (tests/test_keyword.sh).

    keyword_reference.py WORK MODELS HEAD [FULL]

WORK holds clip.wav (16-bit 16 kHz mono) and graft's results: mel.npy and emb.npy (graft keyword
embed --mel-output), batch.json, stream.json and stdin.json (graft keyword listen --scores --json
on the file, with --stream, and from stdin). The reference runs the models one call per 80 ms
chunk / per window, as openWakeWord's streaming loop does (openwakeword/utils.py:
_streaming_features), scales mel frames with x / 10 + 2 and takes each embedding from the 76
frames ending with a chunk. Prints the max differences relative to the largest reference value
and exits 1 if one exceeds 1e-4 (1e-5 between graft's own batch and live paths).
FULL, the whole detector as one model (graft keyword export), runs in onnxruntime on every
32480-sample window of the clip (samples / 32768) and must give graft's scores step by step.
"""
import json
import os
import subprocess
import sys
import wave

import numpy as np

work, models, head = sys.argv[1:4]
full = sys.argv[4] if len(sys.argv) > 4 else None
here = os.path.dirname(os.path.abspath(__file__))


def ort(model, x, batch):
    np.save(os.path.join(work, "ref_in.npy"), x.astype(np.float32))
    env = dict(os.environ, ORT_BATCH=str(batch))
    subprocess.run(["node", os.path.join(here, "ort_run.js"), model, os.path.join(work, "ref_in.npy"),
                    os.path.join(work, "ref_out.npy")], check=True, env=env, stderr=subprocess.DEVNULL)
    return np.load(os.path.join(work, "ref_out.npy"))


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


with wave.open(os.path.join(work, "clip.wav")) as w:
    x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
nchunk = (len(x) + 1279) // 1280
chunks = np.zeros((nchunk, 1760), np.float32)
for c in range(nchunk):
    seg = x[1280 * c:1280 * c + 1760]
    chunks[c, :len(seg)] = seg
mel = ort(os.path.join(models, "melspectrogram.onnx"), chunks, 1).reshape(-1, 32) / 10 + 2
ne = nchunk - 9
windows = np.stack([mel[8 * t + 4:8 * t + 80] for t in range(ne)])[..., None]
emb = ort(os.path.join(models, "embedding_model.onnx"), windows, 64).reshape(-1, 96)
g_mel, g_emb = np.load(os.path.join(work, "mel.npy")), np.load(os.path.join(work, "emb.npy"))
assert g_mel.shape == mel.shape, f"mel frames: graft {g_mel.shape}, reference {mel.shape}"
assert g_emb.shape == emb.shape, f"embeddings: graft {g_emb.shape}, reference {emb.shape}"
heads_in = lambda e: np.stack([e[s:s + 16] for s in range(len(e) - 15)])
head_same = ort(head, heads_in(g_emb), 1).ravel()   # the head on graft's embeddings
end_to_end = ort(head, heads_in(emb), 1).ravel()    # everything in onnxruntime
scores = {k: np.array([s for _, s in json.load(open(os.path.join(work, k + ".json")))["scores"]])
          for k in ("batch", "stream", "stdin")}
checks = [
    ("mel frames", rel(g_mel, mel), 1e-4),
    ("embeddings", rel(g_emb, emb), 1e-4),
    ("head scores on the same embeddings", rel(scores["batch"], head_same), 1e-4),
    ("scores end to end", rel(scores["batch"], end_to_end), 1e-4),
    ("live path vs batch path", rel(scores["stream"], scores["batch"]), 1e-5),
    ("stdin vs batch path", rel(scores["stdin"], scores["batch"]), 1e-5),
]
if full:  # step s reads samples [1280 s, 1280 s + 32480): the windows that lie inside the clip
    nfull = (len(x) - 32480) // 1280 + 1
    assert nfull > 0, f"the clip has {len(x)} samples; the one-model check needs at least 32480"
    wins = np.stack([x[1280 * s:1280 * s + 32480] for s in range(nfull)]) / 32768
    full_scores = ort(full, wins, 16).ravel()
    checks.append(("one-model export vs graft's scores", rel(scores["batch"][:nfull], full_scores), 1e-4))
ok = True
print(f"{len(mel)} mel frames, {len(emb)} embeddings, {len(end_to_end)} scores "
      f"(max reference score {end_to_end.max():.3f})")
for what, d, bound in checks:
    print(f"{what:38s} max diff {d:.2e} (relative to the largest value; bound {bound:g})")
    ok &= d <= bound and len(scores["batch"]) == len(end_to_end)
sys.exit(0 if ok else 1)
