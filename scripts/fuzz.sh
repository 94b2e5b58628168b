#!/usr/bin/env bash
# fuzz.sh — builds graft's libFuzzer targets with clang (ASan + UBSan) into build-fuzz and runs
# each for a set time over a working copy of its seed corpus, then reports per target the
# executions, the coverage and the findings, and ends with one line:
#   fuzz: <targets> targets, <executions> executions, <n> open findings
# It exits 1 when there are open findings (a crash, leak, timeout or out-of-memory found in this
# run, or a regression input of fuzz/regress/ that still fails), else 0. See fuzz/README.md.
#
#   scripts/fuzz.sh                    every target, FUZZ_SECONDS each (default 300)
#   scripts/fuzz.sh onnx wav           only these targets
#   scripts/fuzz.sh --ci 60            CI: 60 s per target; without clang + libFuzzer it says so
#                                      and exits 0 (the replays in `make asan` still run)
#
# Environment: FUZZ_SECONDS (per target), FUZZ_BUILD (build-fuzz), FUZZ_JOBS (fuzzers at once:
# 1, or 2 on a machine with cores to spare; default 1), JOBS (build parallelism, default nproc),
# FUZZ_CC / FUZZ_CXX (clang / clang++).
# The working corpus is FUZZ_BUILD/corpus/<target> (the committed seeds are copied in and never
# written to); artifacts go to FUZZ_BUILD/findings/<target>/, the fuzzer's log to
# FUZZ_BUILD/logs/<target>.log.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER=${FUZZ_SECONDS:-300}
BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_JOBS=${FUZZ_JOBS:-1}
JOBS=${JOBS:-$(nproc)}
CC_FUZZ=${FUZZ_CC:-clang}
CXX_FUZZ=${FUZZ_CXX:-clang++}
CI=0
ALL_TARGETS=(onnx safetensors checkpoint npy image wav csv idx transform)
TARGETS=()

while [ $# -gt 0 ]; do
  case "$1" in
    --ci) CI=1; SECONDS_PER=${2:?--ci needs a number of seconds}; shift 2 ;;
    --seconds) SECONDS_PER=${2:?}; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  [ -f "fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

# The largest input worth generating, per target: above a real seed, below what makes a run slow.
max_len() {
  case "$1" in
    onnx|image) echo 16384 ;;
    safetensors|checkpoint) echo 8192 ;;
    csv) echo 2048 ;;
    transform) echo 256 ;;
    *) echo 4096 ;;
  esac
}

# ---- clang with libFuzzer? -------------------------------------------------------------------
have_libfuzzer() {
  command -v "$CC_FUZZ" >/dev/null && command -v "$CXX_FUZZ" >/dev/null || return 1
  local d
  d=$(mktemp -d) || return 1
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' > "$d/t.c"
  "$CC_FUZZ" -fsanitize=fuzzer,address,undefined "$d/t.c" -o "$d/t" >/dev/null 2>&1
  local st=$?
  rm -rf "$d"
  return $st
}

if ! have_libfuzzer; then
  echo "fuzz: clang with libFuzzer not found (Debian: apt-get install clang libclang-rt-14-dev libomp-dev)" >&2
  echo "fuzz: 0 targets, 0 executions, 0 open findings"
  [ $CI = 1 ] && exit 0
  exit 1
fi

# ---- build -----------------------------------------------------------------------------------
# GRAFT_WERROR=ON: graft's sources and the fuzz targets are warning-free under clang as under gcc.
echo "fuzz: building $BUILD (clang, ASan + UBSan + libFuzzer)" >&2
if ! cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DGRAFT_SANITIZE=ON -DGRAFT_FUZZ=ON -DGRAFT_WERROR=ON > "$BUILD.configure.log" 2>&1; then
  cat "$BUILD.configure.log" >&2
  echo "fuzz: 0 targets, 0 executions, 1 open findings"
  exit 1
