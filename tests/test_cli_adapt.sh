#!/usr/bin/env bash
# test_cli_adapt.sh GRAFT SRC — `graft adapt` on scripts/adapt_model_reference.py's shifted
# target (a BatchNorm CNN right on 26 % of it): adabn and tent (--json) lift the target accuracy
# the command reports by 50 points or more and write a model graft loads, whose graft.adapt
# metadata (read by the onnx package) names the method; a model without BatchNorm is refused with exit 1 naming it (nothing
# written); graft finetune --target --adapt adabn gains as much; coral, mmd and dann while
# fine-tuning beat source-only by 15 points on inverted images, where graft eval names the drop
# from the source; graft fit --unlabeled reports its
# self-training rounds and graft fit --target --adapt coral its alignment; usage errors exit 2
# naming the flag.
set -u
GRAFT=$1
SRC=$2
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 "$SRC/scripts/adapt_model_reference.py" "$tmp" > /dev/null 2>&1 || {
    echo "the PyTorch reference failed" >&2
    exit 2
}
common=(--target "$tmp/target.npy" --target-labels "$tmp/target_y.npy"
    --transform size=16,normalize=none)

for m in adabn tent; do
    "$GRAFT" adapt "$tmp/source.onnx" "${common[@]}" --method $m -o "$tmp/$m.onnx" --json \
        > "$tmp/$m.json" 2> "$tmp/$m.err"
    check "$m exit 0 ($(tail -1 "$tmp/$m.err"))" "[ $? -eq 0 ]"
    check "$m gains 50 points ($(cat "$tmp/$m.json"))" "/usr/bin/python3 -c \"
import json, sys
s = json.load(open('$tmp/$m.json'))
sys.exit(not (s['method'] == '$m' and s['target'] == 512 and s['labelled'] == 512
              and s['accuracy_after'] - s['accuracy_before'] >= 0.5 and s['harm'] is False
              and s['output'] == '$tmp/$m.onnx'))\""
    "$GRAFT" info "$tmp/$m.onnx" > "$tmp/$m.info" 2>&1
    check "$m output loads" "[ $? -eq 0 ]"
    check "$m metadata (onnx's reader)" "/usr/bin/python3 -c \"
import json, onnx, sys
meta = {p.key: p.value for p in onnx.load('$tmp/$m.onnx').metadata_props}
sys.exit(json.loads(meta['graft.adapt'])['method'] != '$m')\""
done

"$GRAFT" adapt "$tmp/source.onnx" "${common[@]}" --method shot --epochs 2 -o "$tmp/shot.onnx" \
    > "$tmp/shot.out" 2>&1
check "shot exit 0" "[ $? -eq 0 ]"
check "shot reports pseudo-labels" "grep -q 'pseudo-labels: 512, mean confidence' '$tmp/shot.out'"

# graft finetune --target: a new head (the probe) on the source's IDX images, then adabn on the
# target's; the target's IDX labels are only reported
"$GRAFT" finetune "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" --transform size=16,normalize=none \
    --target "$tmp/target-images-idx3-ubyte" --adapt adabn -o "$tmp/ft.onnx" --json > "$tmp/ft.json" 2> "$tmp/ft.err"
check "finetune --target exit 0 ($(tail -1 "$tmp/ft.err"))" "[ $? -eq 0 ]"
check "finetune --target adapts ($(head -c 300 "$tmp/ft.json"))" "/usr/bin/python3 -c \"
import json, sys
a = json.load(open('$tmp/ft.json'))['adapt']
sys.exit(not (a['method'] == 'adabn' and a['target'] == 512 and a['accuracy_after'] - a['accuracy_before'] >= 0.5))\""
"$GRAFT" finetune "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" --adapt tent -o "$tmp/x.onnx" \
    > "$tmp/u0.out" 2>&1
check "finetune --adapt without --target exit 2" "[ $? -eq 2 ] && grep -q -- '--target' '$tmp/u0.out'"

