"""Checks for lab 7, efficient operators. Each compares the student's function with PyTorch or the profiler."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import CheckFailed, expect_close, expect_equal, passed
from .. import profiler

# (C_in, C_out, k, stride, padding, H, W): DS-CNN-S's block, strided, unpadded, odd and tiny shapes.
CASES = [(64, 64, 3, 1, 1, 25, 5), (8, 16, 3, 2, 1, 11, 10), (5, 12, 5, 2, 2, 13, 8),
         (16, 8, 3, 2, 0, 10, 10), (1, 3, 3, 1, 1, 4, 4), (3, 6, 1, 1, 0, 7, 5)]


def _tensor(what: str, got, shape) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{what}: expected a torch.Tensor of shape {tuple(shape)}, got {type(got).__name__}")
    if tuple(got.shape) != tuple(shape):
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got {tuple(got.shape)}")
    return got


def _expect_tensor_close(what: str, got, expected: torch.Tensor, atol: float = 1e-4) -> None:
    got = _tensor(what, got, expected.shape)
    error = float((got.float() - expected).abs().max()) if got.numel() else 0.0
    if not error <= atol:
        raise CheckFailed(f"{what}: values differ from PyTorch's by up to {error:.3g} (allowed {atol:g})")


def check_im2col(im2col) -> None:
    """im2col(x (C, H, W), k, stride, padding) -> (C*k*k, H_out*W_out) in F.unfold's layout."""
    gen = torch.Generator().manual_seed(7)
    for c_in, _, k, stride, padding, h, w in CASES:
        x = torch.randn(c_in, h, w, generator=gen)
        expected = F.unfold(x[None], k, padding=padding, stride=stride)[0]
        _expect_tensor_close(f"im2col(x of shape {(c_in, h, w)}, k={k}, stride={stride}, padding={padding})",
                             im2col(x, k, stride, padding), expected, atol=0.0)
    passed("im2col matches F.unfold, with strides 1 and 2 and padding 0 to 2")


def check_depthwise(depthwise_conv) -> None:
    """depthwise_conv(x (C, H, W), weight (C, 1, k, k), stride, padding) -> (C, H_out, W_out)."""
    gen = torch.Generator().manual_seed(8)
    for c_in, _, k, stride, padding, h, w in CASES:
        x, weight = torch.randn(c_in, h, w, generator=gen), torch.randn(c_in, 1, k, k, generator=gen)
        expected = F.conv2d(x[None], weight, stride=stride, padding=padding, groups=c_in)[0]
        _expect_tensor_close(f"depthwise_conv on {(c_in, h, w)} with a {k}x{k} kernel, stride {stride}, padding {padding}",
                             depthwise_conv(x, weight, stride, padding), expected)
    passed("depthwise_conv matches nn.Conv2d(C, C, k, groups=C)")


def check_pointwise(pointwise_conv) -> None:
    """pointwise_conv(x (C_in, H, W), weight (C_out, C_in, 1, 1)) -> (C_out, H, W)."""
    gen = torch.Generator().manual_seed(9)
    for c_in, c_out, _, _, _, h, w in CASES:
        x, weight = torch.randn(c_in, h, w, generator=gen), torch.randn(c_out, c_in, 1, 1, generator=gen)
        _expect_tensor_close(f"pointwise_conv from {c_in} to {c_out} channels on {h}x{w}",
                             pointwise_conv(x, weight), F.conv2d(x[None], weight)[0])
    passed("pointwise_conv matches a 1x1 nn.Conv2d")


def check_separable(separable_conv) -> None:
    """separable_conv(x, dw_weight, pw_weight, stride, padding) == pointwise(depthwise(x))."""
    torch.manual_seed(10)
    for c_in, c_out, k, stride, padding, h, w in CASES:
        layers = nn.Sequential(nn.Conv2d(c_in, c_in, k, stride, padding, groups=c_in, bias=False),
                               nn.Conv2d(c_in, c_out, 1, bias=False))
        x = torch.randn(c_in, h, w)
        with torch.no_grad():
            expected = layers(x[None])[0]
            got = separable_conv(x, layers[0].weight, layers[1].weight, stride, padding)
        _expect_tensor_close(f"separable_conv from {c_in} to {c_out} channels, {k}x{k}, stride {stride}", got, expected)
    passed("separable_conv matches nn.Conv2d(groups=C) followed by a 1x1 nn.Conv2d")


def _separable_layers(c_in, c_out, k):
    return nn.Sequential(nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False))


def check_separable_cost(separable_cost) -> None:
    """separable_cost(c_in, c_out, k, out_h, out_w) -> {'params': ..., 'macs': ...} (no biases)."""
    for c_in, c_out, k, _, _, h, w in CASES + [(32, 64, 3, 1, 1, 48, 48), (512, 512, 3, 1, 1, 6, 6)]:
        layers = _separable_layers(c_in, c_out, k)
        got = separable_cost(c_in, c_out, k, h, w)
        if not isinstance(got, dict) or set(got) != {"params", "macs"}:
            raise CheckFailed(f"separable_cost should return a dict with the keys 'params' and 'macs', got {got!r}")
        what = f"separable_cost({c_in}, {c_out}, {k}, {h}, {w})"
        expect_equal(f"{what}['params']", got["params"], profiler.count_params(layers))
        expect_equal(f"{what}['macs']", got["macs"], profiler.count_macs(layers, (c_in, h, w)))
    passed("separable_cost matches the profiler on real depthwise + pointwise layers")


def check_cost_ratio(cost_ratio) -> None:
    """cost_ratio(c_out, k) -> separable / standard MACs (the same for parameters)."""
    for c_in, c_out, k in [(64, 64, 3), (32, 64, 3), (8, 16, 5), (512, 512, 3), (3, 7, 7), (16, 1, 3)]:
        separable = profiler.count_macs(_separable_layers(c_in, c_out, k), (c_in, 8, 8))
        standard = profiler.count_macs(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), (c_in, 8, 8))
        expect_close(f"cost_ratio(c_out={c_out}, k={k}) (measured with c_in={c_in})", cost_ratio(c_out, k),
                     separable / standard, rel=1e-9)
    passed("cost_ratio equals the measured separable / standard MAC ratio for every width and kernel tried")


def check_im2col_bytes(im2col_bytes) -> None:
    """im2col_bytes(conv: nn.Conv2d, out_h, out_w) -> bytes of the full im2col matrix at int8 (0 if none is needed)."""
    cases = [(nn.Conv2d(1, 64, (10, 4), (2, 2), (5, 1)), 25, 5, 40 * 125),
             (nn.Conv2d(64, 64, 3, padding=1, groups=64), 25, 5, 64 * 9 * 125),
             (nn.Conv2d(64, 64, 1), 25, 5, 0),
             (nn.Conv2d(3, 16, 3, 2, 1), 48, 48, 27 * 48 * 48),
             (nn.Conv2d(32, 16, 1, stride=2), 12, 12, 32 * 144)]
    for conv, h, w, expected in cases:
        expect_equal(f"im2col_bytes({conv}, {h}, {w})", im2col_bytes(conv, h, w), expected)
    passed("im2col_bytes counts C_in * kH * kW * H_out * W_out bytes, and none for a stride-1 1x1 convolution")
