#!/usr/bin/env bash
# tests/load_check.sh — the test suite on a busy machine: runs the project's test command while a
# CPU-bound process (one `sha256sum /dev/zero`, single-threaded: one core's worth of load) runs
# for its whole duration, then says PASS or FAIL, how long it took, and the slowest tests
# against their ctest TIMEOUT. Checked once by hand (not part of `make test`): it takes as long
# as the command it runs.
#
#   bash tests/load_check.sh                 # `make test`: the whole suite, then the ASan pass
#   bash tests/load_check.sh asan            # any make targets: `make asan`, `make test-fast`, ...
#   bash tests/load_check.sh -- -R keyword   # ctest ARGS in ./build as it is built (BUILD_DIR=
#                                            # build-asan: the ASan build, as `make asan` runs it)
#
# Environment: LOAD=N runs N busy processes (default 1; the machine of the issue has 2 cores, so
# 1 leaves the tests one core and a half-share of the other); LOG=FILE keeps the output (default
# /tmp/load_check.log). The busy processes are killed at the end whatever happens (exit, ^C,
# a failing command). Exit code: the test command's.
set -u
cd "$(dirname "$0")/.." || exit 2
LOAD=${LOAD:-1}
LOG=${LOG:-/tmp/load_check.log}
BUILD_DIR=${BUILD_DIR:-build}

if [ "${1:-}" = "--" ]; then
  shift
  cmd=(ctest --output-on-failure "$@")
  run() { (cd "$BUILD_DIR" && if [[ $BUILD_DIR == *asan* ]]; then ASAN_OPTIONS=detect_leaks=1 "${cmd[@]}"; else "${cmd[@]}"; fi); }
  what="ctest $* in $BUILD_DIR"
else
  [ $# -gt 0 ] || set -- test
  cmd=(make "$@")
  run() { "${cmd[@]}"; }
  what="make $*"
fi

pids=()
stop_load() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null; done
  pids=()
}
trap stop_load EXIT
trap 'stop_load; exit 130' INT TERM
for _ in $(seq "$LOAD"); do
  sha256sum /dev/zero > /dev/null &
  pids+=($!)
done

echo "load_check: $what with $LOAD busy process(es) (pids ${pids[*]}) on $(nproc) cores; log $LOG"
start=$(date +%s)
# the whole output to the log, the tests' result lines to the terminal as they come
run 2>&1 | tee "$LOG" | grep --line-buffered -E 'Test +#[0-9]+: |^make(\[[0-9]+\])?: \*\*\*'
rc=${PIPESTATUS[0]}
end=$(date +%s)
alive=0
for p in "${pids[@]}"; do kill -0 "$p" 2> /dev/null && alive=$((alive + 1)); done
stop_load

# the slowest tests of the run, with the TIMEOUT ctest gave them (from the build folder whose
# tests ran last before them: ./build for the first ctest of `make test`, ./build-asan after
# "cmake ... -DGRAFT_SANITIZE=ON")
timeouts() {  # timeouts DIR: "name timeout" per test of the ctest folder DIR
  [ -f "$1/CTestTestfile.cmake" ] || return 0
  (cd "$1" && ctest --show-only=json-v1 2> /dev/null) | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin)["tests"]:
    p = {q["name"]: q["value"] for q in t.get("properties", [])}
    print(t["name"], p.get("TIMEOUT", 1500))' 2> /dev/null
}
{
  timeouts "$BUILD_DIR" | sed 's/^/build /'
  timeouts build-asan | sed 's/^/asan /'
} > "$LOG.timeouts"
awk -v tfile="$LOG.timeouts" -v asan_first="$([[ $BUILD_DIR == *asan* ]] && echo 1)" '
  BEGIN { while ((getline l < tfile) > 0) { split(l, f, " "); to[f[1] " " f[2]] = f[3] } pass = asan_first ? "asan" : "build" }
  /-DGRAFT_SANITIZE=ON/ { pass = "asan" }
  /Test +#[0-9]+: / {
    name = $0; sub(/.*Test +#[0-9]+: /, "", name); sub(/ .*/, "", name)
    sec = $0; sub(/ sec.*/, "", sec); sub(/.* /, "", sec)
    status = ($0 ~ /Passed/) ? "passed" : ($0 ~ /Timeout/ ? "TIMEOUT" : "FAILED")
    t = to[pass " " name]; if (t == "") t = "?"
    printf "%-6s %-44s %8.1f s  %-7s timeout %s s%s\n", pass, name, sec, status, t,
           (t != "?" && sec * 2 > t) ? "  (over half the timeout)" : ""
  }' "$LOG" | sort -k3 -n -r | head -15 > "$LOG.slowest"

echo "load_check: the slowest tests under load (pass, test, time, result, its TIMEOUT):"
sed 's/^/  /' "$LOG.slowest"
grep -E '^[0-9]+% tests passed|tests failed out of' "$LOG" | sed 's/^/  /'
grep -E '^[[:space:]]+[0-9]+ - .*\((Failed|Timeout|Not Run|SEGFAULT|Subprocess aborted|Exception)' "$LOG" | sed 's/^/  /'
[ "$alive" = "$LOAD" ] || echo "load_check: warning: only $alive of $LOAD busy processes were still running at the end"
m=$(( (end - start) / 60 )) s=$(( (end - start) % 60 ))
if [ $rc = 0 ]; then
  echo "load_check: PASS ($what under load, ${m}m${s}s)"
else
  echo "load_check: FAIL ($what exit $rc under load, ${m}m${s}s; see $LOG)"
fi
exit $rc
