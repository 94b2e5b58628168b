#!/usr/bin/python3
"""transfer_table.py RESULTS TRANSFER BASELINES — the table of a transfer experiment and its
negative-transfer warnings (scripts/demo.sh, tests/test_second_task.sh).

  RESULTS    lines "k method seed accuracy" (accuracy in 0..1)
  TRANSFER   comma-separated methods=labels that reuse the pretrained model, e.g.
             "probe=transfer: linear probe,finetune=transfer: fine-tune"
  BASELINES  the same for the methods that do not, e.g. "scratch=small CNN from scratch"

Prints one row per method (mean accuracy over the seeds for each k), then a line
  warning: at k=K transfer (A%) does not beat LABEL (B%)
for every k and baseline where the best transfer method's mean is not above the baseline's:
the pretrained model did not help there (negative transfer), whatever else the table says.
"""
import collections
import sys


def methods(spec):
    out = []
    for item in spec.split(","):
        name, _, label = item.partition("=")
        out.append((name, label or name))
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    acc = collections.defaultdict(list)
    with open(sys.argv[1]) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 4:
                sys.exit(f"{sys.argv[1]}:{n}: want 'k method seed accuracy', got {line.strip()!r}")
            acc[(int(parts[0]), parts[1])].append(float(parts[3]))
    transfer, baselines = methods(sys.argv[2]), methods(sys.argv[3])
    ks = sorted({k for k, _ in acc})
    missing = [f"{m} at k={k}" for k in ks for m, _ in transfer + baselines if not acc[(k, m)]]
    if missing:
        sys.exit(f"{sys.argv[1]}: no results for " + ", ".join(missing))
    mean = {key: sum(v) / len(v) for key, v in acc.items()}
    width = max(len(label) for _, label in transfer + baselines) + 2
    print(f"{'method':{width}s}" + "".join(f"{'k=%d' % k:>9s}" for k in ks))
    for m, label in transfer + baselines:
        print(f"{label:{width}s}" + "".join(f"{100 * mean[(k, m)]:8.1f}%" for k in ks))
    for k in ks:
        best = max(mean[(k, m)] for m, _ in transfer)
        for m, label in baselines:
            if best <= mean[(k, m)]:
                print(f"warning: at k={k} transfer ({100 * best:.1f}%) does not beat {label} ({100 * mean[(k, m)]:.1f}%)")


if __name__ == "__main__":
    main()
