#!/usr/bin/env bash
# test_cli_transfer.sh GRAFT REFDIR SRCDIR — `graft extract`, `fit`, `predict`, `eval` and `export` end to end on the resnet18
# and image folder of scripts/extract_reference.py: features equal PyTorch's (numpy compares the
# .npy graft writes with the reference), the second request is answered by the cache, `fit`
# gives a stratified split and a head file, and bad requests exit 1 or 2 with a message.
set -u
GRAFT=$1 REF=$2 SRC=$3
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
T="--transform resize=72,crop=64,normalize=imagenet"

"$GRAFT" extract "$REF/resnet18.onnx" "$REF/data" $T --pool grid2 --layer /layer3/layer3.1/relu_1/Relu_output_0 \
  --cache "$tmp/c" -o "$tmp/x.npy" --labels-output "$tmp/y.npy" > "$tmp/e1.out" 2>&1
check "extract exit 0" "[ $? -eq 0 ]"
check "extract prints the shape" "grep -q '7 samples x 1024 features' '$tmp/e1.out'"
/usr/bin/python3 -c "
import numpy as np, sys
x = np.load('$tmp/x.npy'); w = np.load('$REF/grid2.npy'); y = np.load('$tmp/y.npy'); wy = np.load('$REF/labels.npy')
r = np.abs(x - w).max() / np.abs(w).max()
print('rel %.2e' % r)
sys.exit(0 if r < 1e-4 and (y == wy).all() else 1)" > "$tmp/cmp.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "features equal PyTorch's ($(cat "$tmp/cmp.out"))" "[ $rc -eq 0 ]"
"$GRAFT" extract "$REF/resnet18.onnx" "$REF/data" $T --pool grid2 --layer /layer3/layer3.1/relu_1/Relu_output_0 \
  --cache "$tmp/c" --json > "$tmp/e2.out" 2>&1
check "second extract from the cache" "grep -Eq '\"cached\": ?true' '$tmp/e2.out'"

"$GRAFT" fit "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --val 0.3 --C 1 -o "$tmp/head.st" --json > "$tmp/f.out" 2>&1
check "fit exit 0" "[ $? -eq 0 ]"
/usr/bin/python3 -c "
import json, sys
o = json.load(open('$tmp/f.out'))
sys.exit(0 if o['train'] + o['val'] == 7 and o['val'] >= 2 and o['C'] == 1 and 0 <= o['val_metrics']['accuracy'] <= 1 else 1)"
check "fit reports a stratified split and metrics" "[ $? -eq 0 ]"
check "fit saved the head" "[ -s '$tmp/head.st' ]"

"$GRAFT" predict "$tmp/head.st" "$REF/data/ants/img0.png" "$REF/data/bees" --top 2 --json > "$tmp/p.out" 2>&1
check "predict exit 0" "[ $? -eq 0 ]"
/usr/bin/python3 -c "
import json, sys
rows = json.load(open('$tmp/p.out'))
ok = len(rows) == 4 and rows[0]['input'].endswith('ants/img0.png') and all(len(r['top']) == 2 for r in rows)
ok = ok and all(abs(sum(t['probability'] for t in r['top']) - 1) < 1e-5 for r in rows)
ok = ok and {t['label'] for r in rows for t in r['top']} == {'ants', 'bees'}
sys.exit(0 if ok else 1)"
check "predict: 4 inputs (a file and a folder), top-2 labels by name, probabilities sum to 1" "[ $? -eq 0 ]"
"$GRAFT" eval "$tmp/head.st" "$REF/data" --cache "$tmp/c" --report "$tmp/r.html" > "$tmp/ev.out" 2>&1
check "eval exit 0" "[ $? -eq 0 ]"
check "eval prints accuracy and the class table" "grep -q '7 samples, accuracy' '$tmp/ev.out' && grep -q '  ants ' '$tmp/ev.out'"
check "eval report: inline SVG, no script" "grep -q '<svg' '$tmp/r.html' && ! grep -qi '<script' '$tmp/r.html'"
"$GRAFT" predict "$tmp/head.st" "$tmp/nothing.jpg" > "$tmp/b4.out" 2>&1
check "predict on a missing image: exit 1 naming it" "[ $? -eq 1 ] && grep -q nothing.jpg '$tmp/b4.out'"

# export: the ONNX file of model + head gives predict's probabilities in graft and onnxruntime,
# for a linear head on the mean, an MLP on the 2x2 grid of another layer and a linear head on
# the 4x4 grid of layer2 (8x8 here)
"$GRAFT" fit "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --val 0 --head mlp --pool grid2 \
  --layer /layer3/layer3.1/relu_1/Relu_output_0 -o "$tmp/mlp.st" > /dev/null 2>&1
