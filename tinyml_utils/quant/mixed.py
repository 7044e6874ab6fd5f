"""Mixed precision: per-layer sensitivity to fewer weight bits, and a greedy bit-width assignment.

Not every layer suffers equally from coarse weights: a layer with few weights per output (a
depthwise 3x3 filter) or one that sets the scale of everything after it (the first convolution)
may need 8 bits, while the large pointwise layers may be fine at 4. The sensitivity of layer l at
b bits is the increase of the validation loss when only l has b-bit weights (all others 8, int8
activations; measured with the fake-quant model). A greedy search then lowers, one step at a time,
the layer whose next step costs the least loss per byte saved, while the summed loss increase stays
within a budget (sensitivities are assumed to add up, which the chapter checks).

Sizes count what the device stores (`model_bytes`): weights packed at their bit width, plus the
int32 bias, multiplier and shift of every output channel.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .fakequant import FakeQuantModel


def weight_counts(model: nn.Module) -> dict:
    """{layer name: number of weights} of the Conv2d/Linear layers, in order."""
    return {name: m.weight.numel() for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def model_bytes(int_model) -> int:
    """Bytes the device stores for an `IntModel`: weights packed at their bit width (8 unless the layer's
    `weight_bits` attribute says less, each layer rounded up to whole bytes), biases, multipliers and shifts."""
    total = 0
    for layer in int_model.layers:
        if "weight" in layer.arrays:
            bits = int(layer.attrs.get("weight_bits", 8))
            total += math.ceil(layer.arrays["weight"].size * bits / 8)
        total += sum(layer.arrays[k].nbytes for k in ("bias", "multiplier", "shift") if k in layer.arrays)
    return int(total)


def float_model_bytes(model: nn.Module) -> int:
    """Bytes of a float32 model after batch-norm folding: every Conv2d/Linear weight plus one bias per output."""
    return int(sum(4 * (m.weight.numel() + m.weight.shape[0]) for m in model.modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear))))


@torch.no_grad()
def _loss_and_accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> tuple[float, float]:
    model.eval()
    logits = torch.cat([model(torch.from_numpy(X[i:i + batch_size])) for i in range(0, len(X), batch_size)])
    target = torch.from_numpy(y)
    return float(nn.functional.cross_entropy(logits, target)), float((logits.argmax(1) == target).float().mean())


def layer_sensitivity(model: nn.Module, calibration: np.ndarray, X: np.ndarray, y: np.ndarray,
                      bits=(4, 2), progress: bool = True) -> dict:
    """Loss and accuracy with one layer at b bits (others 8) for every layer and b in `bits`.

    Returns {"reference": (loss, acc) at 8 bits everywhere, (layer, b): (loss, acc), ...}.
    """
    from tqdm.auto import tqdm

    from ..config import CI

    ranges = FakeQuantModel(model).calibrate(calibration).ranges()   # one calibration, shared
    layers = list(FakeQuantModel(model).weight_layers)
    result = {"reference": _loss_and_accuracy(FakeQuantModel(model).calibrate(calibration, ranges), X, y)}
    for layer, b in tqdm([(l, b) for l in layers for b in bits], desc="sensitivity", disable=not progress or CI):
        fq = FakeQuantModel(model, weight_bits={layer: b}).calibrate(calibration, ranges)
        result[(layer, b)] = _loss_and_accuracy(fq, X, y)
    return result


def assign_bits(sensitivity: dict, counts: dict, loss_budget: float, choices=(8, 4, 2)) -> dict:
    """Greedy mixed precision: {layer: bits} lowering layers while the summed loss increase <= loss_budget.

    `sensitivity` is what `layer_sensitivity` returned (it must contain every (layer, b) for b in
    `choices` below 8); `counts` the weights per layer. Each step takes the cheapest move, the one
    with the least loss increase per byte saved, among layers that can go one choice lower.
    """
    choices = sorted(choices, reverse=True)
    ref_loss = sensitivity["reference"][0]
    cost = lambda layer, b: max(sensitivity[(layer, b)][0] - ref_loss, 0.0)  # noqa: E731 (noise can be < 0)
    for layer in counts:
        for b in choices[1:]:
            if (layer, b) not in sensitivity:
                raise ValueError(f"sensitivity has no entry for layer {layer!r} at {b} bits; "
                                 f"run layer_sensitivity with bits={tuple(choices[1:])}")
    bits = {layer: choices[0] for layer in counts}
    spent = 0.0
    while True:
        moves = []
        for layer, b in bits.items():
            lower = [c for c in choices if c < b]
            if lower:
                nxt = lower[0]
                extra = cost(layer, nxt) - cost(layer, b) if b != choices[0] else cost(layer, nxt)
                saved = counts[layer] * (b - nxt) / 8
                moves.append((max(extra, 0.0) / saved, extra, layer, nxt))
        moves = [m for m in moves if spent + max(m[1], 0.0) <= loss_budget]
        if not moves:
            return bits
        _, extra, layer, nxt = min(moves)
        bits[layer] = nxt
        spent += max(extra, 0.0)
