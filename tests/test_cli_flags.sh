#!/bin/bash
# test_cli_flags.sh GRAFT — every numeric flag of every command refuses a word, a negative, a
# huge value and the value just past its maximum: exit 2 and one message naming the command and
# the flag ("graft finetune: --epochs: ..."), before any file is read (the positional arguments
# are paths that do not exist). The flags come from the commands' own tables (the hidden
# `graft --flags-table`: command, flag, type, min, max), so a flag added to a table is tested
# here without editing this file. Each flag also accepts a value inside its range (the check
# does not simply refuse everything), an unknown flag names the closest one, and a choice flag
# refuses a name outside its set.
G=$1
pass=0 fail=0
check() { # DESCRIPTION CONDITION
  if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi
}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
D1=/nonexistent/graft-test/a D2=/nonexistent/graft-test/b

"$G" --flags-table > "$tmp/table" 2> "$tmp/table.err"
check "graft --flags-table: exit 0" "[ $? -eq 0 ]"

# CMD FLAG VALUE -> exit code in $tmp/rc, stderr in $tmp/err (CMD may be "keyword train")
run() {
  # shellcheck disable=SC2086 # the command's words split on purpose
  "$G" $1 "$D1" "$D2" "$2" "$3" > /dev/null 2> "$tmp/err"
  echo $? > "$tmp/rc"
}

# refused CMD FLAG VALUE: exit 2 and a message "graft CMD: FLAG: ..." that quotes VALUE
refused() {
  run "$1" "$2" "$3"
  local rc
  rc=$(cat "$tmp/rc")
  if [ "$rc" -eq 2 ] && grep -qF -- "graft $1: $2: " "$tmp/err" && grep -qF -- "$3" "$tmp/err"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: graft $1 $2 $3 was not refused with exit 2 naming the flag (exit $rc: $(head -1 "$tmp/err"))"
  fi
}

numeric=0
commands=""
while IFS=$'\t' read -r cmd flag type lo hi; do
  case " $commands " in *" $cmd "*) ;; *) commands="$commands $cmd" ;; esac
  case $type in int | real | size | ints) ;; *) continue ;; esac
  numeric=$((numeric + 1))
  check "$cmd $flag: the range [$lo, $hi] excludes negatives" "awk 'BEGIN { exit !($lo >= 0) }'"
  refused "$cmd" "$flag" ten
  refused "$cmd" "$flag" -3
  case $type in
    int | ints) refused "$cmd" "$flag" 99999999999999999999999
                refused "$cmd" "$flag" "$(awk -v h="$hi" 'BEGIN { printf "%.0f", h + 1 }')"
                ok=$lo ;;
    real) refused "$cmd" "$flag" 1e300
          refused "$cmd" "$flag" "$(awk -v h="$hi" 'BEGIN { printf "%.17g", h * 2 + 1 }')"
          ok=$(awk -v l="$lo" -v h="$hi" 'BEGIN { printf "%.17g", (l + h) / 2 }') ;;
    size) refused "$cmd" "$flag" 99999999T
          ok=$lo ;;
  esac
  run "$cmd" "$flag" "$ok"
  check "graft $cmd $flag $ok: accepted (its range is [$lo, $hi])" "! grep -qF -- 'graft $cmd: $flag:' '$tmp/err'"
done < "$tmp/table"

# the table is not empty, and has every command `graft --help` lists
check "--flags-table lists at least 50 numeric flags (it has $numeric)" "[ $numeric -ge 50 ]"
"$G" --help > "$tmp/help"
while read -r name sub _; do
  [ "$name" = keyword ] && name="keyword $sub"
  check "graft $name (from graft --help) has rows in --flags-table" "grep -q '^$name	' '$tmp/table'"
done < <(sed -n '/^commands:/,/^$/p' "$tmp/help" | grep -E '^  [a-z]')

# an unknown flag names the closest; a choice outside its set is refused, its set listed
"$G" finetune "$D1" "$D2" --epoch 3 > /dev/null 2> "$tmp/err"
check "unknown flag --epoch: exit 2, 'did you mean --epochs?'" \
  "[ $? -eq 2 ] && grep -qF 'graft finetune: unknown flag --epoch (did you mean --epochs?)' '$tmp/err'"
"$G" extract "$D1" "$D2" --pool cube > /dev/null 2> "$tmp/err"
check "--pool cube: exit 2 listing the poolings" \
  "[ $? -eq 2 ] && grep -qF \"graft extract: --pool: 'cube' is not one of mean, grid2, grid4 or none\" '$tmp/err'"
"$G" finetune "$D1" "$D2" --epochs > /dev/null 2> "$tmp/err"
check "--epochs without a value: exit 2 saying so" "[ $? -eq 2 ] && grep -qF 'graft finetune: --epochs needs a value' '$tmp/err'"
"$G" keyword train "$D1" --scratch=1 > /dev/null 2> "$tmp/err"
check "a switch given a value: exit 2" "[ $? -eq 2 ] && grep -qF -- '--scratch takes no value' '$tmp/err'"

echo "test_cli_flags: $numeric numeric flags; $pass passed, $fail failed"
[ "$fail" -eq 0 ]
