"""Which C kernel runs each operator, how much scratch it needs, and the weight layout it reads.

The code generator asks `choose` once per operator. Three kernel sets:

* ``"ref"``: every operator runs its plain reference kernel (tm_ref.c);
* ``"generic"``: an optimised ARMv7E-M kernel (tm_opt.c, shapes read at run time) where one
  exists and its preconditions hold, the reference kernel otherwise;
* ``"opt"``: a kernel *specialised* for the layer's shape (tm_fast.h, instantiated by
  `specialise.py` with every shape a constant) where its preconditions hold, else as "generic".

The reason a layer keeps a slower kernel is recorded, so a benchmark table can say why.

Preconditions of the optimised kernels (all checked here, at code-generation time):

* the accumulator provably stays below 2^30 in magnitude (for the cheaper requantization and
  an overflow-free folded bias): |bias'| + K * 128 * 128 < 2^30 for the matrix kernels (raw int8
  inputs), |bias| + K * 255 * 128 < 2^30 for depthwise (zero point subtracted first);
* every multiplier is below 0.5 (shift <= -1), so requantization needs no left shift;
* conv2d: groups == 1.

The specialised kernels also need e = -shift <= 22 (the output zero point is folded into the
rounding constant, which must stay below 2^29), and: depthwise 3x3 with stride 1; average
pooling over at most 256 pixels (int16 lane sums).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir import Graph, Op

ACC_LIMIT = 1 << 30
KERNEL_SETS = ("ref", "generic", "opt")
MAX_FAST_SHIFT = 22      # e = -shift: |(2 z + 1) 2^(e-1)| < 2^29 for every int8 zero point
FAST_PIXELS = 3          # pixels per block of the specialised matrix kernels (tm_fast.h)


@dataclass
class KernelChoice:
    """The C function for one op, its scratch bytes, and how its constants are laid out."""
    function: str          # e.g. "tm_pointwise_opt"; "" for a view; tm_fast_* for a specialised kernel
    scratch: int = 0       # bytes of scratch in the arena
    weights: str = ""      # "ohwi", "dw", "rows", "pairs" (rows interleaved in channel pairs), "words"
    fold_bias: bool = False  # bias - z_in * sum(weight row)
    note: str = ""         # why a slower kernel was kept

    @property
    def specialised(self) -> bool:
        """True for a kernel generated for this layer's shape (tm_fast.h), instantiated in model.c."""
        return self.function.startswith("tm_fast_")


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


def blocks_of(k: int) -> int:
    """Groups of 4 values in a row of K (the specialised kernels pad rows to a multiple of 4)."""
    return (k + 3) // 4


def fast_choice(graph: Graph, op: Op, inplace: str | None) -> tuple[KernelChoice | None, str]:
    """The specialised kernel for `op`, or (None, why not)."""
    shape_in = graph.tensors[op.inputs[0]].shape
    if op.kind == "avgpool":
        (kh, kw) = op.attrs["kernel"]
        if kh * kw > 256:
            return None, "window over 256 pixels (int16 lane sums)"
        return KernelChoice("tm_fast_avgpool"), ""
    if op.kind not in ("conv2d", "depthwise", "pointwise", "fully_connected"):
        return None, "no optimised kernel (little work)" if op.kind != "flatten" else ""
    shift = op.arrays["shift"]
    k = int(np.prod(op.arrays["weight"].shape[1:]))
    if not (shift < 0).all():
        return None, "a multiplier >= 0.5 (left shift)"
    if (-shift).max() > MAX_FAST_SHIFT:
        return None, f"a multiplier below 2^-{MAX_FAST_SHIFT} (rounding constant too large)"
    if op.kind == "depthwise":
        h, w, c = shape_in
        (ph, pw) = op.attrs["padding"]
        if op.attrs["kernel"] != (3, 3) or op.attrs["stride"] != (1, 1):
            return None, "depthwise other than 3x3 stride 1"
        if not _bounded(op.arrays["bias"], k, 255 * 128):
            return None, "accumulator bound not proven"
        return KernelChoice("tm_fast_depthwise3x3", 2 * ((h + 2 * ph + 1) // 2 * 2) * (w + 2 * pw), "dw"), ""
    if not _bounded(folded_bias(op, graph.tensors[op.inputs[0]].zero_point), k, 128 * 128):
        return None, "accumulator bound not proven"
    pairs = 8 * blocks_of(k)
    if op.kind == "conv2d":
        if op.attrs["groups"] != 1:
            return None, "grouped convolution"
        return KernelChoice("tm_fast_conv2d", _up4(FAST_PIXELS * k) + FAST_PIXELS * pairs, "words", True), ""
    pixels = 1 if op.kind == "fully_connected" else shape_in[0] * shape_in[1]
    return KernelChoice("tm_fast_pointwise", min(pixels, FAST_PIXELS) * pairs, "words", True), ""


def choose(graph: Graph, op: Op, kernels: str, inplace: str | None) -> KernelChoice:
    """The kernel for `op` (`inplace` is 'depthwise' / 'pointwise' when the plan runs it in place)."""
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels must be one of {KERNEL_SETS}, got {kernels!r}")
    if kernels == "opt":
        fast, why_not = fast_choice(graph, op, inplace)
        if fast:
            return fast
        generic = choose(graph, op, "generic", inplace)
        if op.kind in ("maxpool", "add"):
            generic.note = why_not
        elif why_not:
            generic.note = why_not + (f"; {generic.note}" if generic.note and generic.note != why_not else "")
        return generic
    opt = kernels == "generic"
    shape_in = graph.tensors[op.inputs[0]].shape
    z_in = graph.tensors[op.inputs[0]].zero_point
    if op.kind == "flatten":
        return KernelChoice("" if graph.is_view(op) else "tm_flatten_ref")
    if op.kind in ("avgpool", "maxpool", "add"):
        return KernelChoice(f"tm_{op.kind}_ref", note="no generic optimised kernel" if opt else "")
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
        note = why if opt else ""
        if inplace:
            return KernelChoice("tm_depthwise_inplace_ref", h * w, "dw", note=note)
        return KernelChoice("tm_depthwise_ref", 0, "dw", note=note)
    # conv2d, pointwise, fully_connected: the matrix kernels with the folded bias
    bias = folded_bias(op, z_in)
    ok = opt and _bounded(bias, k, 128 * 128)
    note = why if opt and not ok else ""
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