fi
rm -f "$BUILD.configure.log"
exes=()
for t in "${TARGETS[@]}"; do exes+=(--target "fuzz_$t"); done
if ! cmake --build "$BUILD" -j"$JOBS" "${exes[@]}" > "$BUILD/fuzz-build.log" 2>&1; then
  grep -E "error|Error" "$BUILD/fuzz-build.log" | head -20 >&2
  echo "fuzz: build failed, see $BUILD/fuzz-build.log" >&2
  echo "fuzz: 0 targets, 0 executions, 1 open findings"
  exit 1
fi

mkdir -p "$BUILD/corpus" "$BUILD/findings" "$BUILD/logs" "$BUILD/triage"
# The targets' scratch folders (mkdtemp) go in one folder of this run, removed at the end even
# when a crash skipped a target's own cleanup.
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/graft-fuzz-run.XXXXXX")
[ -d /dev/shm ] && [ -w /dev/shm ] && SCRATCH2=$(mktemp -d /dev/shm/graft-fuzz-run.XXXXXX) && rm -rf "$SCRATCH" && SCRATCH=$SCRATCH2
# clang's OpenMP runtime registers each process in /dev/shm/__KMP_REGISTERED_LIB_<pid>_<uid>
# and only a clean exit removes it: the crashed children of this run leave theirs behind
touch "$SCRATCH/.start"
cleanup() {
  local f pid
  for f in /dev/shm/__KMP_REGISTERED_LIB_*; do
    [ -f "$f" ] && [ "$f" -nt "$SCRATCH/.start" ] || continue
    pid=${f#/dev/shm/__KMP_REGISTERED_LIB_}; pid=${pid%%_*}
    kill -0 "$pid" 2>/dev/null || rm -f "$f"
  done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
export GRAFT_FUZZ_TMP=$SCRATCH
# leaks are findings; UBSan reports stop the run with a stack
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# ---- one target ------------------------------------------------------------------------------
run_target() {
  local t=$1 exe=$BUILD/fuzz/fuzz_$t
  local corpus=$BUILD/corpus/$t art=$BUILD/findings/$t log=$BUILD/logs/$t.log
  mkdir -p "$corpus" "$art"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
  local dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  # -fork=1 with ignore_*: a finding does not end the run; each one is an artifact in $art
  timeout -k 30 $((SECONDS_PER + 300)) "$exe" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -max_total_time="$SECONDS_PER" -max_len="$(max_len "$t")" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 "${dict[@]}" -artifact_prefix="$art/" "$corpus" "fuzz/regress/$t" > "$log" 2>&1
  return 0
}

# One finding's signature, written to $3: the sanitizer's one-line summary (or the target's own
# message when it aborted on a broken contract), then the top 3 frames
# (function file:line) of the first stack that are not the sanitizer's, libFuzzer's or libc's,
# from running the input alone. Returns the input's exit status (0: it no longer fails).
triage() {
  local exe=$1 input=$2 out=$3
  # (in a subshell whose stderr is dropped: bash would report the abort of its child there)
  ( timeout -k 10 120 "$exe" -rss_limit_mb=2048 -timeout=10 "$input" > "$out.log" 2>&1 ) 2>/dev/null
  local rc=$?
  {
    # a broken API contract (fuzz_common.c) or invariant (a target's round trip) says so itself
    { grep -m1 -E "^fuzz(_[a-z]+)?: " "$out.log" || grep -m1 -E "^SUMMARY: " "$out.log" ||
      grep -m1 -E "ERROR: |runtime error:" "$out.log"; } \
      | sed -E 's#/[^ ]*graft-fuzz-[^/ ]*/##g; s/ \(BuildId: [0-9a-f]+\)//g; s/\+0x[0-9a-f]+//g; s/0x[0-9a-f]+/0x?/g; s/ \(pid=[0-9]+\)//'
    awk '/^ +#[0-9]+ 0x[0-9a-f]+ in / {
           if ($0 ~ /in (__sanitizer|__asan|__ubsan|__lsan|__interceptor|___interceptor|__restore_rt|__pthread|pthread_kill|__libc|fuzzer::|malloc|calloc|realloc|free|abort|raise|gsignal|__GI_)/) next
           if ($0 ~ /compiler-rt|libc\.so|libFuzzer|nptl\/|sysdeps\//) next
           sub(/^ +#[0-9]+ 0x[0-9a-f]+ in /, ""); sub(/ \(BuildId.*/, "")
           print "    " $0; if (++n == 3) exit }' "$out.log"
  } > "$out"
  [ $rc -eq 0 ] || [ -s "$out" ] || echo "exit status $rc, no sanitizer report (see $out.log)" > "$out"
  return $rc
}

# ---- run -------------------------------------------------------------------------------------
echo "fuzz: ${#TARGETS[@]} targets, $SECONDS_PER s each, $FUZZ_JOBS at a time" >&2
running=0
for t in "${TARGETS[@]}"; do
  echo "fuzz: $t ..." >&2
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$FUZZ_JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

total_exec=0
declare -A seen=()
open=0
report=()
for t in "${TARGETS[@]}"; do
  exe=$BUILD/fuzz/fuzz_$t log=$BUILD/logs/$t.log art=$BUILD/findings/$t
  stats=$(grep -E "^#[0-9]+: cov: " "$log" | tail -1)
  execs=$(sed -nE 's/^#([0-9]+): .*/\1/p' <<< "$stats"); execs=${execs:-0}
  cov=$(sed -nE 's/.* cov: ([0-9]+) .*/\1/p' <<< "$stats"); ft=$(sed -nE 's/.* ft: ([0-9]+) .*/\1/p' <<< "$stats")
  corp=$(find "$BUILD/corpus/$t" -type f | wc -l)
  total_exec=$((total_exec + execs))
  found=0 regress_open=0
  lines=()
  # regression inputs that still fail
  for f in fuzz/regress/"$t"/*; do
    [ -f "$f" ] || continue
    sig=$BUILD/triage/$t.regress.$(basename "$f").txt
    if ! triage "$exe" "$f" "$sig"; then
      key=$(sed -E 's/:[0-9]+(:[0-9]+)?$//' "$sig" | tr '\n' '|')
      regress_open=$((regress_open + 1))
      if [ -z "${seen[$key]:-}" ]; then seen[$key]=1; open=$((open + 1)); fi
      lines+=("  still failing: $f" "$(sed 's/^/    /' "$sig")")
    fi
  done
  # this run's artifacts, one line per distinct signature
  shopt -s nullglob
  arts=("$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*)
  shopt -u nullglob
  n_art=0 fixed=0
  for f in "${arts[@]}"; do
    n_art=$((n_art + 1))
    [ "$n_art" -le 100 ] || continue   # enough to name every distinct bug of a run
    sig=$BUILD/triage/$t.$(basename "$f").txt
    # an artifact of an earlier run that no longer fails is fixed, not open
    if triage "$exe" "$f" "$sig"; then fixed=$((fixed + 1)); continue; fi
    key=$(sed -E 's/:[0-9]+(:[0-9]+)?$//' "$sig" | tr '\n' '|')
    if [ -z "${seen[$key]:-}" ]; then
      seen[$key]=1; open=$((open + 1)); found=$((found + 1))
      lines+=("  found: $f" "$(sed 's/^/    /' "$sig")")
    fi
  done
  report+=("fuzz: $t: $execs executions, cov: ${cov:-?} ft: ${ft:-?}, corpus $corp, artifacts ${#arts[@]} ($found distinct open, $fixed no longer failing), regressions still failing $regress_open")
  report+=("${lines[@]}")
done

printf '%s\n' "${report[@]}"
echo "fuzz: logs in $BUILD/logs, artifacts in $BUILD/findings/<target>/, signatures in $BUILD/triage/"
echo "fuzz: ${#TARGETS[@]} targets, $total_exec executions, $open open findings"
[ "$open" -eq 0 ]
