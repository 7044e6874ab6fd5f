"""The engine's graph IR: an `IntModel` lifted to device tensors and typed operators.

Why a second IR. The integer model (`quant.intmodel`) is the *specification*: what `convert`
writes, the reference interpreter runs and patch-based inference (chapter 10) slices, saved to
disk. It describes tensors in PyTorch's NCHW order and has one `conv2d` op for every kind of
convolution. An engine needs more: each tensor's shape *on the device* and its size in bytes (to
plan memory), and each convolution's *kind* (a 1x1 pointwise, a depthwise and a general
convolution run different kernels). Keeping those device facts out of the specification keeps it
small and stable; this module derives them.

How one becomes the other: `from_intmodel(model)` checks every layer and returns a `Graph` with
one `Op` per `Layer` (same names, same order, same tensor names), the device shape of every
tensor, the operator kind and the MACs by the course's one formula (`tinyml_utils.macs`, the one
`patch.cost` and the profiler use). The graph keeps the model as `Graph.source`: its layers still
run the arithmetic (`engine.arena`); the graph only says where and with which kernel.

Device layout: feature maps are stored HWC (TFLite's NHWC without the batch), channels
innermost, so one pixel's channels are contiguous: a pointwise convolution reads one pixel as one
vector, and a pixel can be overwritten as soon as it has been read (in-place operators).
Vectors (the output of `flatten` or `linear`) are (C,). Every tensor is int8, so bytes = elements.

Operators (`Op.kind`), with the IntModel op they come from:

* ``conv2d``: a general convolution (any kernel, stride, padding, groups);
* ``depthwise``: ``conv2d`` with groups == C_in == C_out;
* ``pointwise``: ``conv2d`` with a 1x1 kernel, stride 1, no padding and groups 1;
* ``fully_connected``: ``linear``;
* ``avgpool`` (global pooling when the window is the whole map), ``maxpool``;
* ``add``: residual add with two input scales;
* ``flatten``: (C, H, W) -> (C*H*W,) in NCHW order, as PyTorch flattens. On an HWC device this
  is free (a *view*) when H*W == 1 or C == 1, else a transpose copy.

Requantization is not a separate operator: every kernel that accumulates in int32 requantizes
while it stores (`runtime/tm_requant.h`). Anything else raises `UnsupportedOperator`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import macs
from ..quant.intmodel import IntModel

KINDS = ("conv2d", "depthwise", "pointwise", "fully_connected", "avgpool", "maxpool", "add", "flatten")
SUPPORTED = ("conv2d (any kernel, stride, symmetric padding and groups; depthwise when groups == C_in == C_out, "
             "pointwise when 1x1 with stride 1 and no padding), linear (fully connected), avgpool, maxpool "
             "(no padding), add (two inputs, same shape), flatten")


class UnsupportedOperator(ValueError):
    """An operator or a configuration of one that the engine has no kernel for."""


@dataclass
class Tensor:
    """An int8 tensor on the device: shape in device layout (H, W, C) or (C,), real = scale * (q - zero_point)."""
    name: str
    shape: tuple
    scale: float
    zero_point: int
    nchw_shape: tuple   # the IntModel's shape (C, H, W) or (C,), for converting reference tensors

    @property
    def nbytes(self) -> int:
        """Bytes (= elements: int8)."""
        return int(np.prod(self.shape))


@dataclass
class Op:
    """One operator: inputs/output by tensor name, plain integer attributes, integer arrays (IntModel layout)."""
    kind: str
    name: str
    inputs: list
    output: str
    attrs: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    macs: int = 0


@dataclass
class Graph:
    """Tensors by name and operators in execution order; `input` and `output` name the model's tensors."""
    name: str
    tensors: dict
    ops: list
    input: str
    output: str
    source: IntModel | None = None    # the integer model it came from (its layers run the arithmetic)

    def is_view(self, op: Op) -> bool:
        """True when `op` moves no data on the device (a flatten whose HWC order already is NCHW)."""
        if op.kind != "flatten":
            return False
        shape = self.tensors[op.inputs[0]].shape
        return len(shape) == 1 or shape[0] * shape[1] == 1 or shape[2] == 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference."""
        return sum(op.macs for op in self.ops)

    def table(self) -> list[dict]:
        """One row per op (name, kind, input and output shapes, MACs): for printing with pandas."""
        return [{"op": op.name, "kind": op.kind,
                 "inputs": " + ".join(str(self.tensors[t].shape) for t in op.inputs),
                 "output": str(self.tensors[op.output].shape), "out bytes": self.tensors[op.output].nbytes,
                 "MACs": op.macs} for op in self.ops]


def device_shape(nchw_shape) -> tuple:
    """(C, H, W) -> (H, W, C); vectors (C,) stay (C,)."""
    shape = tuple(int(s) for s in nchw_shape)
    if len(shape) == 3:
        return shape[1], shape[2], shape[0]
    if len(shape) == 1:
        return shape
    raise UnsupportedOperator(f"tensor shape {shape}: the engine stores (C, H, W) feature maps and (C,) vectors")


def to_device_layout(x: np.ndarray, nchw_shape) -> np.ndarray:
    """Interpreter tensors (N, C, H, W) or (N, C) -> device bytes (N, bytes) in HWC order, int8.

    Use it to compare the interpreter's `return_all` tensors with per-layer dumps from the device.
    Integer tensors only: real values must be quantized first (a cast would truncate them silently).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"to_device_layout takes quantized integer tensors, got dtype {x.dtype}: quantize real "
                        "values first (interpreter.quantize_input, or quant.linear.quantize with the tensor's "
                        "scale and zero point)")
    if x.size and (x.min() < -128 or x.max() > 127):
        raise ValueError(f"to_device_layout: values must fit int8 [-128, 127], got [{x.min()}, {x.max()}]")
    x = x.reshape(-1, *nchw_shape)
    if len(nchw_shape) == 3:
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x.reshape(len(x), -1)).astype(np.int8)


