"""Choosing the clipping range of a linear quantizer: min/max, percentile, or least squared error.

A b-bit quantizer with range [lo, hi] has step `scale = (hi - lo) / (2^b - 1)`. Values outside the
range are clipped (clipping error), values inside are rounded to the grid (rounding error, at most
scale / 2). A wide range (min/max) has no clipping but a coarse grid; a narrow one a fine grid
but clipped outliers. Three rules pick the range:

* ``minmax``: [min x, max x]. Never clips; an outlier coarsens the grid for everyone.
* ``percentile``: the p-th and (100 - p)-th percentiles (e.g. p = 99.99): ignore rare outliers.
* ``mse``: the shrink factor alpha in (0, 1] of the min/max range that minimises the mean squared
  error between x and its quantize-dequantize, found by a grid search over alpha.

Activation ranges are asymmetric (int8 with a zero point); weight ranges symmetric per channel.
`calibrate_ranges` applies a rule to every tensor of a model, giving the `ranges=` of `convert`.
"""
from __future__ import annotations

import numpy as np
import torch

from .linear import asymmetric_qparams, dequantize, quantize

METHODS = ("minmax", "percentile", "mse")


def _qrange(bits: int, signed: bool = True) -> tuple[int, int]:
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be between 2 and 16, got {bits}")
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def fake_quantize_range(x, lo: float, hi: float, bits: int = 8) -> np.ndarray:
    """Quantize-dequantize x (any shape) with the asymmetric b-bit grid spanning [lo, hi] (float32)."""
    qmin, qmax = _qrange(bits)
    scale, zero_point = asymmetric_qparams(lo, hi, qmin, qmax)
    return dequantize(quantize(x, scale, zero_point, qmin, qmax), scale, zero_point)


def sqnr_db(x, x_hat) -> float:
    """Signal-to-quantization-noise ratio 10 log10(sum x^2 / sum (x - x_hat)^2), in dB."""
    x = np.asarray(x, dtype=np.float64)
    noise = np.sum((x - np.asarray(x_hat, dtype=np.float64)) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(x**2) / noise))


def minmax_range(x) -> tuple[float, float]:
    """[min, max] of x."""
    x = np.asarray(x)
    return float(x.min()), float(x.max())


def percentile_range(x, percentile: float = 99.99) -> tuple[float, float]:
    """The (100 - p)-th and p-th percentiles of x, e.g. p = 99.99 drops the 0.01 % tails."""
    if not 50 < percentile <= 100:
        raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    x = np.asarray(x, dtype=np.float64).ravel()
    return float(np.percentile(x, 100 - percentile)), float(np.percentile(x, percentile))


def mse_range(x, bits: int = 8, num_candidates: int = 100, return_curve: bool = False):
    """The range alpha * [min, max] (alpha in (0, 1]) with the least quantization MSE on x.

    Returns (lo, hi), or with `return_curve` also (alphas (K,), mse (K,)) for plotting.
    """
    x = np.asarray(x, dtype=np.float32).ravel()
    lo, hi = minmax_range(x)
    alphas = np.linspace(1.0 / num_candidates, 1.0, num_candidates)
    mse = np.array([np.mean((fake_quantize_range(x, a * lo, a * hi, bits) - x) ** 2, dtype=np.float64)
                    for a in alphas])
    best = alphas[int(np.argmin(mse))]  # the first (smallest) alpha on ties
    result = (float(best * lo), float(best * hi))
    return (result, (alphas, mse)) if return_curve else result