check "fit mlp exit 0" "[ $? -eq 0 ]"
"$GRAFT" fit "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --val 0 --pool grid4 \
  --layer /layer2/layer2.1/relu_1/Relu_output_0 -o "$tmp/g4.st" > /dev/null 2>&1
check "fit on a 4x4 grid exit 0" "[ $? -eq 0 ]"
/usr/bin/python3 -c "
import numpy as np
from PIL import Image
from torchvision import transforms
t = transforms.Compose([transforms.Resize(72), transforms.CenterCrop(64), transforms.ToTensor(),
                        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
np.save('$tmp/x.npy', t(Image.open('$REF/data/ants/img0.png').convert('RGB')).unsqueeze(0).numpy())"
for h in head mlp g4; do
  "$GRAFT" export "$tmp/$h.st" -o "$tmp/$h.onnx" > "$tmp/x_$h.out" 2>&1
  check "export $h exit 0" "[ $? -eq 0 ]"
  "$GRAFT" run "$tmp/$h.onnx" --input "$tmp/x.npy" --output "$tmp/g_$h.npy" > /dev/null 2>&1
  check "graft runs the exported $h model" "[ $? -eq 0 ]"
  node "$SRC/scripts/ort_run.js" "$tmp/$h.onnx" "$tmp/x.npy" "$tmp/o_$h.npy" > /dev/null 2>&1
  check "onnxruntime runs the exported $h model" "[ $? -eq 0 ]"
  "$GRAFT" predict "$tmp/$h.st" "$REF/data/ants/img0.png" --top 2 --json > "$tmp/p_$h.json" 2>&1
  /usr/bin/python3 -c "
import json, sys
import numpy as np
g = np.load('$tmp/g_$h.npy')[0]; o = np.load('$tmp/o_$h.npy')[0]
p = {t['id']: t['probability'] for t in json.load(open('$tmp/p_$h.json'))[0]['top']}
want = np.array([p[0], p[1]])
r1, r2 = np.abs(g - o).max(), np.abs(g - want).max()
print('graft vs onnxruntime %.1e, vs predict %.1e' % (r1, r2))
sys.exit(0 if r1 < 1e-5 and r2 < 1e-4 else 1)" > "$tmp/cmp_$h.out" 2>&1
  rc=$?  # before the message's command substitutions, which reset $?
  check "$h: exported model = onnxruntime = predict ($(cat "$tmp/cmp_$h.out"))" "[ $rc -eq 0 ]"
done
"$GRAFT" fit "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --val 0 --head knn -o "$tmp/knn.st" > /dev/null 2>&1
"$GRAFT" export "$tmp/knn.st" -o "$tmp/knn.onnx" > "$tmp/b5.out" 2>&1
check "export of a kNN head: exit 1 with the reason" "[ $? -eq 1 ] && grep -q 'kNN head' '$tmp/b5.out' && [ ! -e '$tmp/knn.onnx' ]"

"$GRAFT" fewshot "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --way 2 --shot 1,2 --query 1 --episodes 50 --json > "$tmp/fs.out" 2>&1
check "fewshot exit 0" "[ $? -eq 0 ]"
/usr/bin/python3 -c "
import json, sys
r = json.load(open('$tmp/fs.out'))
sys.exit(0 if [x['shot'] for x in r] == [1, 2] and all(0 <= x['accuracy'] <= 1 and x['ci95'] >= 0 for x in r) else 1)"
check "fewshot: one result per shot, accuracy and interval" "[ $? -eq 0 ]"
"$GRAFT" fewshot "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --way 2 --shot 1 --query 1 --episodes 50 --transductive --json > "$tmp/fst.out" 2>&1
check "fewshot --transductive: exit 0, reported" "[ $? -eq 0 ] && grep -q '\"transductive\": true' '$tmp/fst.out'"
"$GRAFT" fewshot "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --way 2 --method knn --transductive > "$tmp/b7.out" 2>&1
check "fewshot --transductive with knn: exit 1 saying why" "[ $? -eq 1 ] && grep -q 'refines simpleshot' '$tmp/b7.out'"
"$GRAFT" fewshot "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --way 2 --shot 5 > "$tmp/b6.out" 2>&1
check "fewshot with too few examples: exit 1 saying so" "[ $? -eq 1 ] && grep -q 'only 0 classes have' '$tmp/b6.out'"

"$GRAFT" fit "$REF/resnet18.onnx" "$REF/data" $T --no-cache --val 0 --C 1 --layer auto > "$tmp/auto.out" 2>&1
check "fit --layer auto exit 0" "[ $? -eq 0 ]"
check "layer auto prints its ranking and the choice" "grep -q 'layer auto: .* ranked by the held-out log-loss' '$tmp/auto.out' && grep -q '^using .* pooling' '$tmp/auto.out'"
# the best candidate's score against scikit-learn: StratifiedKFold(3), StandardScaler +
# LogisticRegression(C=1, multinomial as graft's) fitted per fold, log-loss and accuracy over all held-out rows
read -r ll acc layer pool <<EOF2
$(awk '/^ +[0-9.]+ +[0-9.]+ +[^ ]+ +(mean|grid2|grid4) /{print $1, $2, $3, $4; exit}' "$tmp/auto.out")
EOF2
"$GRAFT" extract "$REF/resnet18.onnx" "$REF/data" $T --no-cache --layer "$layer" --pool "$pool" -o "$tmp/af.npy" \
  --labels-output "$tmp/ay.npy" > /dev/null 2>&1
/usr/bin/python3 -c "
import sys, warnings
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
warnings.filterwarnings('ignore')
X, y = np.load('$tmp/af.npy'), np.load('$tmp/ay.npy')
ll = right = 0.0
for tr, te in StratifiedKFold(3).split(X, y):
    sc = StandardScaler().fit(X[tr])
    p = LogisticRegression(C=1.0, max_iter=1000, multi_class='multinomial').fit(sc.transform(X[tr]), y[tr]).predict_proba(sc.transform(X[te]))
    ll -= np.log(np.clip(p[np.arange(len(te)), y[te]], 1e-15, 1)).sum()
    right += (p.argmax(1) == y[te]).sum()
ll, acc = ll / len(y), right / len(y)
print('$layer $pool: graft log-loss $ll accuracy $acc, scikit-learn %.4f %.4f' % (ll, acc))
sys.exit(0 if abs(ll - $ll) < 2e-4 and abs(acc - $acc) < 1e-4 else 1)  # printed to 4 decimals" > "$tmp/autock.out" 2>&1
rc=$?  # before the message's command substitutions, which reset $?
check "layer auto's best score = scikit-learn's CV log-loss and accuracy ($(tail -1 "$tmp/autock.out"))" "[ $rc -eq 0 ]"

"$GRAFT" fit "$REF/resnet18.onnx" "$REF/data" $T --cache "$tmp/c" --shots 2 --test "$REF/data" --C 1 > "$tmp/shots.out" 2>&1
check "fit --shots 2 --test: trains on 4, tests on 7" "[ $? -eq 0 ] && grep -q 'head fitted on 4 samples' '$tmp/shots.out' && grep -q '^test (7 samples)' '$tmp/shots.out'"
mkdir -p "$tmp/other/wasps" "$tmp/other/ants"
cp "$REF/data/ants/img0.png" "$tmp/other/wasps/a.png"; cp "$REF/data/ants/img0.png" "$tmp/other/ants/b.png"
"$GRAFT" fit "$REF/resnet18.onnx" "$REF/data" $T --no-cache --test "$tmp/other" --C 1 > "$tmp/b7.out" 2>&1
check "fit --test with another class: exit 1 naming it" "[ $? -eq 1 ] && grep -q \"class 'wasps'\" '$tmp/b7.out'"

"$GRAFT" extract "$REF/resnet18.onnx" "$REF/data" --layer no_such_node --no-cache > "$tmp/b1.out" 2>&1
check "unknown layer: exit 1 naming it" "[ $? -eq 1 ] && grep -q no_such_node '$tmp/b1.out'"
"$GRAFT" fit "$REF/resnet18.onnx" "$REF/data" --head forest --no-cache > "$tmp/b2.out" 2>&1
check "unknown head: usage exit 2" "[ $? -eq 2 ] && grep -q 'logreg, mlp, knn or ncm' '$tmp/b2.out'"
"$GRAFT" fit "$REF/resnet18.onnx" > /dev/null 2>&1
check "fit without data: usage exit 2" "[ $? -eq 2 ]"
"$GRAFT" extract "$REF/resnet18.onnx" "$REF/data" --pool cube --no-cache > "$tmp/b3.out" 2>&1
check "unknown pooling: usage exit 2 naming it" "[ $? -eq 2 ] && grep -q cube '$tmp/b3.out'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
