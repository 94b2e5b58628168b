#!/usr/bin/env bash
# test_tiny_model.sh GRAFT MODELDIR — `graft run` on the tiny conv net matches numpy's forward
# pass (computed independently by make_test_models.py), with oneDNN and reference kernels.
set -eu
graft=$1
dir=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for mode in "" --reference; do
  "$graft" run "$dir/tiny.onnx" --input "$dir/tiny_input.npy" --output "$out/y.npy" $mode >/dev/null
  /usr/bin/python3 - "$out/y.npy" "$dir/tiny_output.npy" "${mode:-onednn}" <<'PY' || status=1
import sys, numpy as np
got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
d = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
print(f"tiny ({sys.argv[3]}): shape {got.shape}, max abs diff {d:.3g}")
sys.exit(0 if d <= 1e-5 else 1)
PY
done
[ $status -eq 0 ] && echo "2 passed, 0 failed" || echo "failed"
exit $status
