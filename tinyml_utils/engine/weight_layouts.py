"""The orders in which kernels read a layer's weights, and the folded bias of the matrix kernels.

A kernel's spec names its layout (`KernelSpec.weights`); `weight_array` writes the op's weights in
it. Layouts:

* ``"ohwi"`` / ``"rows"``: (C_out, K) rows, K = kH * kW * C_in/groups in HWC order (tm_ref.c);
* ``"dw"``: depthwise (C, kH, kW);
* ``"pairs"``: rows interleaved in channel pairs, 4 values at a time (tm_opt.c's matrix kernels);
* ``"words"``: rows padded to a multiple of 4, packed 4 per int32, channel pairs interleaved word
  by word (tm_fast.h's matrix kernels).
"""
from __future__ import annotations

import numpy as np

from .ir import Op


def weight_rows(op: Op) -> np.ndarray:
    """Weights as (C_out, K) rows in the order kernels read them: K = kH * kW * C_in/groups (HWC)."""
    w = op.arrays["weight"]
    if w.ndim == 4:
        w = w.transpose(0, 2, 3, 1)          # (C_out, C_in/g, kH, kW) -> (C_out, kH, kW, C_in/g)
    return np.ascontiguousarray(w.reshape(w.shape[0], -1))


def folded_bias(op: Op, input_zero_point: int) -> np.ndarray:
    """bias - z_in * sum_k w[c, k] as int64 (C_out,): the zero point moved out of the inner loop."""
    rows = weight_rows(op).astype(np.int64)
    return op.arrays["bias"].astype(np.int64) - int(input_zero_point) * rows.sum(axis=1)


def blocks_of(k: int) -> int:
    """Groups of 4 values in a row of K (the specialised kernels pad rows to a multiple of 4)."""
    return (k + 3) // 4


def interleave_pairs(rows: np.ndarray) -> np.ndarray:
    """(C_out, K) rows -> the order the optimised matrix kernel reads (1-D).

    For each pair of channels (c, c+1): 4 values of c, 4 of c+1, the next 4 of c, ... then the
    K mod 4 tail of c and of c+1. An odd last channel follows as a plain row. One pointer then
    walks both rows of a pair, and each 32-bit load brings one channel's next 4 weights.
    """
    c_out, k = rows.shape
    k4 = k - k % 4
    parts = []
    for c in range(0, c_out - 1, 2):
        a, b = rows[c], rows[c + 1]
        blocks = np.stack([a[:k4].reshape(-1, 4), b[:k4].reshape(-1, 4)], axis=1).reshape(-1)
        parts += [blocks, a[k4:], b[k4:]]
    if c_out % 2:
        parts.append(rows[-1])
    return np.concatenate(parts).astype(np.int8)


def weight_words(rows: np.ndarray) -> np.ndarray:
    """(C_out, K) int8 rows -> the int32 words the specialised matrix kernels read (1-D).

    Rows are padded with zeros to a multiple of 4 values, cut into words of 4 (little-endian
    bytes: value j of a group is byte j), and for each channel pair (c, c+1) the words alternate:
    c's first word, c+1's first word, c's second, ... An odd last channel follows alone.
    """
    c_out, k = rows.shape
    padded = np.zeros((c_out, blocks_of(k) * 4), np.int8)
    padded[:, :k] = rows
    words = padded.view("<i4")                                  # (C_out, blocks)
    parts = [words[c:c + 2].T.reshape(-1) for c in range(0, c_out - 1, 2)]
    if c_out % 2:
        parts.append(words[-1])
    return np.concatenate(parts).astype(np.int32)


def weight_array(op: Op, layout: str) -> np.ndarray:
    """The op's weights flattened in `layout` ('ohwi', 'dw', 'rows', 'pairs': int8; 'words': int32), 1-D."""
    if layout == "words":
        return weight_words(weight_rows(op))
    if layout in ("ohwi", "rows"):
        return weight_rows(op).reshape(-1).astype(np.int8)
    if layout == "dw":
        return op.arrays["weight"][:, 0].reshape(-1).astype(np.int8)      # (C, kH, kW)
    if layout == "pairs":
        return interleave_pairs(weight_rows(op))
    raise ValueError(f"unknown weight layout {layout!r}")
