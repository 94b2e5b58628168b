#!/usr/bin/python3
"""PyTorch reference for graft's feature extraction (tests/test_transfer_extract.c).

  extract_reference.py OUTDIR

Writes into OUTDIR:
  resnet18.onnx       torchvision resnet18 (10 classes, random weights and BatchNorm
                      statistics), eval-mode export at opset 13 keeping BatchNormalization nodes
  data/<class>/...    an image folder: 7 generated images in 2 classes, JPEG and PNG, odd sizes
  grid2.npy           (7, 1024): model.layer3's output pooled by adaptive_avg_pool2d(x, 2) and
                      flattened, for each image in ImageFolder order, after Resize(72),
                      CenterCrop(64), ToTensor, Normalize(ImageNet)
  grid4.npy           (7, 2048): model.layer2's output (8x8) pooled by adaptive_avg_pool2d(x, 4)
  head.npy            (7, 512): the classifier's input (avgpool + flatten)
  labels.npy          (7,) ImageFolder's class ids
Skips the work when OUTDIR/done is newer than this script."""
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

out = sys.argv[1]
stamp = os.path.join(out, "done")
if os.path.exists(stamp) and os.path.getmtime(stamp) > os.path.getmtime(__file__):
    sys.exit(0)
os.makedirs(out, exist_ok=True)

torch.manual_seed(3)
gen = torch.Generator().manual_seed(4)
model = torchvision.models.resnet18(weights=None, num_classes=10)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=gen))
            m.bias.copy_(0.2 * torch.randn(c, generator=gen))
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(torch.empty(c).uniform_(0.5, 2.0, generator=gen))
model.eval()
torch.onnx.export(model, torch.randn(1, 3, 64, 64), os.path.join(out, "resnet18.onnx"), opset_version=13,
                  training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, do_constant_folding=False)

rng = np.random.RandomState(5)
sizes = [(90, 70), (64, 64), (130, 97), (75, 120), (100, 100), (81, 66), (140, 72)]
for i, (w, h) in enumerate(sizes):
    cls = "ants" if i % 2 == 0 else "bees"
    os.makedirs(os.path.join(out, "data", cls), exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1) + rng.rand(h, w, 3) * 40
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    im.save(os.path.join(out, "data", cls, f"img{i}." + ("png" if i % 3 == 0 else "jpg")), quality=92)

ds = torchvision.datasets.ImageFolder(os.path.join(out, "data"), transform=transforms.Compose([
    transforms.Resize(72), transforms.CenterCrop(64), transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]))
x = torch.stack([ds[i][0] for i in range(len(ds))])
with torch.no_grad():
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    l2 = model.layer2(model.layer1(h))
    l3 = model.layer3(l2)
    grid = torch.nn.functional.adaptive_avg_pool2d(l3, 2).flatten(1)
    grid4 = torch.nn.functional.adaptive_avg_pool2d(l2, 4).flatten(1)
    head = torch.flatten(model.avgpool(model.layer4(l3)), 1)
np.save(os.path.join(out, "grid2.npy"), grid.numpy())
np.save(os.path.join(out, "grid4.npy"), grid4.numpy())
np.save(os.path.join(out, "head.npy"), head.numpy())
np.save(os.path.join(out, "labels.npy"), np.array([ds[i][1] for i in range(len(ds))], dtype=np.int32))
open(stamp, "w").close()
