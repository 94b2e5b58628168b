#!/usr/bin/env bash
# test_cli_data.sh GRAFT — `graft data`: class counts of Fashion-MNIST against numpy's own count
# of the label file, and --check on a folder with a truncated JPEG and a text file named .jpg
# (each named with its reason, exit code 1), a good folder (exit 0), and usage errors (2);
# --unlabeled: a folder of loose images (refused without it), an IDX images file without its
# labels file (its sample count against the file's header), class folders kept for reporting.
set -u
GRAFT=$1
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fm=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
"$GRAFT" data "$fm" --json > "$tmp/fm.json"
check "fashion-mnist exit 0" "[ $? -eq 0 ]"
/usr/bin/python3 - "$tmp/fm.json" <<'PY' > "$tmp/fm.check"
import gzip, json, sys
import numpy as np
got = json.load(open(sys.argv[1]))
lab = np.frombuffer(gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
want = np.bincount(lab, minlength=10)
ok = got["samples"] == len(lab) and [c["count"] for c in got["classes"]] == want.tolist()
ok = ok and got["classes"][0]["name"] == "T-shirt/top" and got["classes"][9]["name"] == "Ankle boot"
print("ok" if ok else f"mismatch: {got['samples']} {[c['count'] for c in got['classes']]} vs {want.tolist()}")
PY
check "fashion-mnist counts match numpy ($(cat "$tmp/fm.check"))" "grep -qx ok '$tmp/fm.check'"

mkdir -p "$tmp/ds/cat" "$tmp/ds/dog"
/usr/bin/python3 -c "
from PIL import Image
import numpy as np
for i, d in enumerate(['cat', 'dog']):
    Image.fromarray((np.random.RandomState(i).rand(40, 50, 3) * 255).astype('uint8')).save('$tmp/ds/%s/%d.jpg' % (d, i))
"
"$GRAFT" data "$tmp/ds" --check > "$tmp/good.out" 2>&1
check "good folder exit 0" "[ $? -eq 0 ]"
check "good folder lists classes" "grep -q '  0  cat' '$tmp/good.out' && grep -q '  1  dog' '$tmp/good.out'"
head -c 300 "$tmp/ds/cat/0.jpg" > "$tmp/ds/dog/cut.jpg"
echo "not an image" > "$tmp/ds/cat/notes.jpg"
"$GRAFT" data "$tmp/ds" --check > "$tmp/bad.out" 2>&1
check "bad folder exit 1" "[ $? -eq 1 ]"
check "truncated JPEG named" "grep -q 'dog/cut.jpg: truncated JPEG' '$tmp/bad.out'"
check "text file named" "grep -q 'cat/notes.jpg: not a JPEG, PNG' '$tmp/bad.out'"
check "count of unreadable" "grep -q 'checked 4 images: 2 unreadable' '$tmp/bad.out'"
mkdir -p "$tmp/loose/more"
cp "$tmp/ds/cat/0.jpg" "$tmp/loose/a.jpg"; cp "$tmp/ds/dog/1.jpg" "$tmp/loose/more/b.jpg"
mkdir -p "$tmp/flat"; cp "$tmp/ds/cat/0.jpg" "$tmp/flat/a.jpg"
"$GRAFT" data "$tmp/flat" > "$tmp/l1.out" 2>&1
check "loose images without --unlabeled: exit 1, no class folders" "[ $? -eq 1 ] && grep -q 'no class folders' '$tmp/l1.out'"
"$GRAFT" data "$tmp/loose" --unlabeled --json > "$tmp/l2.json" 2>&1
check "loose images --unlabeled: 2 samples, all unlabelled" \
  "/usr/bin/python3 -c \"import json,sys; j=json.load(open('$tmp/l2.json')); sys.exit(not (j['samples'] == 2 and j['unlabelled'] == 2 and j['opened_unlabeled'] and j['classes'] == []))\""
cp "$fm" "$tmp/target-images-idx3-ubyte.gz"
"$GRAFT" data "$tmp/target-images-idx3-ubyte.gz" > "$tmp/i1.out" 2>&1
check "IDX without labels file: exit 1 naming it" "[ $? -eq 1 ] && grep -q 'target-labels-idx1-ubyte' '$tmp/i1.out'"
"$GRAFT" data "$tmp/target-images-idx3-ubyte.gz" --unlabeled --json > "$tmp/i2.json" 2>&1
check "IDX --unlabeled: the header's count, unlabelled" \
  "/usr/bin/python3 -c \"import gzip,json,sys; n=int.from_bytes(gzip.open('$fm').read(8)[4:8],'big'); j=json.load(open('$tmp/i2.json')); sys.exit(not (j['samples'] == n == j['unlabelled']))\""
"$GRAFT" data "$tmp/ds" --unlabeled > "$tmp/l3.out" 2>&1
check "class folders --unlabeled: classes kept for reporting" "grep -q 'for reporting only' '$tmp/l3.out' && grep -q '  1  dog' '$tmp/l3.out'"
"$GRAFT" data "$tmp/missing" > "$tmp/miss.out" 2>&1
check "missing path exit 1" "[ $? -eq 1 ] && grep -q '$tmp/missing' '$tmp/miss.out'"
"$GRAFT" data > /dev/null 2>&1
check "no dataset: usage exit 2" "[ $? -eq 2 ]"
"$GRAFT" data "$tmp/ds" --frobnicate > /dev/null 2>&1
check "unknown flag: usage exit 2" "[ $? -eq 2 ]"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
