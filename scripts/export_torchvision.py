#!/usr/bin/python3
"""Exports torchvision architectures to ONNX with PyTorch's outputs, for graft's model-parity
tests (tests/test_models.c). Uses Debian's python3-torch 1.13 / python3-torchvision 0.14.

  export_torchvision.py OUTDIR [--models a,b] [--opset 13|17|13,17]

For each model: random weights (weights=None, fixed seed), made non-trivial where torchvision's
initialisation would hide errors (see nontrivial()), in eval mode, exported as
  OUTDIR/<name>_op<opset>.onnx           input "input" (N,3,224,224), output "output", N dynamic
  OUTDIR/<name>_input.npy                a fixed random input, (2,3,224,224) float32
  OUTDIR/<name>_op<opset>_output.npy     PyTorch's output for it, float32
The two opsets differ on purpose in one more way:
  opset 13: torch.onnx.export's defaults (TrainingMode.EVAL), so the exporter folds each
            BatchNorm that follows a Conv into the Conv, as most users' files have it;
  opset 17: training=TrainingMode.PRESERVE on the eval model, so every BatchNorm stays a
            BatchNormalization node (inference form) and graft's BN op sees the random stats;
            LayerNorm becomes LayerNormalization (new in opset 17).
Work already done is skipped: a model is redone only if one of its files is missing or older
than this script. Prints the time taken per model on stderr.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

torch = torchvision = None  # imported by main() only when there is work to do (it takes ~1 s)

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
          "squeezenet1_1", "densenet121", "shufflenet_v2_x1_0", "convnext_tiny", "vit_b_16"]
SEED = 1234
BATCH = 2


def nontrivial(model, gen):
    """Makes the parameters that torchvision initialises to constants random, so that a wrong
    use of them in graft shows up in the outputs:
      - BatchNorm: gamma and beta random; running statistics calibrated on a random batch (so
        activations keep a sane scale through 50+ layers), then perturbed per channel.
      - LayerNorm: weight and bias random (torchvision starts them at 1 and 0).
      - ConvNeXt layer_scale starts at 1e-6, which makes every block nearly the identity.
      - ViT's class token and classification head start at zero (the output would be all 0).
    """
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bns:  # gamma and beta first, so that the calibration sees them
            c = m.num_features
            m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=gen))
            m.bias.copy_(0.2 * torch.randn(c, generator=gen))
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch gives exactly its statistics
            m.train()  # only the BNs train: Dropout and StochasticDepth stay off
        if bns:
            model(torch.randn(8, 3, 224, 224, generator=gen))
        model.eval()
        for m in bns:
            c = m.num_features
            std = m.running_var.sqrt()
            m.running_mean += 0.1 * std * torch.randn(c, generator=gen)
            m.running_var *= torch.empty(c).uniform_(0.7, 1.4, generator=gen)
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.5, 1.5, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.empty(p.shape).uniform_(0.2, 1.0, generator=gen))
            elif name == "class_token":
                p.copy_(torch.randn(p.shape, generator=gen))
        head = getattr(getattr(model, "heads", None), "head", None)
        if isinstance(head, torch.nn.Linear):
            bound = 1.0 / head.in_features ** 0.5
            head.weight.copy_(torch.empty(head.weight.shape).uniform_(-bound, bound, generator=gen))
            head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=gen))


def build(name):
    torch.manual_seed(SEED)  # torchvision's initialisers draw from the global generator
    model = getattr(torchvision.models, name)(weights=None)
    gen = torch.Generator().manual_seed(SEED + 1)
    nontrivial(model, gen)
    return model.eval()


def fixed_input(name):
    # One input per model, the same for every opset; seeded by the model's name so that adding
    # a model does not change the others' inputs.
    seed = SEED + sum(ord(c) * (i + 1) for i, c in enumerate(name))
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, 3, 224, 224, generator=gen)


def export(model, x, path, opset):
    mode = torch.onnx.TrainingMode.EVAL if opset < 17 else torch.onnx.TrainingMode.PRESERVE
    tmp = path + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, tmp, opset_version=opset, training=mode,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          do_constant_folding=True)
    os.replace(tmp, path)


def save_npy(path, a):
    tmp = path + ".tmp.npy"
    np.save(tmp, np.ascontiguousarray(a, dtype=np.float32))
    os.replace(tmp, path)


def up_to_date(paths, script_mtime):
    return all(os.path.exists(p) and os.path.getmtime(p) > script_mtime for p in paths)


def main():
    global torch, torchvision
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    ap.add_argument("--opset", default="17", help="13, 17 or 13,17")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    opsets = [int(o) for o in args.opset.split(",") if o]
    for n in names:
        if n not in MODELS:
            sys.exit(f"export_torchvision: unknown model '{n}' (known: {', '.join(MODELS)})")
    for o in opsets:
        if o not in (13, 17):
            sys.exit(f"export_torchvision: opset {o} not supported (13 or 17)")
    os.makedirs(args.outdir, exist_ok=True)
    script_mtime = os.path.getmtime(os.path.abspath(__file__))

    total = time.time()
    for name in names:
        t0 = time.time()
        base = os.path.join(args.outdir, name)
        in_path = base + "_input.npy"
        files = [in_path]
        for o in opsets:
            files += [f"{base}_op{o}.onnx", f"{base}_op{o}_output.npy"]
        if up_to_date(files, script_mtime):
            print(f"{name}: up to date", file=sys.stderr)
            continue
        if torch is None:
            import torch
            import torchvision
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        model = build(name)
        x = fixed_input(name)
        with torch.no_grad():
            y = model(x)
        save_npy(in_path, x.numpy())
        t_build = time.time() - t0
        for o in opsets:
            t1 = time.time()
            export(model, x, f"{base}_op{o}.onnx", o)
            save_npy(f"{base}_op{o}_output.npy", y.numpy())
            print(f"{name}: opset {o} exported in {time.time() - t1:.1f} s", file=sys.stderr)
        print(f"{name}: {time.time() - t0:.1f} s (build + reference {t_build:.1f} s), "
              f"output {tuple(y.shape)} std {float(y.std()):.3g} max|y| {float(y.abs().max()):.3g}",
              file=sys.stderr)
    print(f"export_torchvision: {len(names)} models in {time.time() - total:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
