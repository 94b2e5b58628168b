#!/usr/bin/env bash
# test_badinput.sh GRAFT MODELDIR — every broken input gives exit code 1 and one clear line on
# stderr that names the file or node, never a crash. MODELDIR comes from make_test_models.py.
set -u
graft=$1
dir=$2
pass=0
fail=0

# expect EXPECTED_SUBSTRING COMMAND...
expect() {
  local want=$1
  shift
  local err
  err=$("$@" 2>&1 >/dev/null)
  local code=$?
  local lines
  lines=$(printf '%s\n' "$err" | sed '/^$/d' | wc -l)
  if [ $code -eq 1 ] && [ "$lines" -eq 1 ] && [[ "$err" == *"$want"* ]]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $* -> exit $code, $lines lines: $err (wanted exit 1 and '$want')"
  fi
}

x="$dir/tiny_input.npy"
b="$dir/bad"
e="$dir/ext"
expect "empty.onnx: the file is empty"            "$graft" info "$b/empty.onnx"
expect "random.onnx: not a valid ONNX model"      "$graft" info "$b/random.onnx"
for t in 2 30 60 97; do
  expect "truncated_$t.onnx: not a valid ONNX model" "$graft" run "$b/truncated_$t.onnx" --input "$x"
done
expect "node 'conv1' uses op 'FancyConv'"          "$graft" run "$b/unknown_op.onnx" --input "$x"
expect "node 'conv1' (Conv) reads 'w_missing'"    "$graft" run "$b/missing_init.onnx" --input "$x"
expect "initializer 'w': dims whose product overflows" "$graft" info "$b/overflow_dims.onnx"
expect "initializer 'w': raw_data has"            "$graft" run "$b/rawdata_length.onnx" --input "$x"
expect "the graph has a cycle"                    "$graft" info "$b/cycle.onnx"
expect "opset 99"                                 "$graft" info "$b/opset99.onnx"
expect "node 'conv1' (Conv)"                      "$graft" run "$b/conv_weight_rank.onnx" --input "$x"
expect "leaves the model's folder"                "$graft" info "$e/escape_dotdot.onnx"
expect "leaves the model's folder"                "$graft" info "$e/escape_absolute.onnx"
expect "outside the model's folder"               "$graft" info "$e/escape_symlink.onnx"
expect "external data in"                         "$graft" info "$e/offset_past_end.onnx"
expect "input 'x': expected shape"                "$graft" run "$dir/tiny.onnx" --input "$dir/tiny_wrong_input.npy"
expect "input 'x': expected shape"                "$graft" run "$dir/tiny.onnx" --input "$dir/tiny_wrong_rank.npy"
expect "no-such-model.onnx: cannot open"          "$graft" info "$dir/no-such-model.onnx"
expect "tiny.onnx: not a .npy file"               "$graft" run "$dir/tiny.onnx" --input "$dir/tiny.onnx"
# the good external-data model loads and runs
if "$graft" run "$e/good_external.onnx" --input "$x" >/dev/null; then pass=$((pass + 1)); else
  fail=$((fail + 1)); echo "FAIL: good_external.onnx did not run"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
