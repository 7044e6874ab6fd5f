"""Multiply-accumulates per layer: the one formula every count in the course uses.

Each output element of a layer is a sum of products, one multiply-accumulate (MAC) per product:

* convolution (any kernel, stride, padding): (C_in / groups) * kH * kW MACs per output element;
  stride and padding change only how many output elements there are;
* depthwise convolution (groups = C_in = C_out): kH * kW per output element (one input channel);
* pointwise convolution (1 x 1, groups 1): C_in per output element;
* linear (fully connected): C_in (in_features) per output element;
* pooling, add, activations, reshapes: 0 (they add or compare, they do not multiply weights).

A layer's MACs are its output elements times the MACs per element. The profiler (PyTorch modules,
chapter 1), the NAS cost model (chapter 8), the engine's IR (chapter 9) and the patch cost model
(chapter 10) all count with these functions; `per_output_of` reads the numbers from an integer
model's layer (`quant.intmodel.Layer`).
"""
from __future__ import annotations


def conv2d_per_output(in_channels: int, kernel: tuple[int, int], groups: int = 1) -> int:
    """MACs of one output element of a convolution: (C_in / groups) * kH * kW."""
    kernel_h, kernel_w = kernel
    return in_channels // groups * kernel_h * kernel_w


def conv2d(output_elements: int, in_channels: int, kernel: tuple[int, int], groups: int = 1) -> int:
    """MACs of a convolution with `output_elements` = C_out * H_out * W_out outputs."""
    return output_elements * conv2d_per_output(in_channels, kernel, groups)


def depthwise(output_elements: int, kernel: tuple[int, int]) -> int:
    """MACs of a depthwise convolution: each output reads one input channel, kH * kW products."""
    return conv2d(output_elements, 1, kernel)


def pointwise(output_elements: int, in_channels: int) -> int:
    """MACs of a 1 x 1 convolution: each output pixel-channel sums C_in products."""
    return conv2d(output_elements, in_channels, (1, 1))


def linear(output_elements: int, in_features: int) -> int:
    """MACs of a fully connected layer: each output sums `in_features` products."""
    return output_elements * in_features


def per_output_of(layer) -> int:
    """MACs per output element of an integer-model layer (`quant.intmodel.Layer`); 0 for pooling, add, flatten."""
    if layer.op == "conv2d":
        _, in_channels_per_group, kernel_h, kernel_w = layer.arrays["weight"].shape   # (C_out, C_in/groups, kH, kW)
        return int(conv2d_per_output(in_channels_per_group, (kernel_h, kernel_w)))
    if layer.op == "linear":
        return int(layer.arrays["weight"].shape[1])                                   # (C_out, C_in)
    return 0
