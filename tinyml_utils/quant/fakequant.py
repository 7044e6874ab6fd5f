"""Fake quantization: a float model that rounds like the integer model, trainable with the STE.

`fake_quantize` maps x to scale * (clamp(round(x / scale) + z, qmin, qmax) - z): float in, float
out, but only grid values come out. Rounding has zero gradient almost everywhere, so training
uses the straight-through estimator (STE): the backward pass treats rounding as the identity
inside the range and passes no gradient where the value was clipped (as PyTorch's
`torch.fake_quantize_per_tensor_affine` does; the tests check both directions against it).

`FakeQuantModel` wraps a float model the way `convert` will quantize it: batch norm folded,
weights symmetric per output channel (b bits, from max|w|), biases on their int32 grid,
activations asymmetric int8 per tensor at exactly the tensors `convert` creates (model input, each
conv/linear/add output after its fused ReLU; pooling reuses its input's grid). Each activation has
a range (lo, hi) that is calibrated, then tracked during training by an exponential moving
average of the batch min/max. `to_int_model` hands the folded float weights and the ranges to
`convert`, so the integer model computes what the fake-quant model simulated, up to the
fixed-point requantization, which rounds twice (`double_rounding=True` emulates that too).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import fx, nn
from torch.nn import functional as F

from .convert import ADD_FUNCTIONS, calibrate, check_ranges, convert, trace_and_fold
from .lowering import is_relu
from .linear import INT8_MAX, INT8_MIN, asymmetric_qparams


class _FakeQuantSTE(torch.autograd.Function):
    """(clamp(round_half_even(x * inv_scale) + z, qmin, qmax) - z) * scale, with the straight-through gradient."""

    @staticmethod
    def forward(ctx, x, scale, inv_scale, zero_point, qmin, qmax):
        q = torch.round(x * inv_scale) + zero_point       # torch.round rounds half to even, like np.rint
        inside = (q >= qmin) & (q <= qmax)
        ctx.save_for_backward(inside)
        return (q.clamp(qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        # STE: rounding counts as the identity, so d out / d x = 1 inside the range and 0 where clipped.
        return grad * inside, None, None, None, None, None


def fake_quantize(x: torch.Tensor, scale, zero_point, qmin: int = INT8_MIN, qmax: int = INT8_MAX,
                  axis: int | None = None) -> torch.Tensor:
    """Quantize-dequantize x (float32) with the STE; per-channel along `axis` when scale is (C,).

    The gradient w.r.t. x is 1 where the value fell inside [qmin, qmax] and 0 where it was clipped.
    """
    scale = torch.as_tensor(scale, dtype=torch.float32)
    zero_point = torch.as_tensor(zero_point, dtype=torch.float32)
    if axis is not None:
        shape = [1] * x.dim()
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    inv_scale = 1.0 / scale                                # float32 reciprocal, as PyTorch and linear.quantize
    return _FakeQuantSTE.apply(x, scale, inv_scale, zero_point, qmin, qmax)


def weight_scales(weight: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-output-channel symmetric scales max|w_c| / (2^(b-1) - 1), float32 (C_out,), no gradient."""
    qmax = 2 ** (bits - 1) - 1
    max_abs = weight.detach().abs().reshape(len(weight), -1).amax(dim=1)
    return torch.where(max_abs > 0, max_abs / qmax, torch.ones_like(max_abs))


def fake_quantize_weight(weight: torch.Tensor, bits: int = 8, scale: torch.Tensor | None = None,
                         backend: str = "ours") -> torch.Tensor:
    """Weights fake-quantized symmetric per output channel to [-(2^(b-1)-1), 2^(b-1)-1], as `convert` stores them."""
    qmax = 2 ** (bits - 1) - 1
    scale = weight_scales(weight, bits) if scale is None else scale
    if backend == "torch":
        return torch.fake_quantize_per_channel_affine(weight, scale, torch.zeros(len(scale), dtype=torch.int32),
                                                      0, -qmax, qmax)
    return fake_quantize(weight, scale, torch.zeros_like(scale), -qmax, qmax, axis=0)


