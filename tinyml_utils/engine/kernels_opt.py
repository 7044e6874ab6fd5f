"""Specs of the optimised kernels with run-time shapes, runtime/tm_opt.c (kernel set "generic").

Preconditions (a layer that fails one keeps its reference kernel, and the reason is recorded):

* every multiplier below 0.5 (shift <= -1): the requantization `tm_mbqm_right` needs no left shift;
* the accumulator provably below 2^30 in magnitude, for that requantization and an overflow-free
  folded bias: |bias'| + K * 128 * 128 < 2^30 for the matrix kernels (raw int8 inputs onto the
  folded bias), |bias| + K * 255 * 128 < 2^30 for depthwise (the zero point subtracted first);
* conv2d: groups == 1.

Debug builds (-DTM_DEBUG) assert the same at the top of each kernel.
"""
from __future__ import annotations

from .ir import Graph, Op
from .kernel_spec import (KernelSpec, depthwise_bounded, input_shape, matrix_bounded, reduction_length,
                          right_shifts_only, ungrouped, up4)

CONV = "tm_conv_params"


def _whole_blocks(op: Op) -> int:
    """K rounded down to a multiple of 4: the values the SIMD loop unpacks into int16 pairs."""
    k = reduction_length(op)
    return k - k % 4


def matrix_ok(graph: Graph, op: Op) -> str:
    return right_shifts_only(op) or matrix_bounded(graph, op)


def conv2d_ok(graph: Graph, op: Op) -> str:
    return ungrouped(op) or matrix_ok(graph, op)


def depthwise_ok(graph: Graph, op: Op) -> str:
    return right_shifts_only(op) or depthwise_bounded(graph, op)


def conv2d_scratch(graph: Graph, op: Op) -> int:
    """Two im2col rows (2 K bytes, rounded up to 4), then the rows unpacked to int16 pairs."""
    return up4(2 * reduction_length(op)) + 4 * _whole_blocks(op)


def depthwise_scratch(graph: Graph, op: Op) -> int:
    """One zero-padded channel as int16: 2 (H + 2 pad_h) (W + 2 pad_w) bytes."""
    h, w, _ = input_shape(graph, op)
    (ph, pw) = op.attrs["padding"]
    return 2 * (h + 2 * ph) * (w + 2 * pw)


def pointwise_scratch(graph: Graph, op: Op) -> int:
    """Two pixels unpacked to int16 pairs (at least one word)."""
    return max(4, 4 * _whole_blocks(op))


def pointwise_inplace_scratch(graph: Graph, op: Op) -> int:
    """Two pixels' outputs (rounded up to 4), then the two pixels unpacked to int16 pairs."""
    return up4(2 * graph.tensors[op.output].shape[-1]) + 4 * _whole_blocks(op)


SPECS = (
    KernelSpec("tm_conv2d_opt", ("conv2d",), ("params", "input", "output", "scratch"), CONV, "pairs", True,
               check=conv2d_ok, scratch=conv2d_scratch, opcode="TM_CONV2D_OPT"),
    KernelSpec("tm_depthwise_opt", ("depthwise",), ("params", "input", "output", "scratch16"), CONV, "dw",
               in_place="either", check=depthwise_ok, scratch=depthwise_scratch, opcode="TM_DEPTHWISE_OPT"),
    KernelSpec("tm_pointwise_opt", ("pointwise",), ("params", "input", "output", "scratch"), CONV, "pairs", True,
               check=matrix_ok, scratch=pointwise_scratch, opcode="TM_POINTWISE_OPT"),
    KernelSpec("tm_pointwise_inplace_opt", ("pointwise",), ("params", "output", "scratch"), CONV, "pairs", True,
               in_place="only", check=matrix_ok, scratch=pointwise_inplace_scratch, opcode="TM_POINTWISE_INPLACE_OPT"),
    KernelSpec("tm_fully_connected_opt", ("fully_connected",), ("params", "input", "output"), CONV, "pairs", True,
               check=matrix_ok, opcode="TM_FULLY_CONNECTED_OPT"),
)
