#!/usr/bin/env python3
"""PyTorch reference for graft's losses without labels (tests/test_train_adapt.c): on fixed
random tensors, each loss written out as in its paper's reference code, and its autograd
gradients, as .npy files into the folder argv[1].

  entropy  TENT: -(x.softmax(1) * x.log_softmax(1)).sum(1).mean()
  im       SHOT: mean(Entropy(softmax)) - sum(-msoftmax * log(msoftmax + 1e-5)), Entropy with
           the same epsilon (SHOT's loss.Entropy)
  coral    Deep CORAL: ||C_s - C_t||_F^2 / (4 d^2), torch.cov (unbiased)
  mmd      Transfer-Learning-Library's MultipleKernelMaximumMeanDiscrepancy (GaussianKernel
           alpha = 2^-3..2^1, sigma^2 = alpha * mean squared distance, detached; linear=False),
           rewritten here without its constant 2 / (batch - 1), for unequal batch sizes too
"""
import os
import sys

import numpy as np
import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(3)
torch.set_default_dtype(torch.float64)  # the reference in double; graft's inputs are float32


def save(name, t):
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    np.save(os.path.join(out, name + ".npy"), a)


def leaf(shape, scale, shift=0.0):
    # float32 values, so graft reads exactly the numbers torch differentiates
    return (torch.randn(*shape) * scale + shift).float().double().requires_grad_()


z = leaf((9, 6), 2.5)
loss = -(z.softmax(1) * z.log_softmax(1)).sum(1).mean()
loss.backward()
save("ent_logits", z.float()); save("ent_loss", loss.reshape(1)); save("ent_grad", z.grad)

z = leaf((11, 5), 3.0)
eps = 1e-5
p = z.softmax(1)
ent = (-p * torch.log(p + eps)).sum(1).mean()
m = p.mean(0)
loss = ent - (-m * torch.log(m + eps)).sum()
loss.backward()
save("im_logits", z.float()); save("im_loss", loss.reshape(1)); save("im_grad", z.grad)

xs, xt = leaf((12, 7), 1.0), leaf((9, 7), 1.5)
d = xs.shape[1]
loss = ((torch.cov(xs.T) - torch.cov(xt.T)) ** 2).sum() / (4 * d * d)
loss.backward()
save("coral_xs", xs.float()); save("coral_xt", xt.float())
save("coral_loss", loss.reshape(1)); save("coral_gs", xs.grad); save("coral_gt", xt.grad)

xs, xt = leaf((10, 4), 1.0), leaf((7, 4), 1.0, 0.7)  # a shifted target
alphas = [2.0 ** k for k in range(-3, 2)]
ns, nt = xs.shape[0], xt.shape[0]
f = torch.cat([xs, xt])
d2 = ((f.unsqueeze(0) - f.unsqueeze(1)) ** 2).sum(2)
mu = d2.detach().mean()
K = sum(torch.exp(-d2 / (2 * a * mu)) for a in alphas)
W = torch.zeros(ns + nt, ns + nt)
W[:ns, :ns] = 1.0 / (ns * (ns - 1))
W[ns:, ns:] = 1.0 / (nt * (nt - 1))
W[:ns, ns:] = W[ns:, :ns] = -1.0 / (ns * nt)
W.fill_diagonal_(0)
loss = (K * W).sum()
loss.backward()
save("mmd_xs", xs.float()); save("mmd_xt", xt.float()); save("mmd_alphas", np.array(alphas))
save("mmd_loss", loss.reshape(1)); save("mmd_gs", xs.grad); save("mmd_gt", xt.grad)
