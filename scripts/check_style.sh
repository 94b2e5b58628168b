#!/usr/bin/env bash
# check_style.sh [ROOT] — graft's style checks (`make check-style`, the first step of
# `make test`); ROOT is the tree to check (default: the one holding this script).
#
#   format    every C file (git ls-files '*.c' '*.h', fuzz/corpus excluded; outside git every
#             .c/.h under ROOT but build*/) is exactly what clang-format 14 makes of it with
#             the committed .clang-format (outside git: ROOT's) (`clang-format --dry-run
#             -Werror`). Fix: make format.
#   layering  every #include of src/ and include/ follows the module order of
#             docs/ARCHITECTURE.md ("Modules"):
#               core < ops < graph < io < data, train < transfer, speech < api < cli
#             A module includes its own headers, those of lower modules, the public headers
#             (include/graft.h, include/graft/*.h) and system headers; modules on one level do
#             not include each other; src/cli includes only its own, the public and system
#             headers; include/ headers include only each other and system headers.
#   functions no function body in src/*.c is longer than MAX_FUNC_LINES (85) lines, from its
#             "{" to its "}" at the start of a line (docs/ARCHITECTURE.md: aim under 60; the
#             op kernels are no exception today). Fix: split it into named steps.
#
# Prints each violation with its file, then one line per check; exits 0 when all pass, 1 on a
# violation, 2 when it cannot check (no clang-format 14: set CLANG_FORMAT, or make setup).
set -uo pipefail

ROOT=$(cd "${1:-$(dirname "$0")/..}" && pwd) || exit 2

# The module order: keep in step with docs/ARCHITECTURE.md. Same number, same level.
declare -A RANK=([core]=0 [ops]=1 [graph]=2 [io]=3 [data]=4 [train]=4 [transfer]=5 [speech]=5
                 [api]=6 [cli]=7)
ORDER="core < ops < graph < io < data, train < transfer, speech < api < cli"
# Headers generated at build time (not in the tree), and the module they belong to.
declare -A GENERATED=([onnx.pb-c.h]=io)

# ---- the files ---------------------------------------------------------------------------------
files=()
in_git=0
[ "$(git -C "$ROOT" rev-parse --show-toplevel 2>/dev/null)" = "$ROOT" ] && in_git=1
if [ "$in_git" = 1 ]; then
  while IFS= read -r f; do files+=("$f"); done < <(
    git -C "$ROOT" ls-files '*.c' '*.h' | grep -v '^fuzz/corpus/')
else
  while IFS= read -r f; do files+=("${f#./}"); done < <(
    cd "$ROOT" && find . \( -path './build*' -o -path ./.git -o -path ./fuzz/corpus \) -prune \
      -o -type f \( -name '*.c' -o -name '*.h' \) -print | LC_ALL=C sort)
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "check-style: no C files under $ROOT" >&2
  exit 2
fi

# ---- format ------------------------------------------------------------------------------------
CF=${CLANG_FORMAT:-}
if [ -z "$CF" ]; then
  for c in clang-format-14 clang-format; do command -v "$c" >/dev/null && { CF=$c; break; }; done
fi
if [ -z "$CF" ]; then
  echo "check-style: clang-format not found (Debian: apt-get install clang-format; make setup)" >&2
  exit 2
fi
cf_version=$("$CF" --version | sed -nE 's/.*version ([0-9]+)\..*/\1/p')
if [ "$cf_version" != 14 ]; then
  echo "check-style: $CF is version ${cf_version:-unknown}; .clang-format is for clang-format 14" \
    "(other versions format differently: set CLANG_FORMAT to a clang-format 14)" >&2
  exit 2
fi
# The committed .clang-format in a git tree (a local edit of it must not change the verdict; the
# note says so), else the copy's own.
STYLE=$ROOT/.clang-format
if [ "$in_git" = 1 ] && git -C "$ROOT" cat-file -e HEAD:.clang-format 2>/dev/null; then
  STYLE=$(mktemp "${TMPDIR:-/tmp}/graft-clang-format.XXXXXX") || exit 2
  trap 'rm -f "$STYLE"' EXIT
  git -C "$ROOT" show HEAD:.clang-format > "$STYLE"
  cmp -s "$STYLE" "$ROOT/.clang-format" ||
    echo "check-style: note: .clang-format differs from the committed one; checking against HEAD's"
elif [ ! -f "$STYLE" ]; then
  echo "check-style: $ROOT/.clang-format is missing" >&2
  exit 2
fi

# One clang-format run over all the files; each place it would change is "FILE:LINE:COL: error:
# code should be clang-formatted". Per file: the first place and how many.
status=0
out=$(cd "$ROOT" && "$CF" --dry-run -Werror --ferror-limit=0 --style=file:"$STYLE" \
  "${files[@]}" 2>&1)
cf_status=$?
drift=()
while read -r f first n; do
  echo "check-style: format: $f is not as .clang-format writes it (first at line $first;" \
    "$n place$([ "$n" = 1 ] || echo s))"
  drift+=("$f")
