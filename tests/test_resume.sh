#!/bin/sh
# test_resume.sh — checkpoints survive a crash: tests/train_driver.c (the tiny CNN on 1024
# Fashion-MNIST images, 3 epochs of 32 batches) run
#   1. without interruption                                        -> a.bin
#   2. with a checkpoint every 5 steps, killed with SIGKILL in the middle of epoch 2, then
#      resumed with --resume                                       -> b.bin, identical to a.bin
#   3. with the newest checkpoint truncated to half its size: the resume says on stderr which
#      file is unusable and that the previous one is used, redoes the lost steps -> identical
#   4. with a checkpoint whose 'conv2.weight' has another shape (rewritten by python from the
#      format's description, CRC recomputed): a clear error naming the tensor; with both files
#      unusable, an error naming both; with no checkpoint, an error saying so;
#   5. with SGD (momentum, L2-SP, clipping), stopped after step 40 and resumed -> identical;
#   6. in the states a crash inside gr_ckpt_write can leave -> resumes, identical.
# The checkpoint's contents are also read by an independent reader (json + numpy): every
# parameter, opt.m./opt.v. state, buf. running statistic, the rng and the metadata.
#   test_resume.sh TRAIN_DRIVER MODEL.onnx WORKDIR PYTHON
set -u
driver=$1 model=$2 work=$3 py=$4
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
driver=$(abs "$driver") model=$(abs "$model")
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

rm -rf "$work" && mkdir -p "$work" || exit 2
cd "$work" || exit 2

# 1. the reference run
"$driver" "$model" --out a.bin 2>a.err || { cat a.err >&2; bad "uninterrupted run failed"; }

# 2. killed mid-epoch 2 (steps 33..64): each step sleeps 30 ms so the kill lands near step 48
"$driver" "$model" --dir run --every 5 --print-steps --step-delay 30 >steps.txt 2>run.err &
pid=$!
last=0
i=0
while [ "$i" -lt 3000 ]; do
    last=$(tail -n 1 steps.txt 2>/dev/null | awk '$1 == "step" { print $2 }')
    [ -n "$last" ] && [ "$last" -ge 48 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
    i=$((i + 1))
done
kill -9 "$pid" 2>/dev/null
wait "$pid"
status=$?
last=$(awk '$1 == "step" { n = $2 } END { print n + 0 }' steps.txt)
echo "killed with status $status after step $last; folder: $(ls run | tr '\n' ' ')"
check '[ "$status" -eq 137 ]' "the run was not killed by SIGKILL (status $status)"
check '[ "$last" -ge 33 ] && [ "$last" -le 64 ]' "killed after step $last, not in epoch 2 (steps 33..64)"

"$driver" "$model" --dir run --every 5 --resume --print-steps --out b.bin >resume.txt 2>resume.err ||
    { cat resume.err >&2; bad "resume failed"; }
from=$(sed -n 's/.*resumed after step \([0-9]*\).*/\1/p' resume.err)
first=$(awk '$1 == "step" { print $2; exit }' resume.txt)
echo "resumed after step $from (first step run: $first)"
check '[ -n "$from" ] && [ "$from" -gt 0 ] && [ $((from % 5)) -eq 0 ] && [ "$from" -le "$last" ] && [ "$from" -ge $((last - 5)) ]' \
    "resumed after step '$from', expected the last multiple of 5 at or before step $last"
check '[ "$first" = $((from + 1)) ]' "the resumed run's first step is '$first', expected $((from + 1))"
check 'cmp a.bin b.bin' "weights after kill + resume differ from the uninterrupted run"

# The final checkpoint (step 95) through an independent reader.
"$py" - run/ckpt.safetensors "$model" <<'EOF' || bad "independent reading of run/ckpt.safetensors"
import json, struct, sys, zlib
import numpy as np, onnx
path, model = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n]); data = raw[8 + n:]
meta = h.pop("__metadata__")
assert int(meta["graft_crc32"]) == zlib.crc32(data), "crc"
g = onnx.load(model).graph
stats = {i for nd in g.node if nd.op_type == "BatchNormalization" for i in nd.input[3:5]}
inits = {t.name: list(t.dims) for t in g.initializer}
want = {}
for name, dims in inits.items():
    if name in stats:
        want["buf." + name] = dims
    else:
        want[name] = want["opt.m." + name] = want["opt.v." + name] = dims
