"""Rank correlation: does an accuracy estimate order architectures the way full training does?

A search only needs the *order* of its candidates to be right, not their accuracies, so an
estimate is judged by rank correlation with the accuracies of fully trained models:

* Spearman's rho: the Pearson correlation of the ranks (ties get the average of their ranks);
* Kendall's tau-b: (concordant - discordant pairs) / sqrt((pairs - ties in x)(pairs - ties in y)).

Both are 1 for the same order, -1 for the reversed order and near 0 for unrelated orders.
"""
from __future__ import annotations

import numpy as np


def _vector(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"{name} must be a 1-D sequence of at least two numbers, got shape {v.shape}")
    return v


def ranks(values) -> np.ndarray:
    """Ranks 1..n of `values` (n,), ties sharing the mean of the ranks they span."""
    v = _vector(values, "values")
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    out = np.empty(len(v))
    start = 0
    for end in range(1, len(v) + 1):
        if end == len(v) or sorted_v[end] != sorted_v[start]:
            out[order[start:end]] = (start + 1 + end) / 2   # mean of ranks start+1 .. end
            start = end
    return out


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equally long sequences (nan if one is constant)."""
    rx, ry = ranks(x), ranks(y)
    if len(rx) != len(ry):
        raise ValueError(f"x and y must have the same length, got {len(rx)} and {len(ry)}")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def kendall_tau(x, y) -> float:
    """Kendall's tau-b of two equally long sequences (nan if one is constant)."""
    x, y = _vector(x, "x"), _vector(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    i, j = np.triu_indices(len(x), k=1)            # every pair once
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    pairs = len(i)
    denom = np.sqrt((pairs - (dx == 0).sum()) * (pairs - (dy == 0).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")