done < <(sed -nE 's/^(.+):([0-9]+):[0-9]+: error: code should be clang-formatted.*/\1 \2/p' <<< "$out" |
  awk '!($1 in n) { order[++k] = $1; first[$1] = $2 } { n[$1]++ }
       END { for (i = 1; i <= k; i++) print order[i], first[order[i]], n[order[i]] }')
if [ ${#drift[@]} -eq 0 ] && [ "$cf_status" -ne 0 ]; then
  echo "$out" | head -20
  echo "check-style: format: clang-format failed (status $cf_status)"
  status=1
elif [ ${#drift[@]} -gt 0 ]; then
  echo "check-style: format: FAILED, ${#drift[@]} of ${#files[@]} files; fix with: make format" \
    "(or clang-format -i ${drift[*]})"
  status=1
else
  echo "check-style: format: ok (${#files[@]} files)"
fi

# ---- layering ----------------------------------------------------------------------------------
# (plain bash, no process per include: the check runs at the start of every `make test`)
# module_of PATH sets MOD: the module of a tree file (src/<module>/...), "public" for include/.
module_of() {
  case "$1" in
    include/*) MOD=public ;;
    src/*/*) MOD=${1#src/}; MOD=${MOD%%/*} ;;
    *) MOD="" ;;
  esac
}

# resolve FILE KIND NAME sets TARGET: the tree file an include names ("" for a system header), as
# the compiler finds it: "x" first beside FILE, then in the include path (src, include); <x> only
# in the include path. "a/../b" is folded so that a path out of a module is seen as such.
normalise() {
  local IFS=/ part out=()
  for part in $1; do
    case "$part" in
      "" | .) ;;
      ..) [ ${#out[@]} -gt 0 ] && unset 'out[${#out[@]}-1]' ;;
      *) out+=("$part") ;;
    esac
  done
  NORM="${out[*]}"
}
resolve() {
  local file=$1 kind=$2 name=$3 base
  TARGET=""
  if [ "$kind" = '"' ] && [ -f "$ROOT/${file%/*}/$name" ]; then
    normalise "${file%/*}/$name"
    TARGET=$NORM
    return
  fi
  for base in src include; do
    if [ -f "$ROOT/$base/$name" ]; then
      normalise "$base/$name"
      TARGET=$NORM
      return
    fi
  done
}

nincl=0
nbad=0
bad() {
  echo "check-style: layering: $1"
  nbad=$((nbad + 1))
}
layered=()
for f in "${files[@]}"; do
  case "$f" in src/* | include/*) ;; *) continue ;; esac
  module_of "$f"
  if [ "$MOD" != public ] && [ -z "${RANK[$MOD]:-}" ]; then
    bad "$f: module src/$MOD is not in the module order ($ORDER; docs/ARCHITECTURE.md)"
    continue
  fi
  layered+=("$f")
done
include_re='^([^:]+):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*([<"])([^">]+)([">])'
while IFS= read -r hit; do
  [[ $hit =~ $include_re ]] || continue
  f=${BASH_REMATCH[1]} kind=${BASH_REMATCH[3]} name=${BASH_REMATCH[4]}
  nincl=$((nincl + 1))
  where="$f:${BASH_REMATCH[2]}: #include $kind$name${BASH_REMATCH[5]}"
  module_of "$f"
  from=$MOD
  resolve "$f" "$kind" "$name"
  if [ -n "$TARGET" ]; then
    module_of "$TARGET"
    to=$MOD
  elif [ "$kind" = '"' ] && [ -n "${GENERATED[$name]:-}" ]; then
    to=${GENERATED[$name]}
  elif [ "$kind" = '"' ]; then
    bad "$where: no such header in the tree (a system header is included with <>)"
    continue
  else
    continue # a system header
  fi
  [ "$to" = "$from" ] && continue # a module's own headers, or public including public
  if [ "$from" = public ]; then
    bad "$where: the public headers (include/) include only each other and system headers, not module $to"
  elif [ "$to" = public ]; then
    continue
  elif [ -z "$to" ]; then
    bad "$where: $TARGET is outside src/ and include/"
  elif [ "$from" = cli ]; then
    bad "$where: module cli uses only the public API (include/graft.h, include/graft/*.h), not module $to"
  elif [ -z "${RANK[$to]:-}" ]; then
    bad "$where: module $from includes module $to, which is not in the module order ($ORDER)"
  elif [ "${RANK[$to]}" -gt "${RANK[$from]}" ]; then
    bad "$where: module $from includes module $to, a higher one (order: $ORDER)"
  elif [ "${RANK[$to]}" -eq "${RANK[$from]}" ]; then
    bad "$where: module $from includes module $to, on the same level (order: $ORDER)"
  fi
done < <([ ${#layered[@]} -eq 0 ] || (cd "$ROOT" && grep -HnE '^[[:space:]]*#[[:space:]]*include' -- "${layered[@]}"))
if [ "$nbad" -gt 0 ]; then
  echo "check-style: layering: FAILED, $nbad includes against the module order ($ORDER)"
  status=1
else
  echo "check-style: layering: ok ($nincl includes in src/ and include/)"
fi

# ---- functions ---------------------------------------------------------------------------------
MAX_FUNC_LINES=85
csrc=()
for f in "${files[@]}"; do case "$f" in src/*.c) csrc+=("$f") ;; esac; done
long=$([ ${#csrc[@]} -eq 0 ] || (cd "$ROOT" && awk -v max="$MAX_FUNC_LINES" '
  FNR == 1 { open = 0 }
  /^[A-Za-z_]/ && !open { sig = $0; at = FNR }
  $0 == "{" && !open { open = FNR; s = sig; l = at; next }
  open && ($0 == "}" || $0 == "};") {
    n = FNR - open + 1
    if (n > max) printf "check-style: functions: %s:%d: %s is %d lines (at most %d)\n", FILENAME, l, s, n, max
    open = 0
  }' "${csrc[@]}"))
if [ -n "$long" ]; then
  echo "$long"
  echo "check-style: functions: FAILED, $(wc -l <<< "$long") over $MAX_FUNC_LINES lines"
  status=1
else
  echo "check-style: functions: ok (${#csrc[@]} files, none over $MAX_FUNC_LINES lines)"
fi
exit $status