def symmetric_mse_scales(weight, bits: int = 8, axis: int = 0, num_candidates: int = 100) -> np.ndarray:
    """Per-channel symmetric scales alpha_c * max|w_c| / qmax minimising each channel's MSE, float32 (C,).

    The symmetric weight grid is [-qmax, qmax] with qmax = 2^(b-1) - 1 (as `linear.quantize_weights`).
    An all-zero channel gets scale 1.
    """
    qmax = 2 ** (bits - 1) - 1
    w = np.moveaxis(np.asarray(weight, dtype=np.float32), axis, 0)
    w = w.reshape(w.shape[0], 1, -1)                                     # (C, 1, n)
    max_abs = np.abs(w).max(axis=2)                                      # (C, 1)
    alphas = np.linspace(1.0 / num_candidates, 1.0, num_candidates, dtype=np.float32)[None, :]  # (1, K)
    scales = np.where(max_abs > 0, alphas * max_abs / np.float32(qmax), np.float32(1)).astype(np.float32)  # (C, K)
    inv = (np.float32(1) / scales)[..., None]
    w_hat = np.clip(np.rint(w * inv), -qmax, qmax) * scales[..., None]   # (C, K, n)
    mse = ((w_hat - w) ** 2).mean(axis=2)                                # (C, K)
    return scales[np.arange(len(scales)), mse.argmin(axis=1)].astype(np.float32)


def choose_range(x, method: str = "minmax", bits: int = 8, percentile: float = 99.99) -> tuple[float, float]:
    """The clipping range of x by `method` ('minmax', 'percentile' or 'mse')."""
    if method == "minmax":
        return minmax_range(x)
    if method == "percentile":
        return percentile_range(x, percentile)
    if method == "mse":
        return mse_range(x, bits)
    raise ValueError(f"unknown range method {method!r}; choose one of {METHODS}")


@torch.no_grad()
def collect_activations(model, calibration: np.ndarray, max_samples: int = 200_000, seed: int = 0,
                        batch_size: int = 256, names=None) -> dict:
    """Every fx node's output on the calibration inputs, BN folded: {node name: (min, max, sample (<= max_samples,))}.

    The min and max are over all values; the sample (uniform, seeded) feeds percentile and MSE.
    `names` keeps only those nodes (e.g. the tensors `convert` quantizes).
    """
    from .convert import _Recorder, check_calibration, trace_and_fold  # the converter's tracing, so node names agree

    check_calibration(calibration)
    gm = trace_and_fold(model)
    gen = torch.Generator().manual_seed(seed)
    stats: dict[str, list] = {}
    batches = range(0, len(calibration), batch_size)
    for start in batches:
        rec = _Recorder(gm)
        rec.seen = {}
        rec.run(torch.as_tensor(calibration[start:start + batch_size], dtype=torch.float32))
        for name, value in rec.seen.items():
            if names is not None and name not in names:
                continue
            v = value.flatten()
            keep = max(1, max_samples // len(batches))
            entry = stats.setdefault(name, [np.inf, -np.inf, []])
            entry[0], entry[1] = min(entry[0], float(v.min())), max(entry[1], float(v.max()))
            entry[2].append(v[torch.randperm(len(v), generator=gen)[:keep]].numpy())
    return {name: (lo, hi, np.concatenate(samples)) for name, (lo, hi, samples) in stats.items()}


def calibrate_ranges(model, calibration: np.ndarray, method: str = "minmax", bits: int = 8,
                     percentile: float = 99.99, max_samples: int = 200_000, names=None) -> dict:
    """Ranges {fx node name: (lo, hi)} of every tensor of `model` by `method`, for `convert(ranges=...)`.

    `minmax` uses the exact extremes; `percentile` and `mse` work on a seeded sample of each tensor.
    `names` restricts the work to those nodes (e.g. `FakeQuantModel(model).points`).
    """
    if method not in METHODS:
        raise ValueError(f"unknown range method {method!r}; choose one of {METHODS}")
    ranges = {}
    for name, (lo, hi, sample) in collect_activations(model, calibration, max_samples, names=names).items():
        if method == "minmax":
            ranges[name] = (lo, hi)
        elif method == "percentile":
            ranges[name] = percentile_range(sample, percentile)
        else:
            a_lo, a_hi = mse_range(sample, bits)
            ranges[name] = (a_lo, a_hi)
    return ranges
