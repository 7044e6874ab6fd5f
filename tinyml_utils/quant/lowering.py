"""Lowering: the folded, calibrated fx graph -> the tensors and integer layers of an `IntModel`.

`convert` traces, folds and calibrates; this module walks the graph once, node by node, and
writes down what the integer specification needs for each: a quantized tensor (scale, zero
point) per produced value, and a `Layer` with int8 weights, int32 biases and fixed-point
multipliers per weighted layer, add or pooling. ReLU/ReLU6 are not layers: they become the
clamp (act_min, act_max) of the layer before them. Views (dropout, flatten of a vector,
AddChannel) produce no new tensor; they alias the one they read.
"""
from __future__ import annotations

import operator

import numpy as np
import torch
from torch import nn

from ..models import AddChannel
from .fixedpoint import quantize_multiplier, quantize_multipliers
from .intmodel import Layer, TensorSpec
from .linear import asymmetric_qparams, quantize, quantize_bias, quantize_weights

SUPPORTED = ("Conv2d (any kernel, stride, symmetric padding, groups), Linear, BatchNorm1d/2d directly after "
             "Conv2d/Linear (folded), ReLU and ReLU6 directly after Conv2d/Linear/add (fused), "
             "AdaptiveAvgPool2d(1), AvgPool2d and MaxPool2d without padding, Flatten, Dropout, Identity, "
             "AddChannel, residual add (a + b)")
PASS_THROUGH = (nn.Dropout, nn.Identity, AddChannel)
ADD_FUNCTIONS = (operator.add, torch.add)
RELU_FUNCTIONS = (torch.relu, nn.functional.relu)


class UnsupportedOperator(ValueError):
    """A layer the integer specification does not cover."""


def is_relu(node, modules) -> str | None:
    """'relu' / 'relu6' if the node is such an activation, else None."""
    if node.op == "call_module" and isinstance(modules.get(node.target), nn.ReLU6):
        return "relu6"
    if node.op == "call_module" and isinstance(modules.get(node.target), nn.ReLU):
        return "relu"
    if node.op == "call_function" and node.target in RELU_FUNCTIONS:
        return "relu"
    if node.op == "call_function" and node.target is nn.functional.relu6:
        return "relu6"
    return None



class Lowering:
    """Collects tensors and layers while `visit` is called on each fx node in graph order."""

    def __init__(self, modules: dict, ranges: dict, shapes: dict, bits_of: dict, weight_scales: dict):
        self.modules, self.ranges, self.shapes = modules, ranges, shapes
        self.bits_of, self.weight_scales = bits_of, weight_scales
        self.alias: dict[str, str] = {}         # fx node name -> the tensor name it produces
        self.tensors: dict[str, TensorSpec] = {}
        self.layers: list[Layer] = []
        self.input_name = self.output_name = None

    def new_tensor(self, node_name: str, shape, qparams=None) -> str:
        """A quantized tensor named after its node; qparams from calibration unless given."""
        scale, zp = qparams if qparams is not None else asymmetric_qparams(*self.ranges[node_name])
        self.tensors[node_name] = TensorSpec(node_name, tuple(int(s) for s in shape), float(scale), int(zp))
        self.alias[node_name] = node_name
        return node_name

    def visit(self, node) -> None:
        if node.op == "placeholder":
            self.input_name = self.new_tensor(node.name, self.shapes[node.name])
            return
        if node.op == "output":
            self.output_name = self.alias[node.args[0].name]
            return
        src = self.alias.get(node.args[0].name) if node.args and isinstance(node.args[0], torch.fx.Node) else None
        mod = self.modules.get(node.target) if node.op == "call_module" else None
        if isinstance(mod, PASS_THROUGH) or (node.op == "call_method" and node.target == "contiguous"):
            if isinstance(mod, AddChannel):  # the model input becomes (1, H, W)
                self.tensors[src].shape = self.shapes[node.name]
            self.alias[node.name] = src
        elif is_relu(node, self.modules):
            if node.name not in self.alias:
                raise UnsupportedOperator(f"{node.name}: a ReLU must directly follow the only use of a "
                                          f"Conv2d, Linear or add. Supported: {SUPPORTED}")
        elif isinstance(mod, (nn.Conv2d, nn.Linear)) or (node.op == "call_function" and node.target in ADD_FUNCTIONS):
            self._weighted_or_add(node, src, mod)
        elif isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d)):
            self.layers.append(_pool_layer(node.name, mod, src, self.shapes[node.args[0].name]))
            self._same_qparams(node, src)
        elif isinstance(mod, nn.Flatten) or (node.op == "call_function" and node.target is torch.flatten) \
                or (node.op == "call_method" and node.target in ("flatten", "view", "reshape")):
            self.layers.append(Layer("flatten", node.name, [src], node.name))
            self._same_qparams(node, src)
        else:
            what = type(mod).__name__ if mod is not None else f"{node.op} {getattr(node.target, '__name__', node.target)}"
            raise UnsupportedOperator(f"{node.name}: {what} is not in the integer specification. Supported: {SUPPORTED}")

    def _same_qparams(self, node, src: str) -> None:
        """Pooling and flatten keep their input's scale and zero point (no requantization)."""
        self.new_tensor(node.name, self.shapes[node.name], (self.tensors[src].scale, self.tensors[src].zero_point))

    def _activation_of(self, node) -> str | None:
        users = list(node.users)
        return is_relu(users[0], self.modules) if len(users) == 1 else None

    def _weighted_or_add(self, node, src: str, mod) -> None:
        """A Conv2d, Linear or add, with the ReLU/ReLU6 that follows it fused in as its clamp."""
        act = self._activation_of(node)
        out_node = list(node.users)[0].name if act else node.name
        out = self.new_tensor(out_node, self.shapes[out_node])
        self.alias[node.name] = out
        spec_in, spec_out = self.tensors[src], self.tensors[out]
        act_min, act_max = -128, 127
        if act:
            act_min = max(-128, spec_out.zero_point)
            if act == "relu6":
                act_max = min(127, spec_out.zero_point + round(6.0 / spec_out.scale))
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            self.layers.append(_weight_layer(node.name, mod, src, out, spec_in, spec_out, act_min, act_max,
                                             self.bits_of[node.target], self.weight_scales.get(node.target)))
        else:
            other = self.alias[node.args[1].name]
            self.layers.append(_add_layer(node.name, src, other, out, self.tensors, act_min, act_max))


