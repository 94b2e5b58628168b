#!/usr/bin/env bash
# test_cli_finetune.sh GRAFT TINY_CNN SRCDIR — `graft finetune` end to end on a generated image
# folder: four classes of 28x28 PNGs (noisy red, green, blue and gray squares), 40 per class to
# train on and 25 per class to test (100 test images). The model is the tiny CNN of
# scripts/make_tiny_cnn.py (Conv-BN-Relu x2, GAP, Gemm to 10 classes).
#   - the classifier is replaced for 4 classes, the recipe runs (probe head, then phase 2) and the
#     result reaches 95 % on the test images (a broken pipeline cannot: chance is 25 %);
#   - the ONNX it writes runs in onnxruntime-node with the probabilities graft computes on the
#     100 test images (max abs difference printed, <= 1e-4), and `graft predict` / `graft eval`
#     take it (class names from its metadata);
#   - an interrupted run (--stop-after-epochs) resumes from its checkpoint (--resume) and gives
#     exactly the uninterrupted run's probabilities;
#   - weight imprinting (--head-init imprint) predicts as numpy's cosine class means;
#   - the --report page opens in headless Chromium with its plots drawn and no network request
#     (tests/report_browser_check.py);
#   - bad input: an output folder that does not exist, an empty class, --resume without a
#     checkpoint, a layer that does not exist: exit 1 with a message naming it.
set -u
GRAFT=$1 CNN=$2 SRC=$3
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 - "$tmp" <<'PY'
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(7)
colors = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200), "gray": (128, 128, 128)}
x = []
for split, n in (("train", 40), ("test", 25)):
    for name, c in colors.items():
        os.makedirs(f"{root}/{split}/{name}", exist_ok=True)
        for i in range(n):
            img = np.clip(np.array(c) + rng.normal(0, 30, (28, 28, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(f"{root}/{split}/{name}/{i:03d}.png")
# the test images as graft's loader sees them (size=28 keeps 28x28, normalize=none), in its
# order: classes sorted, files sorted
for name in sorted(colors):
    for i in range(25):
        a = np.asarray(Image.open(f"{root}/test/{name}/{i:03d}.png").convert("RGB"), dtype=np.float32) / 255
        x.append(a.transpose(2, 0, 1))
np.save(f"{root}/x.npy", np.stack(x))
# a CSV of the test images with a group column, plus a "dim" group: the same colours at a
# quarter of the brightness, which the model has not seen
rows = []
for name, c in colors.items():
    for i in range(25):
        rows.append((f"test/{name}/{i:03d}.png", name, "bright"))
        img = np.clip(np.array(c) / 4 + rng.normal(0, 30, (28, 28, 3)), 0, 255).astype(np.uint8)
        os.makedirs(f"{root}/dim/{name}", exist_ok=True)
        Image.fromarray(img).save(f"{root}/dim/{name}/{i:03d}.png")
        rows.append((f"dim/{name}/{i:03d}.png", name, "dim"))
with open(f"{root}/groups.csv", "w") as f:
    f.write("path,label,group\n" + "".join(",".join(r) + "\n" for r in rows))
PY
T="--transform size=28,normalize=none --workers 1"

"$GRAFT" finetune "$CNN" "$tmp/train" $T --seed 3 -o "$tmp/m.onnx" --test "$tmp/test" --report "$tmp/r.html" \
  --json > "$tmp/ft.json" 2> "$tmp/ft.err"
rc=$?  # before the message's command substitutions, which reset $?
check "finetune exit 0 ($(tail -1 "$tmp/ft.err"))" "[ $rc -eq 0 ]"
/usr/bin/python3 -c "
import json, sys
o = json.load(open('$tmp/ft.json'))
h = o['history']
acc = o['test_metrics']['accuracy']
print('test accuracy %.3f, %d epochs, val %d' % (acc, len(h['epoch']), o['val']))
ok = acc >= 0.95 and o['train'] + o['val'] == 160 and o['val'] > 0 and 2 in h['phase'] and 'phase 2' in o['recipe']
sys.exit(0 if ok else 1)" > "$tmp/acc.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "finetune reaches 95 % on the test images with a validation split and two phases ($(cat "$tmp/acc.out"))" "[ $rc -eq 0 ]"
check "the recipe is in the summary" "grep -q 'early stopping: lowest validation loss kept' '$tmp/ft.json'"
check "report with learning curves, no script" "grep -q 'id=\"curves\"' '$tmp/r.html' && ! grep -qi '<script' '$tmp/r.html'"
# the report in headless Chromium: its plots rendered with the run's counts, no network request
/usr/bin/python3 "$SRC/tests/report_browser_check.py" "$tmp/r.html" "$tmp/ft.json" "$tmp/browser" > "$tmp/browser.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "the report renders in headless Chromium ($(grep -c '^ok' "$tmp/browser.out") checks; $(grep '^FAIL' "$tmp/browser.out" | head -2 | tr '\n' ' '))" "[ $rc -eq 0 ]"

# the model in graft (extract of its probabilities) and in onnxruntime
"$GRAFT" extract "$tmp/m.onnx" "$tmp/test" $T --layer probabilities --pool none --no-cache -o "$tmp/g.npy" > /dev/null 2>&1
check "graft runs the fine-tuned model" "[ $? -eq 0 ]"
node "$SRC/scripts/ort_run.js" "$tmp/m.onnx" "$tmp/x.npy" "$tmp/o.npy" > /dev/null 2>&1
check "onnxruntime runs the fine-tuned model" "[ $? -eq 0 ]"
/usr/bin/python3 -c "
import sys
import numpy as np
g = np.load('$tmp/g.npy'); o = np.load('$tmp/o.npy')
d = np.abs(g - o).max()
print('%d images, max abs difference of the probabilities %.2e' % (len(g), d))
sys.exit(0 if g.shape == (100, 4) and d <= 1e-4 else 1)" > "$tmp/ort.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "export round trip: graft = onnxruntime ($(cat "$tmp/ort.out"))" "[ $rc -eq 0 ]"
echo "export round trip: $(cat "$tmp/ort.out")"
/usr/bin/python3 -c "
import json, sys
import onnx
m = onnx.load('$tmp/m.onnx')
onnx.checker.check_model(m, full_check=True)
meta = {p.key: p.value for p in m.metadata_props}
ok = json.loads(meta['graft.classes']) == ['blue', 'gray', 'green', 'red'] and meta['graft.transform'].startswith('size=28')
ok = ok and 'graft.recipe' in meta and json.loads(meta['graft.history'])['epoch']
sys.exit(0 if ok else 1)" > "$tmp/onnxcheck.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "the fine-tuned model passes onnx.checker (full check) with classes, preprocessing, recipe and curves in its metadata ($(tail -1 "$tmp/onnxcheck.out"))" "[ $rc -eq 0 ]"

"$GRAFT" predict "$tmp/m.onnx" "$tmp/test/red/000.png" --top 1 --json > "$tmp/p.json" 2>&1
check "predict takes the fine-tuned model and names the class" "grep -Eq '\"label\":[[:space:]]*\"red\"' '$tmp/p.json'"
"$GRAFT" eval "$tmp/m.onnx" "$tmp/test" --no-cache --report "$tmp/e.html" > "$tmp/ev.out" 2>&1
check "eval takes the fine-tuned model" "[ $? -eq 0 ] && grep -q '100 samples, accuracy' '$tmp/ev.out' && grep -q 'id=\"curves\"' '$tmp/e.html'"

# weight imprinting without fine-tuning is the cosine nearest-class-mean classifier of the frozen
# features: the same predictions as numpy's on graft's extracted features
"$GRAFT" finetune "$CNN" "$tmp/train" $T --head-init imprint --epochs none --val 0 -o "$tmp/imp.onnx" --test "$tmp/test" \
  --no-cache --json > "$tmp/imp.json" 2>&1
check "finetune --head-init imprint exit 0" "[ $? -eq 0 ]"
"$GRAFT" extract "$CNN" "$tmp/train" $T --layer /Flatten_output_0 --pool none --no-cache -o "$tmp/ftr.npy" \
  --labels-output "$tmp/ytr.npy" > /dev/null 2>&1
"$GRAFT" extract "$CNN" "$tmp/test" $T --layer /Flatten_output_0 --pool none --no-cache -o "$tmp/fte.npy" > /dev/null 2>&1
"$GRAFT" extract "$tmp/imp.onnx" "$tmp/test" $T --layer probabilities --pool none --no-cache -o "$tmp/pimp.npy" > /dev/null 2>&1
/usr/bin/python3 -c "
import json, sys
import numpy as np
n = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
X, y, T = n(np.load('$tmp/ftr.npy')), np.load('$tmp/ytr.npy'), n(np.load('$tmp/fte.npy'))
M = n(np.stack([X[y == c].mean(0) for c in range(4)]))
want, got = (T @ M.T).argmax(1), np.load('$tmp/pimp.npy').argmax(1)
acc = json.load(open('$tmp/imp.json'))['test_metrics']['accuracy']
# the weights themselves: the normalised class means, scaled by 10 / (mean row norm); bias 0
import onnx
from onnx import numpy_helper
w = {t.name: numpy_helper.to_array(t) for t in onnx.load('$tmp/imp.onnx').graph.initializer}
raw = np.load('$tmp/ftr.npy')
Wn = M * 10 / np.linalg.norm(raw, axis=1).mean()
werr = np.abs(w['head.fc.weight'] - Wn).max() / np.abs(Wn).max()
print('%d of %d predictions equal numpy\'s cosine class means, weights %.1e, test accuracy %.3f' % ((want == got).sum(), len(got), werr, acc))
sys.exit(0 if (want == got).all() and acc >= 0.95 and werr < 1e-5 and not w['head.fc.bias'].any() else 1)" > "$tmp/imp.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "imprinted head = scaled cosine class means ($(cat "$tmp/imp.out"))" "[ $rc -eq 0 ]"

# per-group accuracy from the CSV's group column, against numpy on graft's own probabilities
"$GRAFT" eval "$tmp/m.onnx" "$tmp/groups.csv" --no-cache --json > "$tmp/g.json" 2> "$tmp/g.err"
check "eval with a group column exit 0" "[ $? -eq 0 ]"
"$GRAFT" extract "$tmp/m.onnx" "$tmp/groups.csv" $T --layer probabilities --pool none --no-cache -o "$tmp/gp.npy" \
  --labels-output "$tmp/gy.npy" > /dev/null 2>&1
/usr/bin/python3 -c "
import csv, json, sys
import numpy as np
o = json.load(open('$tmp/g.json'))
p, y = np.load('$tmp/gp.npy'), np.load('$tmp/gy.npy')
g = np.array([r['group'] for r in csv.DictReader(open('$tmp/groups.csv'))])
want = {k: float((p[g == k].argmax(1) == y[g == k]).mean()) for k in sorted(set(g))}
got = {e['name']: e['accuracy'] for e in o['groups']}
worst = min(want, key=lambda k: (want[k], k))
print('groups %s, worst %s' % (' '.join('%s %.3f' % kv for kv in got.items()), o.get('worst_group')))
ok = set(got) == set(want) and all(abs(got[k] - want[k]) < 1e-12 for k in want) and o['worst_group'] == worst
sys.exit(0 if ok else 1)" > "$tmp/groups.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "per-group accuracy = numpy's, worst group named ($(cat "$tmp/groups.out"))" "[ $rc -eq 0 ]"
"$GRAFT" eval "$tmp/m.onnx" "$tmp/groups.csv" --no-cache > "$tmp/gt.out" 2>&1
check "eval prints the groups and the worst" "grep -q '^worst group: ' '$tmp/gt.out' && grep -q '  dim ' '$tmp/gt.out'"
"$GRAFT" eval "$tmp/m.onnx" "$tmp/groups.csv" --no-cache --group nosuch > "$tmp/b6.out" 2>&1
check "--group naming a missing column: exit 1 naming it" "[ $? -eq 1 ] && grep -q nosuch '$tmp/b6.out'"

# interrupted after 3 epochs, then resumed: the same model as without the interruption
"$GRAFT" finetune "$CNN" "$tmp/train" $T --seed 3 -o "$tmp/a.onnx" --checkpoint "$tmp/ck" > /dev/null 2>&1
check "finetune with checkpoints exit 0" "[ $? -eq 0 ]"
"$GRAFT" finetune "$CNN" "$tmp/train" $T --seed 3 -o "$tmp/b.onnx" --checkpoint "$tmp/ck2" --stop-after-epochs 3 \
  > /dev/null 2> "$tmp/stop.err"
check "an interrupted run exits 1 and writes no model" "[ $? -eq 1 ] && [ ! -e '$tmp/b.onnx' ] && [ -s '$tmp/ck2/phase2/ckpt.safetensors' ]"
"$GRAFT" finetune "$CNN" "$tmp/train" $T --seed 3 -o "$tmp/b.onnx" --checkpoint "$tmp/ck2" --resume > /dev/null 2> "$tmp/res.err"
check "resume exit 0 and says so" "[ $? -eq 0 ] && grep -q 'resumed' '$tmp/res.err'"
for m in a b; do "$GRAFT" extract "$tmp/$m.onnx" "$tmp/test" $T --layer probabilities --pool none --no-cache -o "$tmp/$m.npy" > /dev/null 2>&1; done
/usr/bin/python3 -c "
import sys
import numpy as np
d = np.abs(np.load('$tmp/a.npy') - np.load('$tmp/b.npy')).max()
print('max difference %.1e' % d)
sys.exit(0 if d == 0 else 1)" > "$tmp/res.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "interrupted + resumed = uninterrupted ($(cat "$tmp/res.out"))" "[ $rc -eq 0 ]"
/usr/bin/python3 -c "
import json, math, sys
import onnx
h = [json.loads({p.key: p.value for p in onnx.load(f).metadata_props}['graft.history']) for f in ('$tmp/a.onnx', '$tmp/b.onnx')]
same = lambda u, v: (u is None and v is None) or (u is not None and v is not None and u == v)
keys = [k for k in h[0] if k not in ('seconds',)]
ok = all(len(h[0][k]) == len(h[1][k]) and all(same(u, v) for u, v in zip(h[0][k], h[1][k])) for k in keys if k != 'best')
sys.exit(0 if ok and h[0]['best'] == h[1]['best'] and h[0]['train_loss'][0] is None else 1)" > "$tmp/hist.out" 2>&1
check "the resumed run's learning curves equal the uninterrupted run's (empty values stay empty)" "[ $? -eq 0 ]"
rm -rf "$tmp/ck3"
"$GRAFT" finetune "$CNN" "$tmp/train" $T --seed 3 -o "$tmp/c.onnx" --checkpoint "$tmp/ck3" --stop-after-epochs 2 > /dev/null 2>&1
"$GRAFT" finetune "$CNN" "$tmp/train" $T --seed 4 -o "$tmp/c.onnx" --checkpoint "$tmp/ck3" --resume > "$tmp/b9.out" 2>&1
check "resume with other settings (--seed): exit 1 showing the difference" "[ $? -eq 1 ] && grep -q 'other settings.*seed 3.*seed 4' '$tmp/b9.out'"

# every subcommand documents itself and has --json (graft --help lists them all)
for c in info run data extract fit finetune predict eval export fewshot; do
  "$GRAFT" "$c" --help > "$tmp/h_$c.out" 2>&1
  check "graft $c --help: exit 0, usage and --json" "[ $? -eq 0 ] && grep -q '^usage: graft $c' '$tmp/h_$c.out' && grep -q -- '--json' '$tmp/h_$c.out' && \
    \"$GRAFT\" --help | grep -q '^  $c '"
done

# bad input
"$GRAFT" finetune "$CNN" "$tmp/train" $T -o "$tmp/no/such/dir/m.onnx" > "$tmp/b1.out" 2>&1
check "an output folder that does not exist: exit 1 naming the path" "[ $? -eq 1 ] && grep -q 'no/such/dir/m.onnx' '$tmp/b1.out'"
mkdir -p "$tmp/bad/a" "$tmp/bad/b" && cp "$tmp/train/red/000.png" "$tmp/bad/a/"
"$GRAFT" finetune "$CNN" "$tmp/bad" $T -o "$tmp/x.onnx" > "$tmp/b2.out" 2>&1
check "an empty class: exit 1 naming the folder" "[ $? -eq 1 ] && grep -q 'bad/b' '$tmp/b2.out'"
"$GRAFT" finetune "$CNN" "$tmp/train" $T --seed 3 -o "$tmp/x.onnx" --checkpoint "$tmp/ck" > "$tmp/b8.out" 2>&1
check "a fresh run into a folder with an earlier run's checkpoints: exit 1, nothing overwritten" \
  "[ $? -eq 1 ] && grep -q 'earlier run: add --resume' '$tmp/b8.out' && [ ! -e '$tmp/x.onnx' ]"
"$GRAFT" finetune "$CNN" "$tmp/train" $T -o "$tmp/x.onnx" --checkpoint "$tmp/none" --resume > "$tmp/b3.out" 2>&1
check "resume without a checkpoint: exit 1 saying so" "[ $? -eq 1 ] && grep -q 'no checkpoint' '$tmp/b3.out'"
"$GRAFT" finetune "$CNN" "$tmp/train" $T -o "$tmp/x.onnx" --layer nosuch > "$tmp/b4.out" 2>&1
check "a layer that does not exist: exit 1 naming it and listing valid ones" \
  "[ $? -eq 1 ] && grep -q \"'nosuch'.*valid cut points: .*/gap/GlobalAveragePool_output_0\" '$tmp/b4.out'"
"$GRAFT" finetune "$CNN" "$tmp/train" $T -o /proc/graft-test.onnx > "$tmp/b7.out" 2>&1
check "a read-only output folder (/proc): exit 1 naming the file" "[ $? -eq 1 ] && grep -q '/proc/graft-test' '$tmp/b7.out'"
# a damaged feature-cache file: detected (named on stderr), recomputed, and rebuilt
"$GRAFT" extract "$CNN" "$tmp/train" $T --cache "$tmp/fc" --json > /dev/null 2>&1
f=$(ls "$tmp"/fc/*.safetensors | head -1)
sz=$(stat -c %s "$f")
printf '\177\177\177\177' | dd of="$f" bs=1 seek=$((sz - 64)) conv=notrunc 2>/dev/null
"$GRAFT" extract "$CNN" "$tmp/train" $T --cache "$tmp/fc" --json > "$tmp/c2.json" 2> "$tmp/c2.err"
check "a damaged cache file: exit 0, named as damaged, features recomputed" \
  "[ $? -eq 0 ] && grep -q \"damaged cache file .*$(basename "$f")\" '$tmp/c2.err' && grep -Eq '\"cached\": ?false' '$tmp/c2.json'"
"$GRAFT" extract "$CNN" "$tmp/train" $T --cache "$tmp/fc" --json > "$tmp/c3.json" 2>&1
check "the cache entry is rebuilt: the next request is answered by it" "grep -Eq '\"cached\": ?true' '$tmp/c3.json'"
"$GRAFT" finetune "$CNN" "$tmp/train" $T -o "$tmp/x.onnx" --freeze last:x > "$tmp/b5.out" 2>&1
check "a bad freeze spec: exit 1 naming the term" "[ $? -eq 1 ] && grep -q 'last:x' '$tmp/b5.out'"

# --steps: an update budget in whole epochs (160 images, batch 32: 5 updates an epoch, so 12
# updates are 3 epochs); --val 0 means no validation split
"$GRAFT" finetune "$CNN" "$tmp/train" $T --head-init random --head-epochs none --freeze all --steps 12 --val 0 --seed 1 -o "$tmp/s.onnx" \
  --json > "$tmp/s.json" 2> /dev/null
rc=$?
/usr/bin/python3 -c "
import json, sys
o = json.load(open('$tmp/s.json'))
h = o['history']
print('%d training, %d validation samples, phase-2 epochs %s' % (o['train'], o['val'], h['epoch']))
ok = o['train'] == 160 and o['val'] == 0 and h['phase'] == [2, 2, 2] and h['epoch'] == [1, 2, 3]
sys.exit(0 if ok and 'phase 2: all, 3 epochs at lr 0.0001 (15 updates)' in o['recipe'] else 1)" > "$tmp/steps.out" 2>&1
rc2=$?
check "--steps 12 on 5 updates an epoch trains 3 epochs on all 160 images with --val 0 ($(cat "$tmp/steps.out"))" "[ $rc -eq 0 ] && [ $rc2 -eq 0 ]"
"$GRAFT" finetune "$CNN" "$tmp/train" $T --steps 12 --epochs 2 -o "$tmp/x.onnx" > "$tmp/b10.out" 2>&1
check "--steps with --epochs: exit 1 saying to give one" "[ $? -eq 1 ] && grep -q 'either epochs or steps' '$tmp/b10.out'"
"$GRAFT" finetune "$CNN" "$tmp/train" $T --steps 12 --freeze head -o "$tmp/x.onnx" > "$tmp/b11.out" 2>&1
check "--steps with --freeze head: exit 1 saying there is no phase 2" "[ $? -eq 1 ] && grep -q 'no phase 2' '$tmp/b11.out'"

echo "test_cli_finetune: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