# Aligning while fine-tuning, on the inverted target (BatchNorms frozen, so that only the
# alignment can move the features): source-only, and each method, whose target accuracy must
# beat source-only's by 15 points (on this toy shift it is 75 % -> 100 %)
eval_acc() { "$GRAFT" eval "$1" "$tmp/inverted-images-idx3-ubyte" --json 2>/dev/null |
    /usr/bin/python3 -c "import json, sys; print(json.load(sys.stdin)['accuracy'])"; }
ftc=(--transform size=16,normalize=none --bn frozen --freeze all --threads 2)
"$GRAFT" finetune "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" "${ftc[@]}" -o "$tmp/so.onnx" \
    > /dev/null 2>&1
base=$(eval_acc "$tmp/so.onnx")
# graft eval on the target names the drop from the source (the kept epoch's validation accuracy)
"$GRAFT" eval "$tmp/so.onnx" "$tmp/inverted-images-idx3-ubyte" --json > "$tmp/so_eval.json" 2>/dev/null
check "eval names the drop from the source ($(head -c 200 "$tmp/so_eval.json"))" "/usr/bin/python3 -c \"
import json, onnx, sys
o = json.load(open('$tmp/so_eval.json'))
h = json.loads({p.key: p.value for p in onnx.load('$tmp/so.onnx').metadata_props}['graft.history'])
src = h['val_acc'][h['best']]
sys.exit(not (o['source']['split'] == 'validation' and o['source']['accuracy'] == src
              and abs(o['source']['drop'] - (src - o['accuracy'])) < 1e-12 and o['source']['drop'] > 0.1))\""
"$GRAFT" eval "$tmp/so.onnx" "$tmp/inverted-images-idx3-ubyte" > "$tmp/so_eval.out" 2>/dev/null
check "eval prints the drop" "grep -q 'points lower (a shift from the source domain' '$tmp/so_eval.out'"
for m in coral mmd dann; do
    "$GRAFT" finetune "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" "${ftc[@]}" \
        --target "$tmp/inverted-images-idx3-ubyte" --adapt $m -o "$tmp/al_$m.onnx" --json \
        > "$tmp/al_$m.json" 2> "$tmp/al_$m.err"
    check "finetune --adapt $m exit 0 ($(tail -1 "$tmp/al_$m.err"))" "[ $? -eq 0 ]"
    acc=$(eval_acc "$tmp/al_$m.onnx")
    check "$m on inverted: $base -> $acc" "/usr/bin/python3 -c 'import sys; sys.exit(not $acc >= $base + 0.15)'"
    check "$m summary" "/usr/bin/python3 -c \"
import json, sys
a = json.load(open('$tmp/al_$m.json'))['adapt']
sys.exit(not (a['method'] == '$m' and a['weight'] == 1 and a['loss'] == a['loss']
              and (a['domain_accuracy'] is None) == ('$m' != 'dann')))\""
done
"$GRAFT" adapt "$tmp/source.onnx" --source "$tmp/source-images-idx3-ubyte" \
    --target "$tmp/inverted-images-idx3-ubyte" --method coral --transform size=16,normalize=none \
    -o "$tmp/ad_coral.onnx" > "$tmp/ad_coral.out" 2>&1
check "adapt --source coral exit 0" "[ $? -eq 0 ] && grep -q 'adapt: coral, fine-tuned on' '$tmp/ad_coral.out'"
"$GRAFT" adapt "$tmp/source.onnx" --target "$tmp/inverted-images-idx3-ubyte" --method dann \
    -o "$tmp/x.onnx" > "$tmp/u4.out" 2>&1
check "dann without --source exit 2" "[ $? -eq 2 ] && grep -q -- '--source' '$tmp/u4.out'"
"$GRAFT" adapt "$tmp/source.onnx" --source "$tmp/source-images-idx3-ubyte" --target "$tmp/target.npy" \
    --method adabn -o "$tmp/x.onnx" > "$tmp/u5.out" 2>&1
check "adabn with --source exit 2" "[ $? -eq 2 ] && grep -q -- '--source' '$tmp/u5.out'"
"$GRAFT" finetune "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" "${ftc[@]}" --freeze head \
    --target "$tmp/inverted-images-idx3-ubyte" --adapt mmd -o "$tmp/x.onnx" > "$tmp/u6.out" 2>&1
