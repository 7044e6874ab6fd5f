"""Float PyTorch model + calibration data -> `IntModel` (post-training int8 quantization).

Steps: trace the model with `torch.fx`; fold every batch norm into the convolution or linear
layer before it; fuse ReLU/ReLU6 into the layer before it (a clamp on its output); run the
calibration data through the folded float model and record each tensor's range; then quantize:
activations int8 asymmetric per tensor, weights int8 symmetric per output channel in [-127, 127],
biases int32 with scale s_in * s_w[c], requantization multipliers as (M0, shift) pairs.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import fx, nn

from ..models import AddChannel
from .intmodel import IntModel
from .lowering import ADD_FUNCTIONS, SUPPORTED, Lowering, UnsupportedOperator

__all__ = ["ADD_FUNCTIONS", "SUPPORTED", "UnsupportedOperator", "calibrate", "check_calibration",
           "check_ranges", "convert", "fold_batchnorm", "trace_and_fold"]


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m, qualname):  # AddChannel branches on x.dim(): keep it opaque
        return isinstance(m, AddChannel) or super().is_leaf_module(m, qualname)


def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None, bn) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of a conv/linear followed by batch norm, as one layer (eval-mode BN).

    BN computes gamma * (y - mean) / sqrt(var + eps) + beta, an affine map per output channel,
    so w' = w * gamma / sqrt(var + eps) and b' = (b - mean) * gamma / sqrt(var + eps) + beta.
    """
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)                   # (C_out,)
    bias = torch.zeros_like(bn.running_mean) if bias is None else bias
    w = weight * factor.reshape(-1, *([1] * (weight.dim() - 1)))
    return w.detach(), ((bias - bn.running_mean) * factor + bn.bias).detach()


def trace_and_fold(model: nn.Module) -> fx.GraphModule:
    """A `torch.fx` copy of `model` (eval mode) with every foldable batch norm folded away."""
    model = copy.deepcopy(model).eval()
    gm = fx.GraphModule(model, _Tracer().trace(model))
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], (nn.BatchNorm1d, nn.BatchNorm2d)):
            continue
        prev = node.args[0]
        if not (prev.op == "call_module" and isinstance(modules[prev.target], (nn.Conv2d, nn.Linear))
                and len(prev.users) == 1):
            raise UnsupportedOperator(f"batch norm {node.target!r} does not directly follow a Conv2d/Linear "
                                      f"used only by it, so it cannot be folded. Supported: {SUPPORTED}")
        layer = modules[prev.target]
        w, b = fold_batchnorm(layer.weight, layer.bias, modules[node.target])
        layer.weight = nn.Parameter(w)
        layer.bias = nn.Parameter(b)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


class _Recorder(fx.Interpreter):
    """Runs the folded model and keeps every node's output (for calibration ranges)."""

    def run_node(self, n):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.seen[n.name] = out.detach()
        return out


def check_calibration(calibration) -> None:
    """Refuse calibration inputs that cannot give ranges: empty, or holding NaN or infinity.

    Either would quantize silently to nonsense (a NaN min/max gives a NaN scale, no data gives no
    range at all), so the error names the array and how to find the bad clips.
    """
    x = np.asarray(calibration.detach().cpu() if isinstance(calibration, torch.Tensor) else calibration)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"the calibration array is empty (shape {x.shape}): ranges are measured on real "
                         "inputs, pass some, e.g. deployed.calibration_clips(X_train)")
    nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    if nan or inf:
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        raise ValueError(f"the calibration array {x.shape} holds {nan} NaN and {inf} infinite values, in "
                         f"{len(bad)} of its {len(x)} inputs (first: index {bad[0]}). Quantization ranges need "
                         "finite inputs: fix or drop those inputs (np.isfinite(calibration) finds them).")


def check_ranges(ranges: dict) -> None:
    """Refuse a non-finite (lo, hi) range: the model itself produced NaN/inf, or `ranges=` held one."""
    for name, (lo, hi) in ranges.items():
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"tensor {name!r}: its calibration range ({lo}, {hi}) is not finite, so it has no "
                             "int8 scale. The calibration inputs are finite, so the model (its weights) or "
                             "the given ranges= produce NaN or infinity there.")