want["rng"] = [4]
got = {k: v["shape"] for k, v in h.items()}
assert got == want, f"tensors {sorted(got.items())} != {sorted(want.items())}"
assert h["rng"]["dtype"] == "I64" and all(v["dtype"] == "F32" for k, v in h.items() if k != "rng")
assert meta["step"] == "95" and meta["epoch"] == "2" and meta["batch"] == "31", meta
assert meta["optimizer"] == "adamw" and json.loads(meta["optimizer_cfg"])["lr"] == 3e-3, meta
assert meta["loader_seed"] == "20240601" and meta["graft_version"], meta
v = {k: np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]], "<i8" if k == "rng" else "<f4")
     for k, e in h.items()}
assert all(np.isfinite(a).all() for k, a in v.items() if k != "rng")
assert (v["opt.v.fc.weight"] > 0).all(), "AdamW second moments should be positive"
var = v["buf.bn1.running_var"]
assert (var > 0).all() and not np.allclose(var, 1), var
print(f"independent reader: {len(h)} tensors, metadata {sorted(meta)}")
EOF
ok

# 3. the newest checkpoint truncated: the previous one (step 90) is used
size=$(stat -c %s run/ckpt.safetensors)
truncate -s $((size / 2)) run/ckpt.safetensors
"$driver" "$model" --dir run --resume --print-steps --out c.bin >trunc.txt 2>trunc.err ||
    { cat trunc.err >&2; bad "resume after truncation failed"; }
cat trunc.err
check 'grep -q "run/ckpt.safetensors" trunc.err && grep -q "truncated" trunc.err' \
    "stderr does not name the truncated file and the reason"
check 'grep -q "previous checkpoint run/ckpt.prev.safetensors" trunc.err' "stderr does not say the previous checkpoint is used"
check 'grep -q "resumed after step 90 " trunc.err' "did not resume from the previous checkpoint (step 90)"
check 'cmp a.bin c.bin' "weights after resuming from the previous checkpoint differ from the uninterrupted run"

# 4. a checkpoint that does not fit the model
mkdir -p misfit
"$py" - run/ckpt.prev.safetensors misfit/ckpt.safetensors <<'EOF' || bad "writing the misfit checkpoint"
import json, struct, sys, zlib
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n]); data = raw[8 + n:]
meta = h.pop("__metadata__")
blobs, header = [], {}
off = 0
for name, e in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    b = data[e["data_offsets"][0]:e["data_offsets"][1]]
    shape = e["shape"]
    if name == "conv2.weight":
        shape = [16, 8, 1, 1]
        b = b[:16 * 8 * 4]
    header[name] = {"dtype": e["dtype"], "shape": shape, "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
body = b"".join(blobs)
meta["graft_crc32"] = str(zlib.crc32(body))
text = json.dumps({"__metadata__": meta, **header}).encode()
text += b" " * (-len(text) % 8)
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + body)
EOF
"$driver" "$model" --dir misfit --resume --out d.bin >/dev/null 2>misfit.err
status=$?
cat misfit.err
check '[ "$status" -ne 0 ] && [ ! -e d.bin ]' "a misfit checkpoint was accepted"
check 'grep -q "misfit/ckpt.safetensors: tensor .conv2.weight. is float32 (16, 8, 1, 1) in the checkpoint but float32 (16, 8, 3, 3) in the model" misfit.err' \
    "the error does not name the misfit tensor and both shapes"
check 'grep -q "no previous checkpoint" misfit.err' "the error does not say there is no previous checkpoint"

