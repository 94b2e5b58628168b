#!/usr/bin/python3
"""The tiny CNN the checkpoint, numerics and export tests train (tests/train_driver.c,
tests/test_train_nan.c, tests/test_train_export.c):

  Conv(3->8, 3x3) -> BatchNorm -> Relu -> MaxPool(2) -> Conv(8->16, 3x3) -> BatchNorm -> Relu
  -> GlobalAveragePool -> Flatten -> Gemm(16->10)

Three input channels because graft's loader always yields (B, 3, H, W) batches (gray images are
copied to three equal channels). Random init from a fixed seed; exported in eval mode with
TrainingMode.PRESERVE and no constant folding, so the BatchNorm nodes (and their running
statistics as initializers) stay in the graph for graft to train.

  make_tiny_cnn.py OUTDIR      writes OUTDIR/tiny_cnn.onnx
"""
import os
import sys

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.bn2 = nn.BatchNorm2d(16)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(self.gap(x), 1))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_cnn.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    model = TinyCNN().eval()
    # Non-trivial running statistics, so a test can tell them from the defaults.
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.8, 1.2)
    x = torch.zeros(2, 3, 28, 28)
    path = os.path.join(out, "tiny_cnn.onnx")
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=13, training=torch.onnx.TrainingMode.PRESERVE,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=False)
    os.replace(tmp, path)
    print(f"make_tiny_cnn: wrote {path}")


if __name__ == "__main__":
    main()
