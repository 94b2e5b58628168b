#!/usr/bin/python3
"""PyTorch side of `make bench-train` (bench/train.sh), and the export of the models graft trains.

  torch_train.py export OUTDIR
      OUTDIR/<model>.onnx           torchvision resnet18 / mobilenet_v2, 10 classes, random weights,
                                    TrainingMode.PRESERVE (BatchNorm nodes stay) and no constant
                                    folding (initializer names = PyTorch parameter names); batch dynamic
      OUTDIR/<model>_<mode>.txt     the names of the parameters mode trains (all, last, head), one a line
  torch_train.py run MODEL MODE BATCH THREADS WARMUP WINDOWS SECONDS [nograd]
      trains MODEL in MODE and prints one line like bench_train's:
      torch <best img/s> img/s median <img/s> peak_rss <MB> MB step_ms <best ms> cpu_ms <ms> windows <img/s,...>
      steps <per window> loss <l>   (windows of about SECONDS, as bench_train.c)

The training loop is the ordinary fine-tuning code: frozen parameters requires_grad_(False),
model.train() and then the frozen BatchNorms .eval(), SGD with momentum on the trainable
parameters, cross-entropy. With "nograd" the frozen trunk also runs under torch.no_grad() (the
"best practice" variant; with every trunk parameter frozen autograd records nothing there anyway).
Each mode runs in its own process so that peak RSS (ru_maxrss) is per mode."""
import os
import resource
import statistics
import sys
import time

import torch
import torchvision

MODELS = ("resnet18", "mobilenet_v2")
MODES = ("all", "last", "head")
NCLASS = 10
LR, MOMENTUM = 0.001, 0.9  # random features are large: a small rate keeps the loss finite


def build(name):
    """Random weights. BatchNorm scales and shifts are made random too: torchvision starts them
    all at 1 and 0, and torch.onnx.export would then merge the equal initializers into one (an
    Identity per copy), leaving nothing under the parameter names to train."""
    torch.manual_seed(1234)
    model = getattr(torchvision.models, name)(weights=None, num_classes=NCLASS)
    gen = torch.Generator().manual_seed(1235)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(torch.empty(c).uniform_(0.5, 2.0, generator=gen))
    return model


def tail_prefixes(name, mode):
    """Parameter name prefixes that train in mode (None: every parameter)."""
    if mode == "all":
        return None
    head = ["fc."] if name == "resnet18" else ["classifier."]
    if mode == "head":
        return head
    return head + (["layer4.1."] if name == "resnet18" else ["features.18."])


def trainable_names(model, name, mode):
    pre = tail_prefixes(name, mode)
    return [k for k, _ in model.named_parameters() if pre is None or any(k.startswith(p) for p in pre)]


def export(outdir):
    os.makedirs(outdir, exist_ok=True)
    me = os.path.getmtime(os.path.abspath(__file__))
    for name in MODELS:
        path = os.path.join(outdir, name + ".onnx")
        lists = [os.path.join(outdir, f"{name}_{m}.txt") for m in MODES]
        if all(os.path.exists(p) and os.path.getmtime(p) > me for p in [path] + lists):
            continue
        model = build(name).eval()
        torch.onnx.export(model, torch.randn(2, 3, 224, 224), path + ".tmp", opset_version=13,
                          training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          do_constant_folding=False)
        os.replace(path + ".tmp", path)
        for m, lp in zip(MODES, lists):
            with open(lp, "w") as f:
                f.write("".join(k + "\n" for k in trainable_names(model, name, m)))
        print(f"torch_train: exported {path}", file=sys.stderr)


def split(model, name, mode):
    """(trunk, tail) as callables for the no_grad variant: trunk holds only frozen modules."""
    if name == "resnet18":
        m = model
        stem = [m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3]
        if mode == "last":
            trunk_mods, tail_mods = stem + [m.layer4[0]], [m.layer4[1]]
        else:
            trunk_mods, tail_mods = stem + [m.layer4, m.avgpool], []

        def trunk(x):
            for mod in trunk_mods:
                x = mod(x)
            return x

        def tail(x):
            for mod in tail_mods:
                x = mod(x)
            if mode == "last":
                x = m.avgpool(x)
            return m.fc(torch.flatten(x, 1))
        return trunk, tail
    m = model
    cut = 18 if mode == "last" else 19

    def trunk(x):
        x = m.features[:cut](x)
        if mode == "head":
            x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, (1, 1)), 1)
        return x

    def tail(x):
        if mode == "last":
            x = m.features[18](x)
            x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, (1, 1)), 1)
        return m.classifier(x)
    return trunk, tail


def run(name, mode, batch, threads, warmup, windows, seconds, nograd):
    torch.set_num_threads(threads)
    model = build(name)
    names = set(trainable_names(model, name, mode))
    for k, p in model.named_parameters():
        p.requires_grad_(k in names)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)
    model.train()
    for mod in model.modules():  # frozen BatchNorms keep their running statistics
        if isinstance(mod, torch.nn.BatchNorm2d) and not mod.weight.requires_grad:
            mod.eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 224, 224, generator=g)
    y = torch.randint(0, NCLASS, (batch,), generator=g)
    trunk, tail = split(model, name, mode) if nograd and mode != "all" else (None, None)

    def step():
        opt.zero_grad(set_to_none=True)
        if trunk:
            with torch.no_grad():
                h = trunk(x)
            out = tail(h)
        else:
            out = model(x)
        loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(warmup):
        t0 = time.perf_counter()
        step()
        last = time.perf_counter() - t0
    steps = 1 if last >= seconds else int(seconds / last + 0.5)
    rates, cpu = [], 1e30
    for _ in range(windows):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss = step()
        rates.append(batch * steps / (time.perf_counter() - t0))
        cpu = min(cpu, (time.process_time() - c0) / steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    best = max(rates)
    print(f"torch {best:.2f} img/s median {statistics.median(rates):.2f} peak_rss {peak:.0f} MB step_ms "
          f"{1000 * batch / best:.0f} cpu_ms {1000 * cpu:.0f} windows {','.join(f'{r:.2f}' for r in rates)} steps {steps} loss {loss:.4f}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "export":
        export(sys.argv[2])
    elif len(sys.argv) in (9, 10) and sys.argv[1] == "run":
        a = sys.argv[2:]
        run(a[0], a[1], *(int(v) for v in a[2:6]), float(a[6]), nograd=len(a) == 8 and a[7] == "nograd")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