# both files unusable (the previous one is the truncated file of 3.): the error names both
cp run/ckpt.safetensors misfit/ckpt.prev.safetensors
"$driver" "$model" --dir misfit --resume >/dev/null 2>both.err
status=$?
cat both.err
check '[ "$status" -ne 0 ] && grep -q "misfit/ckpt.safetensors" both.err && grep -q "misfit/ckpt.prev.safetensors" both.err' \
    "with both checkpoints unusable, the error does not name both"

# no checkpoint at all
mkdir -p empty
"$driver" "$model" --dir empty --resume >/dev/null 2>empty.err
status=$?
cat empty.err
check '[ "$status" -ne 0 ] && grep -q "no checkpoint to resume from" empty.err' "resuming from an empty folder"

# 5. SGD (Nesterov momentum, L2-SP starting values, clipping, step schedule): stopped after step
#    40, resumed from the step-35 checkpoint -> identical; its file holds opt.m. and opt.w0.
"$driver" "$model" --opt sgd --out sa.bin 2>sa.err || { cat sa.err >&2; bad "SGD run failed"; }
"$driver" "$model" --opt sgd --dir sgd --every 7 --stop-after 40 >/dev/null 2>sgd.err
status=$?
check '[ "$status" -eq 3 ]' "the SGD run did not stop after step 40 (status $status)"
"$py" - sgd/ckpt.safetensors <<'EOF2' || bad "independent reading of sgd/ckpt.safetensors"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n]); meta = h.pop("__metadata__")
names = set(h)
assert meta["optimizer"] == "sgd" and meta["step"] == "35", meta
assert "opt.m.conv1.weight" in names and "opt.w0.fc.bias" in names, names
assert not any(k.startswith("opt.v.") for k in names), names
print(f"SGD checkpoint: {len(names)} tensors, step {meta['step']}")
EOF2
"$driver" "$model" --opt sgd --dir sgd --every 7 --resume --out sb.bin >/dev/null 2>sgdr.err ||
    { cat sgdr.err >&2; bad "SGD resume failed"; }
check 'grep -q "resumed after step 35 " sgdr.err' "the SGD run did not resume after step 35"
check 'cmp sa.bin sb.bin' "SGD: weights after stop + resume differ from the uninterrupted run"
"$driver" "$model" --dir sgd --resume >/dev/null 2>kind.err
status=$?
cat kind.err
check '[ "$status" -ne 0 ] && grep -q "written by a sgd optimizer, this session uses adamw" kind.err' \
    "an SGD checkpoint loaded into an AdamW session"

# 6. what a crash inside gr_ckpt_write leaves behind (see src/train/checkpoint.c):
#    (a) during the write of the new file: a partial temp file next to intact checkpoints;
mkdir -p crash_a crash_b
cp run/ckpt.prev.safetensors crash_a/ckpt.safetensors
head -c 1000 run/ckpt.prev.safetensors >crash_a/ckpt.next.safetensors.tmp.99999
"$driver" "$model" --dir crash_a --resume --out ca.bin >/dev/null 2>ca.err || { cat ca.err >&2; bad "crash state (a)"; }
check '! grep -q unusable ca.err && grep -q "resumed after step 90 " ca.err && cmp a.bin ca.bin' \
    "crash state (a): not resumed silently from the intact checkpoint, or weights differ"
#    (b) where hard links are unavailable, between renaming the newest to the previous and the
#        new one into place: only ckpt.prev.safetensors and ckpt.next.safetensors exist.
cp run/ckpt.prev.safetensors crash_b/ckpt.prev.safetensors
cp run/ckpt.prev.safetensors crash_b/ckpt.next.safetensors
"$driver" "$model" --dir crash_b --resume --out cb.bin >/dev/null 2>cb.err || { cat cb.err >&2; bad "crash state (b)"; }
check 'grep -q "crash_b/ckpt.safetensors: missing" cb.err && grep -q "resumed after step 90 " cb.err && cmp a.bin cb.bin' \
    "crash state (b): the previous checkpoint was not used, or weights differ"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
