"""C for the shape-specialised kernels: per-layer constants, one wrapper per distinct shape, calls.

The kernels themselves are templates in `runtime/tm_fast.h` (always inlined). For a layer that
`kernels.choose` gives a ``tm_fast_*`` kernel, the generator writes

* the layer's constants in the order the kernel reads them: weights packed 4 per int32 word with
  channel pairs interleaved (`kernels.weight_words`; depthwise: plain (C, 3, 3) int8), the bias
  *doubled* (and, for the matrix kernels, with the input zero point folded in), the Q31 multiplier
  `m0` and the right shift `e` = -shift as one byte;
* a wrapper ``static void <prefix>_k<n>(...)`` that calls the template with every shape, zero
  point and clamp as a number, so gcc compiles a kernel for exactly that shape. Layers of equal
  shape share one wrapper (DS-CNN-S's four pointwise layers are one kernel), which keeps flash
  small; their weights are the wrapper's arguments;
* the call in `model_run()`.
"""
from __future__ import annotations

import numpy as np

from . import kernels as K
from .ir import Graph, Op

#: Put first in a generated model.c: gcc's pre-allocation scheduler spills the unrolled blocks'
#: accumulators (see tm_fast.h). push/pop keeps the change inside the file.
PRAGMA_BEGIN = ("#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC push_options\n"
                "#pragma GCC optimize(\"no-schedule-insns\")   /* see tm_fast.h */\n#endif\n")
PRAGMA_END = "#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC pop_options\n#endif\n"


def requant_arrays(op: Op, bias: np.ndarray) -> dict:
    """{"bias2": 2 * bias (int64), "m0": multipliers, "e": right shifts (-shift)} for a specialised kernel."""
    return {"bias2": 2 * np.asarray(bias, dtype=np.int64), "m0": op.arrays["multiplier"].astype(np.int64),
            "e": (-op.arrays["shift"]).astype(np.int64)}


def constants(graph: Graph, op: Op, ident: str, choice: K.KernelChoice, c_array) -> tuple[str, int]:
    """C text of the layer's constant arrays, and their bytes."""
    if choice.function == "tm_fast_avgpool":
        return "", 0
    if op.kind == "depthwise":
        weight, wtype = op.arrays["weight"][:, 0].reshape(-1).astype(np.int8), "int8_t"    # (C, 3, 3)
        bias = op.arrays["bias"]
    else:
        weight, wtype = K.weight_array(op, "words"), "int32_t"
        bias = K.folded_bias(op, graph.tensors[op.inputs[0]].zero_point)
    arrays = requant_arrays(op, bias)
    text = (c_array(wtype, f"{ident}_weight", weight) + c_array("int32_t", f"{ident}_bias2", arrays["bias2"], 8) +
            c_array("int32_t", f"{ident}_m0", arrays["m0"], 8) + c_array("uint8_t", f"{ident}_e", arrays["e"], 32))
    return text, weight.nbytes + 8 * len(arrays["m0"]) + len(arrays["e"])


def _matrix_shape(graph: Graph, op: Op) -> tuple:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    if op.kind == "fully_connected":
        return 1, x.shape[0], y.shape[0]
    return x.shape[0] * x.shape[1], x.shape[2], y.shape[2]


def wrapper(graph: Graph, op: Op, choice: K.KernelChoice) -> tuple[str, str, str]:
    """(comment, parameter list, body call) of the wrapper for this layer's shape; equal text = one wrapper."""
    f = choice.function
    y = graph.tensors[op.output]
    out_q = f"{y.zero_point}, {op.attrs.get('act_min', -128)}, {op.attrs.get('act_max', 127)}"
    weights = "const int32_t *w, const int32_t *bias2, const int32_t *m0, const uint8_t *e"
    if f == "tm_fast_pointwise":
        pixels, c_in, c_out = _matrix_shape(graph, op)
        return (f"{op.kind}: {pixels} pixels, {c_in} -> {c_out} channels; output zero point, clamp: {out_q}",
                f"{weights}, const int8_t *input, int8_t *output, void *scratch",
                f"tm_fast_pointwise(input, output, (int32_t *)scratch, w, bias2, m0, e, {pixels}, {c_in}, {c_out}, {out_q});")
    if f == "tm_fast_conv2d":
        (h, w, c_in), (oh, ow, c_out) = graph.tensors[op.inputs[0]].shape, y.shape
        (kh, kw), (sh, sw), (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
        z_in = graph.tensors[op.inputs[0]].zero_point
        return (f"conv2d: {h}x{w}x{c_in} -> {oh}x{ow}x{c_out}, kernel {kh}x{kw}, stride {sh}x{sw}, padding {ph}x{pw}",
                f"{weights}, const int8_t *input, int8_t *output, void *scratch",
                f"tm_fast_conv2d(input, output, (int8_t *)scratch, w, bias2, m0, e, {h}, {w}, {c_in}, {oh}, {ow}, "
                f"{c_out}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, {z_in}, {out_q});")
    if f == "tm_fast_depthwise3x3":
        h, w, c = graph.tensors[op.inputs[0]].shape
        (ph, pw) = op.attrs["padding"]
        z_in = graph.tensors[op.inputs[0]].zero_point
        return (f"depthwise 3x3: {h}x{w}x{c}, padding {ph}x{pw}",
                "const int8_t *w, const int32_t *bias2, const int32_t *m0, const uint8_t *e, const int8_t *input, "
                "int8_t *output, void *scratch",
                f"tm_fast_depthwise3x3(input, output, (int16_t *)scratch, w, bias2, m0, e, {h}, {w}, {c}, {ph}, {pw}, "
                f"{z_in}, {out_q});")
    if f == "tm_fast_avgpool":
        (h, w, c), (oh, ow, _) = graph.tensors[op.inputs[0]].shape, y.shape
        (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["stride"]
        return (f"avgpool: {h}x{w}x{c}, window {kh}x{kw}, stride {sh}x{sw}", "const int8_t *input, int8_t *output",
                f"tm_fast_avgpool(input, output, {w}, {c}, {oh}, {ow}, {kh}, {kw}, {sh}, {sw});")
    raise AssertionError(f"no specialised kernel {f!r}")


class Wrappers:
    """The distinct wrappers of one model, numbered in order of first use."""

    def __init__(self, prefix: str):
        self.prefix, self.names, self.texts = prefix, {}, []

    def name_for(self, graph: Graph, op: Op, choice: K.KernelChoice) -> str:
        comment, params, body = wrapper(graph, op, choice)
        key = (params, body)
        if key not in self.names:
            name = f"{self.prefix}_k{len(self.names)}"
            self.names[key] = name
            self.texts.append(f"/* {comment} */\nstatic TM_FAST_KERNEL void {name}({params}) {{\n  {body}\n}}\n")
        return self.names[key]

    def source(self) -> str:
        return "\n".join(self.texts)


def call(wrappers: Wrappers, graph: Graph, op: Op, ident: str, choice: K.KernelChoice, at, scratch: str | None) -> str:
    """The layer's line in model_run(): its wrapper with its constants and arena addresses."""
    name = wrappers.name_for(graph, op, choice)
    if choice.function == "tm_fast_avgpool":
        return f"{name}({at(op.inputs[0])}, {at(op.output)});"
    return (f"{name}({ident}_weight, {ident}_bias2, {ident}_m0, {ident}_e, {at(op.inputs[0])}, {at(op.output)}, "
            f"{scratch});")
