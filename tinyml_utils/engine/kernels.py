"""Which C kernel runs each operator, how much scratch it needs, and the weight layout it reads.

The code generator asks `choose` once per operator. With ``kernels="ref"`` every operator runs
its plain reference kernel; with ``kernels="opt"`` an optimised ARMv7E-M kernel runs where one
exists and its preconditions hold, and the reference kernel otherwise (the reason is recorded,
so a benchmark table can say why a layer was not optimised).

Preconditions of the optimised kernels (all checked here, at code-generation time):

* the accumulator provably stays below 2^30 in magnitude (for the cheaper requantization and
  an overflow-free folded bias): |bias'| + K * 128 * 128 < 2^30 for the matrix kernels (raw int8
  inputs), |bias| + K * 255 * 128 < 2^30 for depthwise (zero point subtracted first);
* every multiplier is below 0.5 (shift <= -1), so requantization needs no left shift;
* conv2d: groups == 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir import Graph, Op

ACC_LIMIT = 1 << 30
KERNEL_SETS = ("ref", "opt")


@dataclass
class KernelChoice:
    """The C function for one op, its scratch bytes, and how its constants are laid out."""
    function: str          # e.g. "tm_pointwise_opt"; "" for a view (nothing to run)
    scratch: int = 0       # bytes of scratch in the arena
    weights: str = ""      # "ohwi", "dw", "rows", "pairs" (rows interleaved in channel pairs)
    fold_bias: bool = False  # bias - z_in * sum(weight row)
    note: str = ""         # why the reference kernel was kept


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


def _up4(n: int) -> int:
    return (n + 3) // 4 * 4


def _bounded(bias: np.ndarray, k: int, per_term: int) -> bool:
    return int(np.abs(bias.astype(np.int64)).max(initial=0)) + k * per_term < ACC_LIMIT


def choose(graph: Graph, op: Op, kernels: str, inplace: str | None) -> KernelChoice:
    """The kernel for `op` (`inplace` is 'depthwise' / 'pointwise' when the plan runs it in place)."""
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels must be one of {KERNEL_SETS}, got {kernels!r}")
    opt = kernels == "opt"
    shape_in = graph.tensors[op.inputs[0]].shape
    z_in = graph.tensors[op.inputs[0]].zero_point
    if op.kind == "flatten":
        return KernelChoice("" if graph.is_view(op) else "tm_flatten_ref")
    if op.kind in ("avgpool", "maxpool", "add"):
        return KernelChoice(f"tm_{op.kind}_ref", note="no optimised kernel (little work)" if opt else "")
    k = int(np.prod(op.arrays["weight"].shape[1:]))
    small_multipliers = bool((op.arrays["shift"] < 0).all())
    if opt and not small_multipliers:
        opt, why = False, "a multiplier >= 0.5 (left shift)"
    else:
        why = "accumulator bound not proven"
    if op.kind == "depthwise":
        h, w, c = shape_in
        (ph, pw) = op.attrs["padding"]
        ok = opt and _bounded(op.arrays["bias"], k, 255 * 128)
        if ok:
            return KernelChoice("tm_depthwise_opt", 2 * (h + 2 * ph) * (w + 2 * pw), "dw")
        note = why if kernels == "opt" else ""
        if inplace:
            return KernelChoice("tm_depthwise_inplace_ref", h * w, "dw", note=note)
        return KernelChoice("tm_depthwise_ref", 0, "dw", note=note)
    # conv2d, pointwise, fully_connected: the matrix kernels with the folded bias
    bias = folded_bias(op, z_in)
    ok = opt and _bounded(bias, k, 128 * 128)
    note = why if kernels == "opt" and not ok else ""
    if op.kind == "conv2d":
        if opt and op.attrs["groups"] != 1:
            ok, note = False, "grouped convolution"
        if ok:
            return KernelChoice("tm_conv2d_opt", _up4(2 * k) + 4 * (k - k % 4), "pairs", True)
        return KernelChoice("tm_conv2d_ref", 0, "ohwi", note=note)
    if op.kind == "pointwise":
        c_out = graph.tensors[op.output].shape[-1]
        if inplace:
            return (KernelChoice("tm_pointwise_inplace_opt", _up4(2 * c_out) + 4 * (k - k % 4), "pairs", True) if ok else
                    KernelChoice("tm_pointwise_inplace_ref", c_out, "rows", note=note))
        return (KernelChoice("tm_pointwise_opt", max(4, 4 * (k - k % 4)), "pairs", True) if ok else
                KernelChoice("tm_pointwise_ref", 0, "rows", note=note))
    if op.kind == "fully_connected":
        return (KernelChoice("tm_fully_connected_opt", 0, "pairs", True) if ok else
                KernelChoice("tm_fully_connected_ref", 0, "rows", note=note))
    raise AssertionError(f"no kernel rule for {op.kind}")


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


def weight_array(op: Op, layout: str) -> np.ndarray:
    """The op's weights flattened in `layout` ('ohwi', 'dw', 'rows' or 'pairs'), int8 1-D."""
    if layout in ("ohwi", "rows"):
        return weight_rows(op).reshape(-1).astype(np.int8)
    if layout == "dw":
        return op.arrays["weight"][:, 0].reshape(-1).astype(np.int8)      # (C, kH, kW)
    if layout == "pairs":
        return interleave_pairs(weight_rows(op))
    raise ValueError(f"unknown weight layout {layout!r}")
