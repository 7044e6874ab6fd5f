"""Specs of the reference kernels, runtime/tm_ref.c: one per operator, no preconditions.

Every layer can run on these; the other kernel sets fall back to them (see `kernels.choose`).
"""
from __future__ import annotations

from .ir import Graph, Op
from .kernel_spec import KernelSpec, input_shape

CONV = "tm_conv_params"
CALL = ("params", "input", "output")
IN_PLACE_CALL = ("params", "output", "scratch")        # the data is read from and written to the output's place


def one_channel(graph: Graph, op: Op) -> int:
    """In-place depthwise copies one input channel aside: H * W bytes."""
    h, w, _ = input_shape(graph, op)
    return h * w


def one_pixel(graph: Graph, op: Op) -> int:
    """In-place pointwise computes one output pixel aside: C_out bytes."""
    return graph.tensors[op.output].shape[-1]


def is_view(graph: Graph, op: Op) -> str:
    return "" if graph.is_view(op) else "the flatten moves data"


SPECS = (
    KernelSpec("", ("flatten",), check=is_view, opcode="TM_VIEW"),
    KernelSpec("tm_conv2d_ref", ("conv2d",), CALL, CONV, "ohwi", opcode="TM_CONV2D_REF"),
    KernelSpec("tm_depthwise_ref", ("depthwise",), CALL, CONV, "dw", opcode="TM_DEPTHWISE_REF"),
    KernelSpec("tm_depthwise_inplace_ref", ("depthwise",), IN_PLACE_CALL, CONV, "dw", in_place="only",
               scratch=one_channel, opcode="TM_DEPTHWISE_INPLACE_REF"),
    KernelSpec("tm_pointwise_ref", ("pointwise",), CALL, CONV, "rows", opcode="TM_POINTWISE_REF"),
    KernelSpec("tm_pointwise_inplace_ref", ("pointwise",), IN_PLACE_CALL, CONV, "rows", in_place="only",
               scratch=one_pixel, opcode="TM_POINTWISE_INPLACE_REF"),
    KernelSpec("tm_fully_connected_ref", ("fully_connected",), CALL, CONV, "rows", opcode="TM_FULLY_CONNECTED_REF"),
    KernelSpec("tm_avgpool_ref", ("avgpool",), CALL, "tm_pool_params", opcode="TM_AVGPOOL_REF"),
    KernelSpec("tm_maxpool_ref", ("maxpool",), CALL, "tm_pool_params", opcode="TM_MAXPOOL_REF"),
    KernelSpec("tm_add_ref", ("add",), ("params", "input", "input2", "output"), "tm_add_params", opcode="TM_ADD_REF"),
    KernelSpec("tm_flatten_ref", ("flatten",), CALL, "tm_flatten_params", opcode="TM_FLATTEN_REF"),
)
