"""Deciding how much to prune: per-layer sensitivity scans and gradual pruning with fine-tuning."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..config import CI
from ..train import accuracy, fit
from .magnitude import MaskKeeper, apply_masks, global_masks, layer_masks, magnitude_mask, prunable_weights, sparsity


@torch.no_grad()
def sensitivity_scan(model: nn.Module, X: np.ndarray, y: np.ndarray, sparsities, names=None,
                     progress: bool = True):
    """Accuracy on (X, y) when one layer alone is magnitude-pruned to each of `sparsities`.

    Returns a pandas DataFrame: one row per weight name, one column per sparsity. The model is
    left as it was.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    weights = prunable_weights(model)
    names = list(weights) if names is None else list(names)
    table = {}
    for name in tqdm(names, desc="sensitivity scan", disable=not progress or CI):
        original = weights[name].detach().clone()
        row = []
        for s in sparsities:
            weights[name].mul_(magnitude_mask(original, s))
            row.append(accuracy(model, X, y))
            weights[name].copy_(original)
        table[name] = row
    return pd.DataFrame.from_dict(table, orient="index", columns=list(sparsities))


def sparsities_from_scan(scan, reference_accuracy: float, max_drop: float) -> dict[str, float]:
    """Per layer, the largest scanned sparsity whose accuracy is within `max_drop` of the reference.

    `scan` is a `sensitivity_scan` table; accuracies and `max_drop` are fractions (0.005 = 0.5 pt).
    A layer that cannot be pruned at all within the drop gets 0.0.
    """
    chosen = {}
    for name, row in scan.iterrows():
        ok = [float(s) for s, acc in row.items() if acc >= reference_accuracy - max_drop]
        chosen[name] = max(ok, default=0.0)
    return chosen


def allocate_sparsities(scan, reference_accuracy: float, model: nn.Module, target: float,
                        max_sparsity: float = 0.95) -> dict[str, float]:
    """Per-layer sparsities that reach `target` overall while losing as little as the scan predicts.

    Each layer's scan row is read as a curve, accuracy vs sparsity (linear between scanned points).
    For an allowed drop d a layer gets the largest sparsity whose curve stays above reference - d;
    bisection finds the smallest d whose overall sparsity (weighted by layer size) reaches
    `target`. Where a layer's curve is flat, its sparsity jumps as d crosses the curve, so the
    layers that jump at that d share the rest of the budget in proportion: the result hits
    `target` (to rounding), and comparisons with uniform pruning at `target` stay fair.
    Robust layers end up sparse, sensitive ones nearly dense.
    """
    grid = np.linspace(0.0, max_sparsity, 96)
    columns = np.array([float(c) for c in scan.columns])
    curves = {name: np.interp(grid, columns, row.to_numpy(float)) for name, row in scan.iterrows()}

    def allocation(drop):
        chosen = {}
        for name, acc in curves.items():
            below = np.flatnonzero(acc < reference_accuracy - drop)
            chosen[name] = float(grid[below[0] - 1]) if len(below) and below[0] > 0 else (
                0.0 if len(below) else max_sparsity)
        return chosen

    if overall_sparsity(model, allocation(1.0)) < target:
        raise ValueError(f"cannot reach {target:.0%} overall with at most {max_sparsity:.0%} per layer")
    # d may be negative: pruning a little can raise a layer's measured accuracy above the
    # reference (noise, or a mild regulariser), and at low targets d = 0 can already overshoot.
    low, high = -1.0, 1.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if overall_sparsity(model, allocation(mid)) < target else (low, mid)
    below, above = allocation(low), allocation(high)             # just under and at/over the target
    under, over = overall_sparsity(model, below), overall_sparsity(model, above)
    share = (target - under) / (over - under) if over > under else 1.0
    return {name: below[name] + share * (above[name] - below[name]) for name in above}


