"""Checks for lab 1, measuring a model. Each compares the student's function with PyTorch or the profiler."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import CheckFailed, expect_equal, passed
from .. import profiler
from ..models import DNN, DSCNN, SmallCNN, ds_cnn_s

CONV_CASES = [  # (c_in, c_out, (k_h, k_w), stride, padding, groups, (H, W))
    (1, 64, (10, 4), 2, (5, 1), 1, (49, 10)),
    (64, 64, (3, 3), 1, (1, 1), 64, (25, 5)),
    (64, 32, (1, 1), 1, (0, 0), 1, (25, 5)),
    (3, 16, (3, 3), 2, (1, 1), 1, (96, 96)),
    (8, 8, (5, 5), 2, (2, 2), 8, (17, 13)),
    (6, 12, (3, 1), 3, (0, 0), 3, (20, 7)),
]


def _conv(c_in, c_out, kernel, stride, padding, groups, bias=True):
    return nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=bias)


def check_output_size(conv_output_size) -> None:
    """conv_output_size(size, kernel, stride, padding) -> output length along one axis."""
    for c_in, c_out, kernel, stride, padding, groups, (h, w) in CONV_CASES:
        out = _conv(c_in, c_out, kernel, stride, padding, groups)(torch.zeros(1, c_in, h, w)).shape
        for axis, size in enumerate((h, w)):
            expect_equal(f"conv_output_size({size}, {kernel[axis]}, {stride}, {padding[axis]})",
                         conv_output_size(size, kernel[axis], stride, padding[axis]), out[2 + axis])
    passed("conv_output_size matches the shapes nn.Conv2d produces")


def check_conv_params(conv_params) -> None:
    """conv_params(c_in, c_out, k_h, k_w, groups=1, bias=True) -> number of parameters."""
    for c_in, c_out, kernel, stride, padding, groups, _ in CONV_CASES:
        for bias in (True, False):
            expected = sum(p.numel() for p in _conv(c_in, c_out, kernel, stride, padding, groups, bias).parameters())
            expect_equal(f"conv_params({c_in}, {c_out}, {kernel[0]}, {kernel[1]}, groups={groups}, bias={bias})",
                         conv_params(c_in, c_out, kernel[0], kernel[1], groups=groups, bias=bias), expected)
    passed("conv_params matches nn.Conv2d's parameter count, with and without bias, for groups >= 1")


def check_conv_macs(conv_macs) -> None:
    """conv_macs(c_in, c_out, k_h, k_w, out_h, out_w, groups=1) -> MACs of one inference."""
    for c_in, c_out, kernel, stride, padding, groups, (h, w) in CONV_CASES:
        conv = _conv(c_in, c_out, kernel, stride, padding, groups)
        out_shape = tuple(conv(torch.zeros(1, c_in, h, w)).shape[1:])
        expected = profiler.layer_macs(conv, out_shape)
        got = conv_macs(c_in, c_out, kernel[0], kernel[1], out_shape[1], out_shape[2], groups=groups)
        expect_equal(f"conv_macs for Conv2d({c_in}, {c_out}, {kernel}, groups={groups}) with output {out_shape}",
                     got, expected)
    passed("conv_macs matches the profiler on standard, depthwise, pointwise and grouped convolutions")


def check_chain_peak(chain_peak_bytes) -> None:
    """chain_peak_bytes(sizes, bytes_per_element) -> peak bytes of a chain whose tensors have `sizes` elements."""
    rng = np.random.default_rng(1)
    cases = [([490, 8000, 8000, 8000, 64, 12], 1, 16000), ([10, 3], 4, 52), ([5], 1, 5)]
    cases += [(s, 2, 2 * max(a + b for a, b in zip(s[:-1], s[1:]))) for s in
              (rng.integers(1, 10_000, n).tolist() for n in (3, 7, 12))]
    for sizes, bpe, expected in cases:
        expect_equal(f"chain_peak_bytes({sizes}, {bpe})", chain_peak_bytes(sizes, bpe), expected)
    passed("chain_peak_bytes finds the largest input + output pair (and handles a single tensor)")


def check_flash_bytes(flash_bytes) -> None:
    """flash_bytes(model, weight_bits) -> bytes of conv/linear weights plus one int32 bias per output channel."""
    for model in (ds_cnn_s(), SmallCNN(), DNN(), DSCNN(channels=(16, 24, 32))):
        for bits in (8, 4, 32):
            expect_equal(f"flash_bytes({type(model).__name__}, {bits})", flash_bytes(model, bits),
                         profiler.deployed_bytes(model, bits, 32))
    passed("flash_bytes matches profiler.deployed_bytes for 4, 8 and 32-bit weights")


def check_busiest_layer(busiest_layer) -> None:
    """busiest_layer(model) -> name of a layer with the most MACs (ties: any of them)."""
    for model in (ds_cnn_s(), SmallCNN(), DNN(), DSCNN(channels=(96, 32))):
        records = profiler.profile(model)
        most = max(r.macs for r in records)
        busiest = sorted(r.name for r in records if r.macs == most)
        got = busiest_layer(model)
        if got not in busiest:
            raise CheckFailed(f"busiest_layer({type(model).__name__}): expected one of {busiest} "
                              f"({most:,} MACs), got {got!r}")
    passed("busiest_layer finds the layer with the most MACs")