check "mmd with a frozen trunk exit 1" "[ $? -eq 1 ] && grep -q 'mmd aligns the features' '$tmp/u6.out'"
check "refusals write nothing" "[ ! -e '$tmp/x.onnx' ]"

# Self-training on features: graft fit --unlabeled reports its rounds (the IDX labels next to the
# unlabelled images are only reported); --semi without --unlabeled is a usage error
"$GRAFT" fit "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" --transform size=16,normalize=none \
    --shots 5 --unlabeled "$tmp/source-images-idx3-ubyte" --test "$tmp/target-images-idx3-ubyte" \
    --json > "$tmp/semi.json" 2> "$tmp/semi.err"
check "fit --unlabeled exit 0 ($(tail -1 "$tmp/semi.err"))" "[ $? -eq 0 ]"
check "fit --unlabeled reports rounds ($(head -c 300 "$tmp/semi.json"))" "/usr/bin/python3 -c \"
import json, sys
r = json.load(open('$tmp/semi.json'))['self_training']['rounds']
sys.exit(not (len(r) == 5 and r[0]['pseudo_labels'] > 0 and r[0]['confidence'] >= 0.9
              and 0 <= r[0]['accuracy'] <= 1))\""
"$GRAFT" fit "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" --semi pseudo > "$tmp/u7.out" 2>&1
check "--semi without --unlabeled exit 2" "[ $? -eq 2 ] && grep -q -- '--unlabeled' '$tmp/u7.out'"

# Closed-form CORAL for a head: graft fit --target --adapt coral re-colours the labelled rows to
# the target's features and reports it (its numbers: test_transfer_coral against scipy); --adapt
# without --target is a usage error
"$GRAFT" fit "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" --transform size=16,normalize=none \
    --C 1 --target "$tmp/inverted-images-idx3-ubyte" --adapt coral --test "$tmp/inverted-images-idx3-ubyte" \
    --json > "$tmp/fcoral.json" 2> "$tmp/fcoral.err"
check "fit --adapt coral exit 0 ($(tail -1 "$tmp/fcoral.err"))" "[ $? -eq 0 ]"
check "fit --adapt coral reports ($(head -c 300 "$tmp/fcoral.json"))" "/usr/bin/python3 -c \"
import json, sys
o = json.load(open('$tmp/fcoral.json'))
sys.exit(not (o['adapt'] == {'method': 'coral', 'target': 512} and o['val_metrics']['accuracy'] >= 0.9))\""
"$GRAFT" fit "$tmp/source.onnx" "$tmp/source-images-idx3-ubyte" --adapt coral > "$tmp/u8.out" 2>&1
check "--adapt without --target exit 2" "[ $? -eq 2 ] && grep -q -- '--target' '$tmp/u8.out'"

"$GRAFT" adapt "$tmp/source_nobn.onnx" "${common[@]}" --method tent -o "$tmp/nobn.onnx" \
    > "$tmp/nobn.out" 2>&1
check "no BatchNorm exit 1" "[ $? -eq 1 ]"
check "no BatchNorm named" "grep -q 'source_nobn.onnx has no BatchNormalization node' '$tmp/nobn.out'"
check "no BatchNorm writes nothing" "[ ! -e '$tmp/nobn.onnx' ]"

"$GRAFT" adapt "$tmp/source.onnx" --method adabn -o "$tmp/x.onnx" > "$tmp/u1.out" 2>&1
check "no target exit 2" "[ $? -eq 2 ] && grep -q -- '--target' '$tmp/u1.out'"
"$GRAFT" adapt "$tmp/source.onnx" "${common[@]}" --method fixmatch -o "$tmp/x.onnx" \
    > "$tmp/u2.out" 2>&1
check "unknown method exit 2" "[ $? -eq 2 ] && grep -q 'fixmatch' '$tmp/u2.out'"
"$GRAFT" adapt "$tmp/source.onnx" "${common[@]}" --epochs many -o "$tmp/x.onnx" \
    > "$tmp/u3.out" 2>&1
check "a word for a number exit 2" "[ $? -eq 2 ] && grep -q -- '--epochs' '$tmp/u3.out'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