def from_device_layout(data: np.ndarray, nchw_shape) -> np.ndarray:
    """Device bytes (N, bytes) in HWC order -> (N, C, H, W) (or (N, C)) int8: the inverse of `to_device_layout`."""
    data = np.asarray(data, dtype=np.int8)
    if len(nchw_shape) == 3:
        c, h, w = nchw_shape
        return data.reshape(-1, h, w, c).transpose(0, 3, 1, 2).copy()
    return data.reshape(-1, *nchw_shape).copy()


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _expect_shape(op: Op, got: tuple, expected: tuple) -> None:
    if tuple(got) != tuple(expected):
        raise ValueError(f"op {op.name} ({op.kind}): the model says its output has shape {tuple(got)} (NCHW), "
                         f"but its inputs and attributes give {tuple(expected)}")


def _lift_conv2d(model: IntModel, layer, op: Op, in_shape: tuple, out_shape: tuple) -> Op:
    if len(in_shape) != 3:
        raise UnsupportedOperator(f"layer {layer.name}: conv2d needs a (C, H, W) input, got {in_shape}")
    c_in, h, w = in_shape
    weight = layer.arrays["weight"]                       # (C_out, C_in/groups, kH, kW)
    c_out, c_in_g, kh, kw = weight.shape
    groups = int(layer.attrs["groups"])
    (sh, sw), (ph, pw) = layer.attrs["stride"], layer.attrs["padding"]
    if c_in_g * groups != c_in or c_out % groups:
        raise ValueError(f"op {op.name}: weight {weight.shape} does not fit {c_in} input channels in {groups} groups")
    ho, wo = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
    if ho < 1 or wo < 1:
        raise ValueError(f"op {op.name}: a {kh}x{kw} kernel with padding {(ph, pw)} does not fit a {h}x{w} input")
    op.attrs = {"kernel": (int(kh), int(kw)), "stride": (int(sh), int(sw)), "padding": (int(ph), int(pw)),
                "groups": groups, "act_min": int(layer.attrs["act_min"]), "act_max": int(layer.attrs["act_max"])}
    if groups == c_in == c_out and groups > 1:
        op.kind = "depthwise"
    elif (kh, kw, sh, sw, ph, pw, groups) == (1, 1, 1, 1, 0, 0, 1):
        op.kind = "pointwise"
    op.macs = macs.per_output_of(layer) * int(ho * wo * c_out)
    _expect_shape(op, out_shape, (c_out, ho, wo))
    return op


def _lift_linear(model: IntModel, layer, op: Op, in_shape: tuple, out_shape: tuple) -> Op:
    if len(in_shape) != 1:
        raise UnsupportedOperator(f"layer {layer.name}: linear needs a (C,) input (flatten first), got {in_shape}")
    c_out, c_in = layer.arrays["weight"].shape
    _expect_shape(op, out_shape, (c_out,))
    if c_in != in_shape[0]:
        raise ValueError(f"op {op.name}: weight {layer.arrays['weight'].shape} does not take {in_shape[0]} inputs")
    op.attrs = {"act_min": int(layer.attrs["act_min"]), "act_max": int(layer.attrs["act_max"])}
    op.macs = macs.per_output_of(layer) * int(c_out)
    return op


