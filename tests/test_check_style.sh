#!/usr/bin/env bash
# test_check_style.sh ROOT — scripts/check_style.sh catches what it is for. A copy of ROOT's
# src/, include/, .clang-format and the script (outside git: the script then checks every .c/.h
# of the copy) must pass as it is; then, one at a time on a fresh copy:
#   a misformatted line in src/core/core.c              -> fails naming the file (format)
#   #include "transfer/transfer.h" in src/core/core.c   -> fails naming the file, core, transfer
#   #include "core/core.h" in src/cli/cli_main.c        -> fails naming the file, cli, core
#   #include "train/train.h" in src/data/dataset.c      -> fails: data and train are one level
#   #include "core/core.h" in include/graft.h           -> fails: public headers include only
#                                                          each other
#   a 90-line function in src/core/core.c               -> fails naming the file and function
# Each planted include sits alone in a block at the end of the file, so the copy stays formatted
# and only the layering check can fail.
set -u
root=$(cd "${1:?usage: test_check_style.sh ROOT}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/graft-style.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

fresh() {
  rm -rf "$tmp/tree"
  mkdir -p "$tmp/tree/scripts"
  cp -r "$root/src" "$root/include" "$root/.clang-format" "$tmp/tree/"
  cp "$root/scripts/check_style.sh" "$tmp/tree/scripts/"
}

# check NAME WANT_STATUS PATTERN...: runs the script on the copy; its status must be WANT_STATUS
# and its output must match every PATTERN (grep -E) on one line.
check() {
  local name=$1 want=$2
  shift 2
  local out st p ok=1
  out=$(bash "$tmp/tree/scripts/check_style.sh" "$tmp/tree" 2>&1)
  st=$?
  [ "$st" -eq "$want" ] || ok=0
  for p in "$@"; do
    grep -E "$p" <<< "$out" >/dev/null || ok=0
  done
  if [ $ok = 1 ]; then
    pass=$((pass + 1))
    echo "ok: $name"
  else
    fail=$((fail + 1))
    echo "FAIL: $name: exit $st (wanted $want), output:"
    sed 's/^/    /' <<< "$out"
    echo "    (wanted lines matching: $*)"
  fi
}

plant_include() { printf '\n#include %s\n' "$2" >> "$tmp/tree/$1"; }

fresh
check "clean copy passes" 0 "^check-style: format: ok" "^check-style: layering: ok"

fresh
# a declaration with doubled spaces: valid C, not what clang-format writes
printf '\nstatic int  planted_misformat;\n' >> "$tmp/tree/src/core/core.c"
check "misformatted line" 1 "^check-style: format: src/core/core\.c is not as .clang-format" \
  "^check-style: format: FAILED" "^check-style: layering: ok"

fresh
plant_include src/core/core.c '"transfer/transfer.h"'
check "core includes transfer" 1 "^check-style: format: ok" \
  "^check-style: layering: src/core/core\.c:[0-9]+: .*module core includes module transfer, a higher one" \
  "^check-style: layering: FAILED"

fresh
plant_include src/cli/cli_main.c '"core/core.h"'
check "cli includes core" 1 "^check-style: format: ok" \
  "^check-style: layering: src/cli/cli_main\.c:[0-9]+: .*module cli uses only the public API.*not module core" \
  "^check-style: layering: FAILED"

fresh
plant_include src/data/dataset.c '"train/train.h"'
check "data includes train (same level)" 1 "^check-style: format: ok" \
  "^check-style: layering: src/data/dataset\.c:[0-9]+: .*module data includes module train, on the same level"

fresh
plant_include include/graft.h '"core/core.h"'
check "public header includes core" 1 "^check-style: format: ok" \
  "^check-style: layering: include/graft\.h:[0-9]+: .*public headers .*not module core"

fresh
# a function of 90 lines (formatted as clang-format writes it): only the length check fails
{
  printf '\nint planted_long(int x);\nint planted_long(int x)\n{\n'
  for i in $(seq 1 88); do printf '    x += %d;\n' "$i"; done
  printf '    return x;\n}\n'
} >> "$tmp/tree/src/core/core.c"
check "90-line function" 1 "^check-style: format: ok" "^check-style: layering: ok" \
  "^check-style: functions: src/core/core\.c:[0-9]+: int planted_long\(int x\) is 9[0-9] lines" \
  "^check-style: functions: FAILED"

echo "test_check_style: $pass passed, $fail failed"
[ $fail -eq 0 ]
