"""Efficient operators from scratch: im2col, depthwise, pointwise and depthwise-separable convolution,
MobileNet V1 and V2 blocks, and their costs (parameters, MACs, im2col buffer bytes).

Tensors are NCHW like PyTorch's: activations (N, C, H, W), convolution weights (C_out, C_in/groups,
kH, kW). Each convolution here is written with plain tensor indexing and a matrix product, and the
tests check it against `torch.nn.functional.conv2d`. Costs are per inference (batch 1); MACs are
multiply-accumulates; bytes are at `bytes_per_element` bytes per value (1 for int8).
"""
from __future__ import annotations

import torch
from torch import nn


def _pair(value, what: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair (kernel, stride, padding are given either way)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    return pair


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length along one axis: floor((size + 2 * padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


# --- Costs -------------------------------------------------------------------------------------------

def conv_cost(c_in: int, c_out: int, kernel, out_h: int, out_w: int, groups: int = 1,
              bias: bool = False) -> dict:
    """{'params', 'macs'} of one Conv2d: each of the out_h*out_w*c_out outputs sums (c_in/groups)*kH*kW products."""
    k_h, k_w = _pair(kernel, "kernel")
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    per_output = (c_in // groups) * k_h * k_w
    return {"params": c_out * per_output + (c_out if bias else 0), "macs": out_h * out_w * c_out * per_output}


def standard_cost(c_in: int, c_out: int, kernel: int, out_h: int, out_w: int) -> dict:
    """A full k x k convolution: params C_out*C_in*k^2, MACs H*W*C_out*C_in*k^2 (no bias)."""
    return conv_cost(c_in, c_out, kernel, out_h, out_w)


def depthwise_cost(channels: int, kernel: int, out_h: int, out_w: int) -> dict:
    """A k x k depthwise convolution (groups = C): params C*k^2, MACs H*W*C*k^2."""
    return conv_cost(channels, channels, kernel, out_h, out_w, groups=channels)


def pointwise_cost(c_in: int, c_out: int, out_h: int, out_w: int) -> dict:
    """A 1 x 1 convolution: params C_out*C_in, MACs H*W*C_out*C_in."""
    return conv_cost(c_in, c_out, 1, out_h, out_w)


def separable_cost(c_in: int, c_out: int, kernel: int, out_h: int, out_w: int) -> dict:
    """Depthwise k x k (at the output resolution) then pointwise: the sum of the two costs."""
    dw, pw = depthwise_cost(c_in, kernel, out_h, out_w), pointwise_cost(c_in, c_out, out_h, out_w)
    return {key: dw[key] + pw[key] for key in dw}


def separable_ratio(c_out: int, kernel: int) -> float:
    """Separable / standard cost, for params and MACs alike: 1/C_out + 1/k^2."""
    return 1 / c_out + 1 / kernel ** 2


# --- im2col and the convolutions built on it --------------------------------------------------------

def im2col(x: torch.Tensor, kernel, stride=1, padding=0) -> torch.Tensor:
    """Patches as columns: (N, C, H, W) -> (N, C*kH*kW, H_out*W_out), the layout of F.unfold.

    Row c*kH*kW + i*kW + j of column (y, x) holds input[c, y*s + i - p, x*s + j - p] (0 outside).
    """
    if x.dim() != 4:
        raise ValueError(f"im2col expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}; "
                         "add the batch dimension with x.unsqueeze(0)")
    (k_h, k_w), (s_h, s_w), (p_h, p_w) = _pair(kernel, "kernel"), _pair(stride, "stride"), _pair(padding, "padding")
    n, c, h, w = x.shape
    out_h, out_w = conv_output_size(h, k_h, s_h, p_h), conv_output_size(w, k_w, s_w, p_w)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {k_h}x{k_w} kernel does not fit a {h}x{w} input padded by {(p_h, p_w)}")
    padded = x.new_zeros(n, c, h + 2 * p_h, w + 2 * p_w)      # zero padding, written out
    padded[:, :, p_h:p_h + h, p_w:p_w + w] = x
    cols = x.new_empty(n, c, k_h, k_w, out_h, out_w)
    for i in range(k_h):          # one strided slice per kernel tap: kH*kW copies of the map
        for j in range(k_w):
            cols[:, :, i, j] = padded[:, :, i:i + s_h * (out_h - 1) + 1:s_h, j:j + s_w * (out_w - 1) + 1:s_w]
    return cols.reshape(n, c * k_h * k_w, out_h * out_w)


def _output_hw(x: torch.Tensor, kernel, stride, padding) -> tuple[int, int]:
    (k_h, k_w), (s_h, s_w), (p_h, p_w) = _pair(kernel, "kernel"), _pair(stride, "stride"), _pair(padding, "padding")
    return conv_output_size(x.shape[2], k_h, s_h, p_h), conv_output_size(x.shape[3], k_w, s_w, p_w)


def conv2d_im2col(x: torch.Tensor, weight: torch.Tensor, bias=None, stride=1, padding=0) -> torch.Tensor:
    """A standard convolution as one matrix product: (C_out, C_in*kH*kW) @ (C_in*kH*kW, L) per image."""
    c_out, c_in, k_h, k_w = weight.shape                      # (C_out, C_in, kH, kW)
    if x.dim() != 4 or x.shape[1] != c_in:
        raise ValueError(f"input {tuple(x.shape)} does not match weight {tuple(weight.shape)}: "
                         f"expected (N, {c_in}, H, W)")
    cols = im2col(x, (k_h, k_w), stride, padding)             # (N, C_in*kH*kW, L)
    out = weight.reshape(c_out, -1) @ cols                    # (N, C_out, L)
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(x.shape[0], c_out, *_output_hw(x, (k_h, k_w), stride, padding))


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias=None, stride=1, padding=0) -> torch.Tensor:
    """Depthwise convolution: channel c of the output only sees channel c of the input.

    x (N, C, H, W), weight (C, 1, kH, kW) as in nn.Conv2d(C, C, k, groups=C) -> (N, C, H_out, W_out).
    """
    channels, one, k_h, k_w = weight.shape
    if one != 1 or x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"depthwise weight must be (C, 1, kH, kW) with C = input channels; got weight "
                         f"{tuple(weight.shape)} for input {tuple(x.shape)}")
    cols = im2col(x, (k_h, k_w), stride, padding)             # (N, C*kH*kW, L)
    cols = cols.reshape(x.shape[0], channels, k_h * k_w, -1)  # (N, C, kH*kW, L): each channel's own patches
    out = (cols * weight.reshape(channels, k_h * k_w, 1)).sum(2)   # (N, C, L): no mixing across channels
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(x.shape[0], channels, *_output_hw(x, (k_h, k_w), stride, padding))


def pointwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias=None) -> torch.Tensor:
    """1 x 1 convolution: a (C_out, C_in) matrix applied at every pixel. x (N, C_in, H, W) -> (N, C_out, H, W)."""
    c_out, c_in = weight.shape[:2]
    if weight.shape[2:] != (1, 1) or x.dim() != 4 or x.shape[1] != c_in:
        raise ValueError(f"pointwise weight must be (C_out, C_in, 1, 1) with C_in = input channels; got weight "
                         f"{tuple(weight.shape)} for input {tuple(x.shape)}")
    n, _, h, w = x.shape
    out = weight.reshape(c_out, c_in) @ x.reshape(n, c_in, h * w)   # (N, C_out, H*W): no im2col needed
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(n, c_out, h, w)


def separable_conv2d(x, dw_weight, pw_weight, dw_bias=None, pw_bias=None, stride=1, padding=0) -> torch.Tensor:
    """Depthwise (spatial filtering per channel) then pointwise (mixing channels), no activation between."""
    return pointwise_conv2d(depthwise_conv2d(x, dw_weight, dw_bias, stride, padding), pw_weight, pw_bias)


class SeparableConv2d(nn.Module):
    """A depthwise-separable convolution computed by the from-scratch functions above.

    Its parameters have the shapes of nn.Conv2d's, so `to_torch()` can hand them to PyTorch's layers
    for checking: weights dw (C_in, 1, k, k), pw (C_out, C_in, 1, 1).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1, bias: bool = True):
        super().__init__()
        reference = self._torch_layers(c_in, c_out, kernel, stride, padding, bias)  # PyTorch's initialisation
        self.dw_weight, self.pw_weight = reference[0].weight, reference[1].weight
        self.dw_bias = reference[0].bias if bias else None
        self.pw_bias = reference[1].bias if bias else None
        self.c_in, self.c_out, self.kernel, self.stride, self.padding, self.bias = c_in, c_out, kernel, stride, padding, bias

    @staticmethod
    def _torch_layers(c_in, c_out, kernel, stride, padding, bias) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_in, kernel, stride, padding, groups=c_in, bias=bias),
                             nn.Conv2d(c_in, c_out, 1, bias=bias))

    def forward(self, x):
        return separable_conv2d(x, self.dw_weight, self.pw_weight, self.dw_bias, self.pw_bias, self.stride, self.padding)

    @torch.no_grad()
    def to_torch(self) -> nn.Sequential:
        """The same layer as nn.Conv2d(groups=C_in) followed by a 1 x 1 nn.Conv2d, with these weights."""
        layers = self._torch_layers(self.c_in, self.c_out, self.kernel, self.stride, self.padding, self.bias)
        layers[0].weight.copy_(self.dw_weight)
        layers[1].weight.copy_(self.pw_weight)
        if self.bias:
            layers[0].bias.copy_(self.dw_bias)
            layers[1].bias.copy_(self.pw_bias)
        return layers


# --- MobileNet blocks ---------------------------------------------------------------------------------

def mobilenet_v1_block(c_in: int, c_out: int, stride: int = 1, activation=nn.ReLU6) -> nn.Sequential:
    """MobileNet V1's block: 3x3 depthwise + BN + activation, then 1x1 pointwise + BN + activation."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in), activation(),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), activation())


class InvertedResidual(nn.Module):
    """MobileNet V2's block: expand 1x1 (x t), 3x3 depthwise, project 1x1 with no activation (the linear
    bottleneck), and a residual connection when the shapes allow it (stride 1, c_in == c_out).

    Same layers and order as torchvision's `InvertedResidual`, so weights transfer one to one.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: float, activation=nn.ReLU6):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(c_in * expand_ratio))
        self.use_residual = stride == 1 and c_in == c_out
        layers = []
        if expand_ratio != 1:      # t = 1 (the first block) has nothing to expand
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), activation()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), activation(),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]   # linear: no activation
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.use_residual else y   # the input stays alive until this add


# --- im2col memory ----------------------------------------------------------------------------------

def im2col_buffer_bytes(conv: nn.Conv2d, out_h: int, out_w: int, bytes_per_element: int = 1) -> int:
    """Bytes of the full im2col matrix of `conv`: (C_in/groups * kH*kW) x (out_h*out_w) per group, all groups.

    A 1 x 1 convolution with stride 1 needs none: its input already is that matrix.
    """
    k_h, k_w = conv.kernel_size
    if (k_h, k_w) == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0):
        return 0
    return conv.in_channels * k_h * k_w * out_h * out_w * bytes_per_element


def cmsis_nn_buffer_bytes(conv: nn.Conv2d) -> int:
    """Scratch bytes that CMSIS-NN's int8 kernels ask for on a Cortex-M with the DSP extension (no MVE).

    Standard k x k convolution (arm_convolve_s8): two im2col columns of int16, the column length rounded
    up to a multiple of 4: 2 * ceil4(C_in*kH*kW) * 2 bytes. Depthwise: 3x3 with padding <= 1 runs
    arm_depthwise_conv_3x3_s8 (none); other kernels arm_depthwise_conv_s8_opt, one int16 column,
    C*kH*kW * 2 bytes. 1 x 1: counted as none (the 'fast' 1x1 path takes 2 * C_in int16 with some
    compilers). Source: CMSIS-NN, Source/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c,
    arm_depthwise_conv_get_buffer_sizes_s8.c and arm_depthwise_conv_wrapper_s8.c.
    """
    k_h, k_w = conv.kernel_size
    if (k_h, k_w) == (1, 1):
        return 0
    if conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1:
        if (k_h, k_w) == (3, 3) and max(conv.padding) <= 1 and conv.dilation == (1, 1):
            return 0
        return conv.in_channels * k_h * k_w * 2
    if conv.groups != 1:
        raise ValueError("cmsis_nn_buffer_bytes covers standard (groups=1) and depthwise convolutions only")
    column = conv.in_channels * k_h * k_w
    return 2 * (column + (-column) % 4) * 2
