"""A weight-sharing supernet: one set of weights that contains every model of a design space.

Every layer is allocated at its largest size in the space (widest, biggest kernel, deepest), and a
sub-network `Arch` uses a slice of it (as in Once-for-All and TinyNAS):

* width: the first `c` output channels (and the first `c_in` input channels) of a weight;
* kernel: the centre `k x k` (or `k_t x k_f`) crop of the largest kernel;
* depth: the first `d` blocks;
* stride: the same weights, moved with a different stride.

`forward(x, arch)` runs one sub-network with batch-norm statistics of the batch (training);
`extract(arch)` copies its slice into an ordinary `models.DSCNN`, whose batch-norm statistics
`estimate.calibrate_bn` then recomputes for that sub-network alone.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..models import NUM_CLASSES, DSCNN, same_padding
from .space import Arch, DesignSpace


def centre_crop(weight: torch.Tensor, k_h: int, k_w: int) -> torch.Tensor:
    """The centre k_h x k_w window of a (C_out, C_in, K_h, K_w) kernel (top-left of centre if uneven)."""
    big_h, big_w = weight.shape[-2:]
    if k_h > big_h or k_w > big_w:
        raise ValueError(f"kernel {k_h}x{k_w} is larger than the supernet's {big_h}x{big_w}")
    top, left = (big_h - k_h) // 2, (big_w - k_w) // 2
    return weight[..., top:top + k_h, left:left + k_w]


class Supernet(nn.Module):
    """The largest model of `space`, whose slices are all the others (weights shared)."""

    def __init__(self, space: DesignSpace):
        super().__init__()
        self.space = space
        width, depth = max(space.widths), max(space.depths)
        k_t, k_f = space.max_kernel
        k = max(space.dw_kernels)
        # Batch norm without running statistics: in training every sub-network normalises with its
        # own batch statistics; after extraction they are recomputed for that sub-network.
        self.conv1 = nn.Conv2d(1, width, (k_t, k_f), bias=False)                 # (W, 1, k_t, k_f)
        self.conv1_bn = nn.BatchNorm2d(width, track_running_stats=False)
        # depthwise (W, 1, k, k) and pointwise (W, W, 1, 1) weights of every block
        self.dw = nn.ModuleList(nn.Conv2d(width, width, k, groups=width, bias=False) for _ in range(depth))
        self.dw_bn = nn.ModuleList(nn.BatchNorm2d(width, track_running_stats=False) for _ in range(depth))
        self.pw = nn.ModuleList(nn.Conv2d(width, width, 1, bias=False) for _ in range(depth))
        self.pw_bn = nn.ModuleList(nn.BatchNorm2d(width, track_running_stats=False) for _ in range(depth))
        self.fc = nn.Linear(width, NUM_CLASSES)                                  # (12, W)

    def check(self, arch: Arch) -> None:
        """Raise ValueError unless `arch` is a sub-network of this supernet."""
        if arch not in self.space:
            raise ValueError(f"{arch.short()} is not in design space {self.space.name}: its supernet "
                             f"cannot run it (widths {self.space.widths}, depths {self.space.depths}, "
                             f"resolution {self.space.resolution})")

    def slices(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The weight slices of `arch`, named like the parameters of `arch.build()`."""
        self.check(arch)
        c, k = arch.channels, arch.dw_kernel
        out = {"conv1.weight": centre_crop(self.conv1.weight[:c[0]], *arch.first_kernel),
               "conv1_bn.weight": self.conv1_bn.weight[:c[0]], "conv1_bn.bias": self.conv1_bn.bias[:c[0]]}
        for i, (c_in, c_out) in enumerate(zip(c[:-1], c[1:])):
            b = i + 1
            out[f"dw{b}.weight"] = centre_crop(self.dw[i].weight[:c_in], k, k)
            out[f"dw{b}_bn.weight"], out[f"dw{b}_bn.bias"] = self.dw_bn[i].weight[:c_in], self.dw_bn[i].bias[:c_in]
            out[f"pw{b}.weight"] = self.pw[i].weight[:c_out, :c_in]
            out[f"pw{b}_bn.weight"], out[f"pw{b}_bn.bias"] = self.pw_bn[i].weight[:c_out], self.pw_bn[i].bias[:c_out]
        out["fc.weight"], out["fc.bias"] = self.fc.weight[:, :c[-1]], self.fc.bias
        return out

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """Logits (N, 12) of sub-network `arch` on features x (N, frames, coeffs), batch statistics."""
        w = self.slices(arch)
        x = x.unsqueeze(1) if x.dim() == 3 else x                                # (N, 1, frames, coeffs)
        (frames, coeffs), (k_t, k_f), stride = arch.resolution, arch.first_kernel, arch.first_stride
        pad = (same_padding(frames, k_t, stride[0]), same_padding(coeffs, k_f, stride[1]))

        def bn_relu(h, name):
            return F.relu(F.batch_norm(h, None, None, w[f"{name}.weight"], w[f"{name}.bias"], training=True))

        h = bn_relu(F.conv2d(x, w["conv1.weight"], stride=stride, padding=pad), "conv1_bn")
        for b in range(1, arch.depth + 1):
            h = bn_relu(F.conv2d(h, w[f"dw{b}.weight"], padding=arch.dw_kernel // 2, groups=h.shape[1]), f"dw{b}_bn")
            h = bn_relu(F.conv2d(h, w[f"pw{b}.weight"]), f"pw{b}_bn")
        return F.linear(h.mean(dim=(2, 3)), w["fc.weight"], w["fc.bias"])       # global average pool, fc

    @torch.no_grad()
    def extract(self, arch: Arch) -> DSCNN:
        """`arch` as a stand-alone `models.DSCNN` holding copies of its weight slices.

        Batch-norm running statistics are left at their defaults: recompute them with
        `estimate.calibrate_bn` before evaluating.
        """
        model = arch.build()
        params = dict(model.named_parameters())
        for name, value in self.slices(arch).items():
            params[name].copy_(value)
        return model