class ActFakeQuant(nn.Module):
    """Fake-quantizes an activation to int8 with range (lo, hi), tracked in training by an EMA of batch min/max."""

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.observe = True                                 # update the range in training mode
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))

    def qparams(self) -> tuple[float, int]:
        """(scale, zero_point) of the current range, computed exactly as `convert` will."""
        return asymmetric_qparams(float(self.lo), float(self.hi))

    def forward(self, x: torch.Tensor, backend: str = "ours") -> torch.Tensor:
        if self.training and self.observe:
            with torch.no_grad():
                m = self.momentum
                self.lo.mul_(1 - m).add_(m * x.min())
                self.hi.mul_(1 - m).add_(m * x.max())
        scale, zero_point = self.qparams()
        if backend == "torch":
            return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, INT8_MIN, INT8_MAX)
        return fake_quantize(x, scale, zero_point)


class FakeQuantModel(nn.Module):
    """A float model with the fake quantization `convert` implies; trainable (QAT), convertible.

    `weight_bits` is an int or {layer name: bits} (others 8); `weight_scales` {layer name: (C_out,)}
    fixes a layer's weight scales (else max|w| / qmax, recomputed as the weights train).
    `backend="torch"` rounds with PyTorch's own fake-quantize functions instead of ours (the same
    numbers; a cross-check). `double_rounding=True` (evaluation only) rounds each conv/linear output
    the way the fixed-point requantization does, first to 1/2^k of an output step (k = -shift,
    ties up) and then to the step (ties away from zero), instead of once.
    """

    def __init__(self, model: nn.Module, weight_bits: int | dict = 8, backend: str = "ours",
                 weight_scales: dict | None = None, double_rounding: bool = False):
        super().__init__()
        if backend not in ("ours", "torch"):
            raise ValueError(f"backend must be 'ours' or 'torch', got {backend!r}")
        self.float_model = trace_and_fold(model)           # BN folded: QAT trains the deployed weights
        self.backend = backend
        self.double_rounding = double_rounding
        modules = dict(self.float_model.named_modules())
        self.weight_layers = [n.target for n in self.float_model.graph.nodes
                              if n.op == "call_module" and isinstance(modules[n.target], (nn.Conv2d, nn.Linear))]
        if isinstance(weight_bits, dict):
            unknown = set(weight_bits) - set(self.weight_layers)
            if unknown:
                raise ValueError(f"weight_bits names {sorted(unknown)}, not layers of the model {self.weight_layers}")
            self.weight_bits = {name: int(weight_bits.get(name, 8)) for name in self.weight_layers}
        else:
            self.weight_bits = {name: int(weight_bits) for name in self.weight_layers}
        self.weight_scales = {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in (weight_scales or {}).items()}
        self.points, self.follow = self._quantization_points(modules)
        self.act = nn.ModuleDict({name: ActFakeQuant() for name in self.points})

    def _quantization_points(self, modules) -> tuple[list, dict]:
        """Node names whose outputs `convert` quantizes, and pooling nodes that reuse their input's grid."""
        points, follow, alias = [], {}, {}
        self.input_point, self.output_point = {}, {}         # weight layer -> activations in and out
        for node in self.float_model.graph.nodes:
            src = node.args[0].name if node.args and isinstance(node.args[0], fx.Node) else None
            mod = modules.get(node.target) if node.op == "call_module" else None
            if node.op == "placeholder":
                points.append(node.name)
                alias[node.name] = node.name
            elif isinstance(mod, (nn.Conv2d, nn.Linear)) or (node.op == "call_function" and node.target in ADD_FUNCTIONS):
                if mod is not None:
                    self.input_point[node.target] = alias[src]
                users = list(node.users)
                out = users[0].name if len(users) == 1 and is_relu(users[0], modules) else node.name
                points.append(out)
                alias[node.name] = alias[out] = out
                if mod is not None:
                    self.output_point[node.target] = out
            elif isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
                follow[node.name] = alias[src]              # averages leave the grid: round back onto it
                alias[node.name] = alias[src]
            elif src is not None and node.op != "output":
                alias.setdefault(node.name, alias.get(src))
        return points, follow

    @staticmethod
    def _fake_quantize_bias(bias, input_scale: float, w_scale: torch.Tensor):
        """The bias on its int32 grid input_scale * w_scale[c] (as `linear.quantize_bias`, in float64), STE."""
        if bias is None:
            return None
        bias_scale = float(input_scale) * w_scale.detach().double()
        b_hat = (torch.round(bias.detach().double() / bias_scale) * bias_scale).float()
        return bias + (b_hat - bias).detach()

    def _round_twice(self, out: torch.Tensor, layer: str, w_scale: torch.Tensor) -> torch.Tensor:
        """Emulate the two roundings of `multiply_by_quantized_multiplier` (float64), no gradient."""
        from .fixedpoint import quantize_multipliers

        s_in = self.act[self.input_point[layer]].qparams()[0]
        s_out, z_out = self.act[self.output_point[layer]].qparams()
        _, shift = quantize_multipliers(np.float64(s_in) * w_scale.detach().double().numpy() / s_out)
        shape = (1, -1) + (1,) * (out.dim() - 2)
        step = torch.from_numpy(2.0 ** np.maximum(-shift, 0)).reshape(shape)   # 2^k per channel
        real = out.detach().double() / s_out                                   # in output steps
        first = torch.floor(real * step + 0.5)                                 # high multiply: ties up
        second = torch.sign(first) * torch.floor(first.abs() / step + 0.5)     # shift: ties away from 0
        emulated = (second.clamp(INT8_MIN - z_out, INT8_MAX - z_out) * s_out).float()
        return out + (emulated - out).detach()

    @torch.no_grad()
    def calibrate(self, calibration: np.ndarray, ranges: dict | None = None) -> "FakeQuantModel":
        """Set every activation range from calibration inputs (min/max, as `convert`), or from `ranges`."""
        found = calibrate(self.float_model, calibration)
        found.update(ranges or {})
        check_ranges(found)
        for name in self.points:
            self.act[name].lo.fill_(found[name][0])
            self.act[name].hi.fill_(found[name][1])
        return self

    def ranges(self) -> dict:
        """{node name: (lo, hi)} of every quantized activation, for `convert(ranges=...)`."""
        return {name: (float(q.lo), float(q.hi)) for name, q in self.act.items()}

    def set_observers(self, observe: bool) -> None:
        """Freeze (False) or resume (True) range tracking during training."""
        for q in self.act.values():
            q.observe = observe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gm, modules = self.float_model, dict(self.float_model.named_modules())
        values = {}
        for node in gm.graph.nodes:
            args = fx.node.map_arg(node.args, lambda n: values[n.name])
            if node.op == "placeholder":
                out = x
            elif node.op == "output":
                return args[0]
            elif node.op == "call_module" and isinstance(modules[node.target], (nn.Conv2d, nn.Linear)):
                mod = modules[node.target]
                w_scale = self.weight_scales.get(node.target)
                if w_scale is None:
                    w_scale = weight_scales(mod.weight, self.weight_bits[node.target])
                w = fake_quantize_weight(mod.weight, self.weight_bits[node.target], w_scale, self.backend)
                b = self._fake_quantize_bias(mod.bias, self.act[self.input_point[node.target]].qparams()[0], w_scale)
                if isinstance(mod, nn.Conv2d):
                    out = F.conv2d(args[0], w, b, mod.stride, mod.padding, mod.dilation, mod.groups)
                else:
                    out = F.linear(args[0], w, b)
                if self.double_rounding:
                    out = self._round_twice(out, node.target, w_scale)
            elif node.op == "call_module":
                out = modules[node.target](*args)
            elif node.op == "call_function":
                out = node.target(*args, **fx.node.map_arg(node.kwargs, lambda n: values[n.name]))
            elif node.op == "call_method":
                out = getattr(args[0], node.target)(*args[1:])
            else:
                raise ValueError(f"FakeQuantModel cannot run fx node {node.op} {node.target}")
            if node.name in self.act:
                out = self.act[node.name](out, self.backend)
            elif node.name in self.follow:
                scale, zero_point = self.act[self.follow[node.name]].qparams()
                out = fake_quantize(out, scale, zero_point)
            values[node.name] = out
        raise ValueError("the traced graph has no output node")

    def to_int_model(self, example_input: np.ndarray, name: str = "model"):
        """The `IntModel` of the current weights and ranges: `convert(..., ranges=self.ranges())`.

        `example_input` (N >= 1, *input shape) only gives the shapes: every range comes from this model.
        """
        scales = {k: v.numpy() for k, v in self.weight_scales.items()}
        return convert(self.float_model, np.asarray(example_input)[:1], ranges=self.ranges(), name=name,
                       weight_bits=self.weight_bits, weight_scales=scales)
