"""Keyword-spotting models: the DS-CNN family of Hello Edge / MLPerf Tiny, a small CNN and a DNN.

All take MFCC features shaped (N, 1, 49, 10) (or (N, 49, 10), which they unsqueeze) and return
12 logits. Each is a flat `nn.Sequential` of standard layers, so a profiler, a quantizer or a code
generator can walk it layer by layer.
"""
from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from .mfcc import NUM_FRAMES, NUM_MFCC

NUM_CLASSES = 12
INPUT_SHAPE = (1, NUM_FRAMES, NUM_MFCC)  # (C, H, W): 49 frames x 10 coefficients


def same_padding(size: int, kernel: int, stride: int) -> int:
    """Symmetric padding that gives TensorFlow's 'same' output size ceil(size / stride)."""
    out = math.ceil(size / stride)
    return math.ceil(max((out - 1) * stride + kernel - size, 0) / 2)


class AddChannel(nn.Module):
    """(N, H, W) features -> (N, 1, H, W); leaves 4-D input alone."""

    def forward(self, x):
        return x.unsqueeze(1) if x.dim() == 3 else x


def conv_bn_relu(name: str, c_in: int, c_out: int, kernel, stride=1, padding=0, groups: int = 1) -> list:
    """(name, module) pairs of a convolution (no bias: batch norm supplies it), batch norm and ReLU."""
    return [(name, nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False)),
            (f"{name}_bn", nn.BatchNorm2d(c_out)), (f"{name}_relu", nn.ReLU())]


class DSCNN(nn.Sequential):
    """Depthwise-separable CNN for keyword spotting.

    The defaults are DS-CNN-S of MLPerf Tiny: a 10x4 stride-2 convolution to 64 channels, then four
    blocks of (3x3 depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU) at 64 channels, global
    average pooling and a linear layer to 12 classes: ~23 K parameters, 2,656,768 MACs.
    `channels[0]` is the first convolution's width; each further entry adds one block.
    """

    def __init__(self, channels=(64, 64, 64, 64, 64), first_kernel=(10, 4), first_stride=(2, 2),
                 dw_kernel: int = 3, num_classes: int = NUM_CLASSES, input_shape=INPUT_SHAPE):
        _, h, w = input_shape
        pad = (same_padding(h, first_kernel[0], first_stride[0]), same_padding(w, first_kernel[1], first_stride[1]))
        layers = [("input", AddChannel()),
                  *conv_bn_relu("conv1", input_shape[0], channels[0], first_kernel, first_stride, pad)]
        for block, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]), start=1):
            layers += conv_bn_relu(f"dw{block}", c_in, c_in, dw_kernel, 1, dw_kernel // 2, groups=c_in)
            layers += conv_bn_relu(f"pw{block}", c_in, c_out, 1)
        layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                   ("fc", nn.Linear(channels[-1], num_classes))]
        super().__init__(OrderedDict(layers))
        self.config = dict(channels=tuple(channels), first_kernel=tuple(first_kernel),
                           first_stride=tuple(first_stride), dw_kernel=dw_kernel, num_classes=num_classes,
                           input_shape=tuple(input_shape))


def ds_cnn_s(**overrides) -> DSCNN:
    """DS-CNN-S, the MLPerf Tiny keyword-spotting reference architecture."""
    return DSCNN(**overrides)


class SmallCNN(nn.Sequential):
    """A plain CNN (Hello Edge's CNN flavour): two full 9x3 convolutions with max pooling, then two
    linear layers. More parameters and MACs than DS-CNN-S, for comparison."""

    def __init__(self, channels=(28, 30), hidden: int = 16, num_classes: int = NUM_CLASSES):
        c1, c2 = channels
        super().__init__(OrderedDict([
            ("input", AddChannel()),
            *conv_bn_relu("conv1", 1, c1, (9, 3), 1, (4, 1)),      # (c1, 49, 10)
            ("pool1", nn.MaxPool2d(2)),                            # (c1, 24, 5)
            *conv_bn_relu("conv2", c1, c2, (9, 3), 1, (4, 1)),     # (c2, 24, 5)
            ("pool2", nn.MaxPool2d((2, 1))),                       # (c2, 12, 5)
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(c2 * 12 * 5, hidden)), ("fc1_relu", nn.ReLU()),
            ("fc2", nn.Linear(hidden, num_classes))]))


class DNN(nn.Sequential):
    """A fully connected network (Hello Edge's DNN): the 49x10 features flattened, three hidden layers."""

    def __init__(self, hidden: int = 144, num_layers: int = 3, num_classes: int = NUM_CLASSES):
        layers = [("flatten", nn.Flatten())]
        width = NUM_FRAMES * NUM_MFCC
        for i in range(1, num_layers + 1):
            layers += [(f"fc{i}", nn.Linear(width, hidden)), (f"fc{i}_bn", nn.BatchNorm1d(hidden)),
                       (f"fc{i}_relu", nn.ReLU())]
            width = hidden
        layers.append((f"fc{num_layers + 1}", nn.Linear(width, num_classes)))
        super().__init__(OrderedDict(layers))


def ds_cnn_wide(**overrides) -> DSCNN:
    """DS-CNN-S at twice the width (128 channels): the distillation chapter's teacher, ~3.5x the MACs."""
    return DSCNN(**{"channels": (128, 128, 128, 128, 128), **overrides})


MODEL_ZOO = {"ds_cnn_s": ds_cnn_s, "small_cnn": SmallCNN, "dnn": DNN, "ds_cnn_wide": ds_cnn_wide}