@torch.no_grad()
def calibrate(gm: fx.GraphModule, calibration: np.ndarray, batch_size: int = 256,
              percentile: float | None = None) -> dict:
    """Range (min, max) of every node's output over the calibration inputs, by node name.

    `percentile` (e.g. 99.99) clips each range to that percentile of |values| instead of min/max.
    """
    check_calibration(calibration)
    stats: dict[str, list] = {}
    for start in range(0, len(calibration), batch_size):
        rec = _Recorder(gm)
        rec.seen = {}
        x = torch.as_tensor(calibration[start:start + batch_size], dtype=torch.float32)
        rec.run(x)
        for name, value in rec.seen.items():
            v = value.flatten()
            entry = stats.setdefault(name, [np.inf, -np.inf, []])
            entry[0], entry[1] = min(entry[0], float(v.min())), max(entry[1], float(v.max()))
            if percentile is not None:
                entry[2].append(v[torch.randperm(len(v), generator=torch.Generator().manual_seed(start))[:20000]].numpy())
    ranges = {}
    for name, (lo, hi, samples) in stats.items():
        if percentile is not None:
            values = np.concatenate(samples)
            lo, hi = max(lo, float(np.percentile(values, 100 - percentile))), min(hi, float(np.percentile(values, percentile)))
        ranges[name] = (lo, hi)
    return ranges


def convert(model: nn.Module, calibration: np.ndarray, ranges: dict | None = None,
            percentile: float | None = None, name: str = "model", weight_bits: int | dict = 8,
            weight_scales: dict | None = None) -> IntModel:
    """Quantize a trained float model to an `IntModel` using calibration inputs (N, *input shape).

    `ranges` overrides calibrated (min, max) per fx node name (e.g. ranges learned by QAT).
    `weight_bits` (2..8; an int, or {layer name: bits} with 8 for layers not named) stores a layer's
    weights in [-(2^(b-1)-1), 2^(b-1)-1] inside the int8 arrays and records `weight_bits` in the
    attributes of layers below 8 bits. `weight_scales` ({layer name: (C_out,) float32}) replaces
    the max|w| / qmax scales of the named layers (e.g. MSE-clipped scales from `ranges`).
    """
    gm = trace_and_fold(model)
    modules = dict(gm.named_modules())
    weight_names = [n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
    bits_of = _weight_bits_by_layer(weight_bits, weight_names)
    for layer_name in weight_scales or {}:
        if layer_name not in weight_names:
            raise ValueError(f"weight_scales names {layer_name!r}, not a Conv2d/Linear of the model {weight_names}")
    found = calibrate(gm, calibration, percentile=percentile)
    found.update(ranges or {})
    check_ranges(found)
    with torch.no_grad():
        shapes = {n: tuple(v.shape[1:]) for n, v in _record_all(gm, calibration[:1]).items()}
    lowering = Lowering(modules, found, shapes, bits_of, weight_scales or {})
    for node in gm.graph.nodes:
        lowering.visit(node)
    int_model = IntModel(lowering.tensors, lowering.layers, lowering.input_name, lowering.output_name,
                         {"name": name})
    int_model.validate()
    return int_model


def _record_all(gm, x) -> dict:
    rec = _Recorder(gm)
    rec.seen = {}
    rec.run(torch.as_tensor(x, dtype=torch.float32))
    return rec.seen


def _weight_bits_by_layer(weight_bits, names) -> dict:
    """{layer name: bits} from an int or a partial dict; bad names or widths are errors."""
    if isinstance(weight_bits, dict):
        unknown = set(weight_bits) - set(names)
        if unknown:
            raise ValueError(f"weight_bits names {sorted(unknown)}, not Conv2d/Linear layers of the model {names}")
        bits = {n: int(weight_bits.get(n, 8)) for n in names}
    else:
        bits = {n: int(weight_bits) for n in names}
    bad = {n: b for n, b in bits.items() if not 2 <= b <= 8}
    if bad:
        raise ValueError(f"weight bits must be 2..8 (stored in int8 arrays), got {bad}")
    return bits
