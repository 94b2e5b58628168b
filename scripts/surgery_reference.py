#!/usr/bin/python3
"""PyTorch reference for graft's graph-surgery test (tests/test_graph_surgery.c).

  surgery_reference.py OUTDIR

Writes into OUTDIR:
  resnet18.onnx, mobilenet_v2.onnx  torchvision models (10 classes, random weights and random
                      BatchNorm statistics), eval-mode export at opset 13 that keeps every
                      BatchNormalization node, initializer names = PyTorch parameter names
  x.npy               a batch (2, 3, 64, 64) float32
  resnet18_layer3.npy PyTorch's output of model.layer3 for x (what a cut there must give)
  <model>_<set>.txt   parameter names, one per line, as PyTorch's named_parameters lists them:
                      resnet18_all (the whole model), resnet18_last1 (layer4[1] + fc),
                      resnet18_layer4 (layer4 + fc), resnet18_fc (fc), resnet18_layer1 (layer1),
                      resnet18_bn (every BatchNorm's weight and bias),
                      mobilenet_v2_last1 (features[18] + classifier)
Skips the work when OUTDIR/done is newer than this script."""
import os
import sys
import warnings

import numpy as np
import torch
import torchvision

out = sys.argv[1]
stamp = os.path.join(out, "done")
if os.path.exists(stamp) and os.path.getmtime(stamp) > os.path.getmtime(__file__):
    sys.exit(0)
os.makedirs(out, exist_ok=True)


def build(name):
    torch.manual_seed(11)
    gen = torch.Generator().manual_seed(12)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(torch.empty(c).uniform_(0.5, 2.0, generator=gen))
    return model.eval()


def names(module, prefix):
    return [prefix + k for k, _ in module.named_parameters()]


def write(name, lines):
    with open(os.path.join(out, name + ".txt"), "w") as f:
        f.write("".join(k + "\n" for k in lines))


x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(13))
np.save(os.path.join(out, "x.npy"), x.numpy())
for name in ("resnet18", "mobilenet_v2"):
    model = build(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, os.path.join(out, name + ".onnx"), opset_version=13,
                          training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          do_constant_folding=False)
    if name == "resnet18":
        feats = {}
        model.layer3.register_forward_hook(lambda m, i, o: feats.setdefault("layer3", o))
        with torch.no_grad():
            model(x)
        np.save(os.path.join(out, "resnet18_layer3.npy"), feats["layer3"].numpy())
        write("resnet18_all", names(model, ""))
        write("resnet18_last1", names(model.layer4[1], "layer4.1.") + names(model.fc, "fc."))
        write("resnet18_layer4", names(model.layer4, "layer4.") + names(model.fc, "fc."))
        write("resnet18_fc", names(model.fc, "fc."))
        write("resnet18_layer1", names(model.layer1, "layer1."))
        write("resnet18_bn", [k for k, _ in model.named_parameters() if ".bn" in k or k.startswith("bn")
                              or "downsample.1" in k])
    else:
        write("mobilenet_v2_last1", names(model.features[18], "features.18.") + names(model.classifier, "classifier."))
open(stamp, "w").close()