def overall_sparsity(model: nn.Module, per_layer: dict[str, float]) -> float:
    """Fraction of all prunable weights removed when each layer gets its own sparsity (missing: 0)."""
    weights = prunable_weights(model)
    total = sum(w.numel() for w in weights.values())
    return sum(round(per_layer.get(n, 0.0) * w.numel()) for n, w in weights.items()) / total


def cubic_schedule(final_sparsity: float, steps: int, initial_sparsity: float = 0.0) -> list[float]:
    """Sparsity after each of `steps` pruning steps, s_i = s_f + (s_0 - s_f)(1 - i/steps)^3.

    Zhu & Gupta's gradual schedule (2017): large steps while many redundant weights remain,
    small ones near the end, where each weight matters more.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return [final_sparsity + (initial_sparsity - final_sparsity) * (1 - i / steps) ** 3 for i in range(1, steps + 1)]


def masks_for(model: nn.Module, target, scheme: str = "layer") -> dict[str, torch.Tensor]:
    """Magnitude masks for `target` (a fraction, or {weight name: fraction} for scheme 'layer').

    scheme 'layer': each layer's own threshold; 'global': one threshold for all prunable weights.
    """
    if scheme == "layer":
        return layer_masks(model, target)
    if scheme == "global":
        if isinstance(target, dict):
            raise ValueError("a global threshold needs one sparsity (a float), not a per-layer dict")
        return global_masks(model, target)
    raise ValueError(f"scheme must be 'layer' or 'global', got {scheme!r}")


def fine_tune(model: nn.Module, masks: dict[str, torch.Tensor], train: tuple, val: tuple | None = None,
              epochs: int = 2, lr: float = 1e-3, seed: int = 0, **fit_kwargs) -> dict:
    """Train `model` with `train.fit` while `masks` hold the pruned weights at zero; returns fit's history."""
    with MaskKeeper(model, masks):
        return fit(model, train, val, epochs=epochs, lr=lr, seed=seed, progress=False, **fit_kwargs)


def gradual_prune(model: nn.Module, train: tuple, val: tuple, levels, epochs_per_step=1, lr: float = 1e-3,
                  scheme: str = "global", seed: int = 0, on_step=None, progress: bool = True):
    """Prune `model` in place through increasing sparsity `levels`, fine-tuning after each step.

    `levels` is a list of sparsities (e.g. from `cubic_schedule`), or of per-layer dicts for
    scheme 'layer'. Each step magnitude-prunes the current weights to its level (weights already
    at zero are the smallest, so they stay pruned), measures accuracy on `val`, then fine-tunes for
    `epochs_per_step` epochs (one number, or one per level) with the masks kept.
    `on_step(step, model, masks)` is called after each step (e.g. to keep a checkpoint). Returns (final masks, a pandas DataFrame with one row
    per step: sparsity reached, validation accuracy before and after fine-tuning).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    epochs = list(epochs_per_step) if isinstance(epochs_per_step, (list, tuple)) else [epochs_per_step] * len(levels)
    if len(epochs) != len(levels):
        raise ValueError(f"epochs_per_step has {len(epochs)} entries for {len(levels)} levels")
    rows, masks = [], {}
    for step, level in enumerate(tqdm(levels, desc="gradual pruning", disable=not progress or CI), start=1):
        masks = masks_for(model, level, scheme)
        apply_masks(model, masks)
        pruned_acc = accuracy(model, *val)
        fine_tune(model, masks, train, None, epochs=epochs[step - 1], lr=lr, seed=seed + step)
        rows.append({"step": step, "sparsity": sparsity(model), "val_acc_pruned": pruned_acc,
                     "val_acc_fine_tuned": accuracy(model, *val)})
        if on_step is not None:
            on_step(step, model, masks)
    return masks, pd.DataFrame(rows).set_index("step")


def pruned_copy(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """A deep copy of `model` with `masks` applied (the original is untouched)."""
    return apply_masks(copy.deepcopy(model), masks)