def _weight_layer(name, mod, src, out, spec_in, spec_out, act_min, act_max, bits: int = 8,
                  scale=None) -> Layer:
    qmax = 2 ** (bits - 1) - 1
    if scale is None:
        w_q, w_scale = quantize_weights(mod.weight.detach().numpy(), axis=0, qmax=qmax)
    else:
        w_scale = np.asarray(scale, dtype=np.float32)
        w_q = quantize(mod.weight.detach().numpy(), w_scale, np.zeros(len(w_scale), np.int64), -qmax, qmax,
                       axis=0).astype(np.int8)
    bias = mod.bias.detach().numpy() if mod.bias is not None else np.zeros(w_q.shape[0], np.float32)
    m0, shift = quantize_multipliers(np.float64(spec_in.scale) * w_scale.astype(np.float64) / spec_out.scale)
    arrays = {"weight": w_q, "bias": quantize_bias(bias, spec_in.scale, w_scale), "multiplier": m0,
              "shift": shift, "weight_scale": w_scale.astype(np.float32)}
    attrs = {"act_min": act_min, "act_max": act_max}
    if bits != 8:
        attrs["weight_bits"] = bits
    if isinstance(mod, nn.Conv2d):
        if isinstance(mod.padding, str) or mod.dilation != (1, 1) or mod.padding_mode != "zeros":
            raise UnsupportedOperator(f"{name}: Conv2d needs numeric zero padding and dilation 1. Supported: {SUPPORTED}")
        attrs.update(stride=tuple(mod.stride), padding=tuple(mod.padding), groups=mod.groups)
        return Layer("conv2d", name, [src], out, attrs, arrays)
    return Layer("linear", name, [src], out, attrs, arrays)


def _add_layer(name, a, b, out, tensors, act_min, act_max, left_shift: int = 20) -> Layer:
    s_a, s_b, s_out = tensors[a].scale, tensors[b].scale, tensors[out].scale
    twice_max = 2 * max(s_a, s_b)
    m_a, sh_a = quantize_multiplier(s_a / twice_max)
    m_b, sh_b = quantize_multiplier(s_b / twice_max)
    m_out, sh_out = quantize_multiplier(twice_max / ((1 << left_shift) * s_out))
    attrs = dict(left_shift=left_shift, multiplier_a=m_a, shift_a=sh_a, multiplier_b=m_b, shift_b=sh_b,
                 multiplier_out=m_out, shift_out=sh_out, act_min=act_min, act_max=act_max)
    return Layer("add", name, [a, b], out, attrs)


def _pool_layer(name, mod, src, in_shape) -> Layer:
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        if mod.output_size not in (1, (1, 1)):
            raise UnsupportedOperator(f"{name}: only AdaptiveAvgPool2d(1) (global pooling) is supported")
        return Layer("avgpool", name, [src], name, {"kernel": tuple(in_shape[1:]), "stride": (1, 1)})
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    if pair(mod.padding) != (0, 0) or getattr(mod, "ceil_mode", False) or pair(getattr(mod, "dilation", 1)) != (1, 1):
        raise UnsupportedOperator(f"{name}: pooling must have no padding, no ceil_mode and no dilation")
    op = "avgpool" if isinstance(mod, nn.AvgPool2d) else "maxpool"
    stride = pair(mod.stride if mod.stride is not None else mod.kernel_size)
    return Layer(op, name, [src], name, {"kernel": pair(mod.kernel_size), "stride": stride})