def _lift_pool(model: IntModel, layer, op: Op, in_shape: tuple, out_shape: tuple) -> Op:
    (kh, kw), (sh, sw) = layer.attrs["kernel"], layer.attrs["stride"]
    op.attrs = {"kernel": (int(kh), int(kw)), "stride": (int(sh), int(sw))}
    _expect_shape(op, out_shape, (in_shape[0], _out_size(in_shape[1], kh, sh, 0), _out_size(in_shape[2], kw, sw, 0)))
    a, b = model.tensor(layer.inputs[0]), model.tensor(layer.output)
    if (a.scale, a.zero_point) != (b.scale, b.zero_point):
        raise UnsupportedOperator(f"layer {layer.name}: {layer.op} must keep its input's scale and zero point "
                                  "(the specification does not requantize in pooling)")
    return op


def _lift_add(model: IntModel, layer, op: Op, in_shape: tuple, out_shape: tuple) -> Op:
    if not 0 <= int(layer.attrs["left_shift"]) <= 22:
        raise UnsupportedOperator(f"layer {layer.name}: add needs 0 <= left_shift <= 22 so that "
                                  "(x - z) << left_shift fits int32")
    if len(layer.inputs) != 2 or model.tensor(layer.inputs[1]).shape != in_shape or out_shape != in_shape:
        raise UnsupportedOperator(f"layer {layer.name}: add needs two inputs and an output of one shape "
                                  "(no broadcasting)")
    op.attrs = {k: int(v) for k, v in layer.attrs.items()}
    return op


def _lift_flatten(model: IntModel, layer, op: Op, in_shape: tuple, out_shape: tuple) -> Op:
    _expect_shape(op, out_shape, (int(np.prod(in_shape)),))
    return op


# IntModel op -> (engine kind before refinement, the function that checks the layer and fills the Op)
_LIFTS = {"conv2d": ("conv2d", _lift_conv2d), "linear": ("fully_connected", _lift_linear),
          "avgpool": ("avgpool", _lift_pool), "maxpool": ("maxpool", _lift_pool), "add": ("add", _lift_add),
          "flatten": ("flatten", _lift_flatten)}


def _shape_error(model: IntModel, name: str, shape: tuple) -> str:
    """Why a tensor of `shape` has no device layout, and, for the model's input, how to give it one."""
    message = f"tensor {name!r} has shape {shape}: the engine stores (C, H, W) feature maps and (C,) vectors"
    if name == model.input and len(shape) == 2:
        message = (f"the model's input {name!r} has shape {shape}, without a channel axis: the engine stores "
                   f"(C, H, W) feature maps and (C,) vectors. Convert the model with calibration data of shape "
                   f"(N, 1, {shape[0]}, {shape[1]}), e.g. convert(model, X[:, None]) for X of shape "
                   f"(N, {shape[0]}, {shape[1]}) (a model that begins with nn.Flatten, like models.DNN, "
                   "takes it unchanged), and give it inputs of that shape")
    return message


def from_intmodel(model: IntModel) -> Graph:
    """Lift an `IntModel` to the engine's graph (device shapes, operator kinds, MACs); checks everything."""
    for layer in model.layers:        # before validate(), whose message knows only the specification
        if layer.op not in _LIFTS:
            raise UnsupportedOperator(f"layer {layer.name}: the engine has no kernel for op {layer.op!r}. "
                                      f"Supported: {SUPPORTED}")
    model.validate()
    for name, t in model.tensors.items():
        if len(t.shape) not in (1, 3):
            raise UnsupportedOperator(_shape_error(model, name, tuple(t.shape)))
    tensors = {name: Tensor(name, device_shape(t.shape), float(t.scale), int(t.zero_point), tuple(t.shape))
               for name, t in model.tensors.items()}
    ops = []
    for layer in model.layers:
        kind, lift = _LIFTS[layer.op]
        op = Op(kind, layer.name, list(layer.inputs), layer.output, dict(layer.attrs),
                {k: np.asarray(v) for k, v in layer.arrays.items() if k in ("weight", "bias", "multiplier", "shift")})
        if "multiplier" in op.arrays and (op.arrays["multiplier"] < 0).any():
            raise ValueError(f"op {op.name}: requantization multipliers must be >= 0")
        ops.append(lift(model, layer, op, model.tensor(layer.inputs[0]).shape, model.tensor(layer.output).shape))
    if not ops:
        raise ValueError("the model has no layers")
    return Graph(model.meta.get("name", "model"), tensors, ops, model.input, model.output, model)
