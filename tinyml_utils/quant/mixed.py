"""Mixed precision: per-layer sensitivity to fewer weight bits, and a greedy bit-width assignment.

Not every layer suffers equally from coarse weights: a layer with few weights per output (a
depthwise 3x3 filter) or one that sets the scale of everything after it (the first convolution)
may need 8 bits, while the large pointwise layers may be fine at 4. The sensitivity of layer l at
b bits is measured with only l at b-bit weights (all others 8, int8 activations, the fake-quant
model): the mean KL divergence of the model's output distribution from the all-8-bit model's
(never negative and, unlike the loss or accuracy on a small set, not drowned by noise), with the
loss and accuracy beside it. A greedy search then lowers, one step at a time, the layer whose next
step costs the least divergence per byte saved, while the summed cost stays within a budget
(sensitivities are assumed to add up, which the chapter checks).

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
def _logits(model: nn.Module, X: np.ndarray, batch_size: int = 1024) -> torch.Tensor:
    model.eval()
    return torch.cat([model(torch.from_numpy(X[i:i + batch_size])) for i in range(0, len(X), batch_size)])


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, reference_logits: torch.Tensor | None = None) -> dict:
    """{"loss": cross-entropy, "accuracy": fraction, "kl": mean KL(reference || model) in nats (if a reference is given)}."""
    logits = _logits(model, X)
    target = torch.from_numpy(np.asarray(y))
    out = {"loss": float(nn.functional.cross_entropy(logits, target)),
           "accuracy": float((logits.argmax(1) == target).float().mean())}
    if reference_logits is not None:
        log_p, log_q = reference_logits.log_softmax(1), logits.log_softmax(1)
        out["kl"] = float((log_p.exp() * (log_p - log_q)).sum(1).mean())
    return out


def layer_sensitivity(model: nn.Module, calibration: np.ndarray, X: np.ndarray, y: np.ndarray,
                      bits=(4, 2), progress: bool = True) -> dict:
    """How much each layer suffers alone at fewer weight bits (the rest at 8, activations int8).

    Returns {"reference": evaluate(all 8 bits), (layer, b): evaluate(layer at b bits) with "kl",
    the mean KL divergence of its output distribution from the reference's (nats, >= 0)}.
    """
    from tqdm.auto import tqdm

    from ..config import CI

    ranges = FakeQuantModel(model).calibrate(calibration).ranges()   # one calibration, shared
    reference = FakeQuantModel(model).calibrate(calibration, ranges)
    ref_logits = _logits(reference, X)
    result = {"reference": evaluate(reference, X, y)}
    for layer, b in tqdm([(l, b) for l in reference.weight_layers for b in bits], desc="sensitivity",
                         disable=not progress or CI):
        fq = FakeQuantModel(model, weight_bits={layer: b}).calibrate(calibration, ranges)
        result[(layer, b)] = evaluate(fq, X, y, ref_logits)
    return result


def assign_bits(sensitivity: dict, counts: dict, budget: float, choices=(8, 4, 2), metric: str = "kl") -> dict:
    """Greedy mixed precision: {layer: bits}, lowering layers while the summed cost stays <= budget.

    `sensitivity` is what `layer_sensitivity` returned (every (layer, b) for b in `choices` below 8);
    the cost of a layer at b bits is its `metric` ("kl", or "loss" minus the reference loss,
    negative values counted as 0). `counts` gives the weights per layer. Each step takes the
    cheapest move, the least extra cost per byte saved, among layers that can go one choice lower.
    """
    choices = sorted(choices, reverse=True)
    for layer in counts:
        for b in choices[1:]:
            if (layer, b) not in sensitivity:
                raise ValueError(f"sensitivity has no entry for layer {layer!r} at {b} bits; "
                                 f"run layer_sensitivity with bits={tuple(choices[1:])}")

    def cost(layer, b):
        if b == choices[0]:
            return 0.0
        value = sensitivity[(layer, b)][metric] - sensitivity["reference"].get(metric, 0.0)
        return max(value, 0.0)

    bits = {layer: choices[0] for layer in counts}
    spent = 0.0
    while True:
        moves = []
        for layer, b in bits.items():
            lower = [c for c in choices if c < b]
            if lower:
                extra = max(cost(layer, lower[0]) - cost(layer, b), 0.0)
                saved = counts[layer] * (b - lower[0]) / 8
                moves.append((extra / saved, extra, layer, lower[0]))
        moves = [m for m in moves if spent + m[1] <= budget]
        if not moves:
            return bits
        _, extra, layer, nxt = min(moves)
        bits[layer] = nxt
        spent += extra
