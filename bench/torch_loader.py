#!/usr/bin/env python3
"""torch_loader.py FOLDER WORKERS BATCH — images/s of torchvision's ImageFolder + DataLoader with
the transforms bench_data.c uses (Resize 256, CenterCrop 224, ToTensor, Normalize ImageNet),
shuffled, WORKERS worker processes (persistent, one torch thread each), one warm-up epoch then
one timed epoch.
Prints: torchvision <images/s> img/s peak_rss <MB> MB workers_peak_rss <MB> MB cpu <ms> ms/img
(cpu: user + system time of the main process and the workers over the timed epoch, per image)."""
import os
import resource
import sys
import time

import torch
import torchvision
from torchvision import transforms as T


def one_thread(_):
    torch.set_num_threads(1)


def cpu_seconds(dl):
    """The main process's CPU time plus that of the loader's live worker processes."""
    t = os.times()
    total = t.user + t.system
    it = getattr(dl, "_iterator", None)
    for w in getattr(it, "_workers", []) if it is not None else []:
        with open("/proc/%d/stat" % w.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main():
    folder, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = torchvision.datasets.ImageFolder(folder, tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0, worker_init_fn=one_thread,
                                     generator=torch.Generator().manual_seed(1))
    for epoch in range(2):
        if epoch == 1:
            t0, c0 = time.perf_counter(), cpu_seconds(dl)
        n, s = 0, 0.0
        for x, y in dl:
            n += x.shape[0]
            s += float(x[0, 0, 0, 0])  # touch the batch, as a training step would
    dt, cpu = time.perf_counter() - t0, cpu_seconds(dl) - c0
    del dl  # joins the workers, so their peak memory shows in RUSAGE_CHILDREN
    import gc
    gc.collect()
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("torchvision %.1f img/s peak_rss %.0f MB workers_peak_rss %.0f MB cpu %.2f ms/img"
          % (n / dt, main_mb, child_mb, 1e3 * cpu / n))


if __name__ == "__main__":
    main()
