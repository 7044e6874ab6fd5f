"""Specs of the shape-specialised kernels, runtime/tm_fast.h and tm_fast_dw.h (kernel set "opt").

`specialise.py` instantiates each for a layer's shape through a wrapper in model.c; a spec's
`template` writes that wrapper's call with every shape, zero point and clamp a number.
Preconditions, beyond tm_opt.c's (multipliers below 0.5, the accumulator bound, groups == 1):

* e = -shift <= 22: the output zero point is folded into the rounding constant, (2 z + 1) 2^(e-1),
  which must stay below 2^29 for every int8 zero point;
* depthwise: 3x3 with stride 1; average pooling: at most 256 pixels a window (int16 lane sums).

Debug builds (-DTM_DEBUG) assert them at the top of each template.
"""
from __future__ import annotations

from .ir import Graph, Op
from .kernel_spec import (KernelSpec, depthwise_bounded, input_shape, matrix_bounded, reduction_length,
                          right_shifts_only, ungrouped, up4)
from .weight_layouts import blocks_of

MAX_FAST_SHIFT = 22      # e = -shift: |(2 z + 1) 2^(e-1)| < 2^29 for every int8 zero point
FAST_PIXELS = 3          # pixels per block of the matrix kernels (TM_FAST_PIXELS in tm_fast.h)
CONSTANTS = "const int32_t *w, const int32_t *bias2, const int32_t *m0, const uint8_t *e"
POINTERS = "const int8_t *input, int8_t *output, void *scratch"


def small_shifts(op: Op) -> str:
    if right_shifts_only(op):
        return right_shifts_only(op)
    if (-op.arrays["shift"]).max() > MAX_FAST_SHIFT:
        return f"a multiplier below 2^-{MAX_FAST_SHIFT} (rounding constant too large)"
    return ""


def pointwise_ok(graph: Graph, op: Op) -> str:
    return small_shifts(op) or matrix_bounded(graph, op)


def conv2d_ok(graph: Graph, op: Op) -> str:
    return small_shifts(op) or matrix_bounded(graph, op) or ungrouped(op)


def depthwise3x3_ok(graph: Graph, op: Op) -> str:
    if small_shifts(op):
        return small_shifts(op)
    if op.attrs["kernel"] != (3, 3) or op.attrs["stride"] != (1, 1):
        return "depthwise other than 3x3 stride 1"
    return depthwise_bounded(graph, op)


def avgpool_ok(graph: Graph, op: Op) -> str:
    (kh, kw) = op.attrs["kernel"]
    return "window over 256 pixels (int16 lane sums)" if kh * kw > 256 else ""


def _pairs(op: Op) -> int:
    """Bytes of one pixel's inputs unpacked and doubled: 2 words per block of 4."""
    return 8 * blocks_of(reduction_length(op))


def _pixels(graph: Graph, op: Op) -> int:
    return 1 if op.kind == "fully_connected" else input_shape(graph, op)[0] * input_shape(graph, op)[1]


def pointwise_scratch(graph: Graph, op: Op) -> int:
    """The unpacked inputs of one block of pixels (fewer when the layer has fewer)."""
    return min(_pixels(graph, op), FAST_PIXELS) * _pairs(op)


def conv2d_scratch(graph: Graph, op: Op) -> int:
    """A block's im2col rows (3 K bytes, rounded up to 4), then their unpacked inputs."""
    return up4(FAST_PIXELS * reduction_length(op)) + FAST_PIXELS * _pairs(op)


def depthwise3x3_scratch(graph: Graph, op: Op) -> int:
    """One channel as a transposed, zero-padded int16 plane, its columns rounded up to even length."""
    h, w, _ = input_shape(graph, op)
    (ph, pw) = op.attrs["padding"]
    return 2 * ((h + 2 * ph + 1) // 2 * 2) * (w + 2 * pw)


def _out_q(graph: Graph, op: Op) -> str:
    """Output zero point and clamp, as the templates' last three arguments."""
    return f"{graph.tensors[op.output].zero_point}, {op.attrs.get('act_min', -128)}, {op.attrs.get('act_max', 127)}"


def pointwise_template(graph: Graph, op: Op) -> tuple[str, str, str]:
    c_in, c_out = input_shape(graph, op)[-1], graph.tensors[op.output].shape[-1]
    pixels, out_q = _pixels(graph, op), _out_q(graph, op)
    return (f"{op.kind}: {pixels} pixels, {c_in} -> {c_out} channels; output zero point, clamp: {out_q}",
            f"{CONSTANTS}, {POINTERS}",
            f"tm_fast_pointwise(input, output, (int32_t *)scratch, w, bias2, m0, e, {pixels}, {c_in}, {c_out}, "
            f"{out_q});")


def conv2d_template(graph: Graph, op: Op) -> tuple[str, str, str]:
    (h, w, c_in), (oh, ow, c_out) = input_shape(graph, op), graph.tensors[op.output].shape
    (kh, kw), (sh, sw), (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
    z_in = graph.tensors[op.inputs[0]].zero_point
    return (f"conv2d: {h}x{w}x{c_in} -> {oh}x{ow}x{c_out}, kernel {kh}x{kw}, stride {sh}x{sw}, padding {ph}x{pw}",
            f"{CONSTANTS}, {POINTERS}",
            f"tm_fast_conv2d(input, output, (int8_t *)scratch, w, bias2, m0, e, {h}, {w}, {c_in}, {oh}, {ow}, "
            f"{c_out}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, {z_in}, {_out_q(graph, op)});")


def depthwise3x3_template(graph: Graph, op: Op) -> tuple[str, str, str]:
    h, w, c = input_shape(graph, op)
    (ph, pw) = op.attrs["padding"]
    z_in = graph.tensors[op.inputs[0]].zero_point
    return (f"depthwise 3x3: {h}x{w}x{c}, padding {ph}x{pw}",
            f"{CONSTANTS.replace('int32_t *w', 'int8_t *w')}, {POINTERS}",
            f"tm_fast_depthwise3x3(input, output, (int16_t *)scratch, w, bias2, m0, e, {h}, {w}, {c}, {ph}, {pw}, "
            f"{z_in}, {_out_q(graph, op)});")


def avgpool_template(graph: Graph, op: Op) -> tuple[str, str, str]:
    (h, w, c), (oh, ow, _) = input_shape(graph, op), graph.tensors[op.output].shape
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["stride"]
    return (f"avgpool: {h}x{w}x{c}, window {kh}x{kw}, stride {sh}x{sw}", "const int8_t *input, int8_t *output",
            f"tm_fast_avgpool(input, output, {w}, {c}, {oh}, {ow}, {kh}, {kw}, {sh}, {sw});")


CALL = ("constants", "input", "output", "scratch")
SPECS = (
    KernelSpec("tm_fast_pointwise", ("pointwise", "fully_connected"), CALL, weights="words", fold_bias=True,
               in_place="either", check=pointwise_ok, scratch=pointwise_scratch, template=pointwise_template),
    KernelSpec("tm_fast_conv2d", ("conv2d",), CALL, weights="words", fold_bias=True, check=conv2d_ok,
               scratch=conv2d_scratch, template=conv2d_template),
    KernelSpec("tm_fast_depthwise3x3", ("depthwise",), CALL, weights="dw", in_place="either",
               check=depthwise3x3_ok, scratch=depthwise3x3_scratch, template=depthwise3x3_template),
    KernelSpec("tm_fast_avgpool", ("avgpool",), ("input", "output"), check=avgpool_ok, template=avgpool_template),
)
