"""C for the shape-specialised kernels: per-layer constants, one wrapper per distinct shape.

The kernels themselves are templates in `runtime/tm_fast.h` (always inlined); their specs are in
`kernels_fast.py`. For a layer that `kernels.choose` gives a ``tm_fast_*`` kernel, the generator
writes

* the layer's constants in the order the kernel reads them: weights packed 4 per int32 word with
  channel pairs interleaved (`weight_layouts.weight_words`; depthwise: plain (C, 3, 3) int8), the
  bias *doubled* (and, for the matrix kernels, with the input zero point folded in), the Q31
  multiplier `m0` and the right shift `e` = -shift as one byte;
* a wrapper ``static void <prefix>_k<n>(...)`` that calls the template with every shape, zero
  point and clamp as a number (the spec's `template`), so gcc compiles a kernel for exactly that
  shape. Layers of equal shape share one wrapper (DS-CNN-S's four pointwise layers are one
  kernel), which keeps flash small; their weights are the wrapper's arguments;
* the call in `model_run()` (`codegen`, from the spec's `arguments`).
"""
from __future__ import annotations

import numpy as np

from . import kernels as K
from .ctext import c_array as _c_array
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


def constants(graph: Graph, op: Op, ident: str, choice: K.KernelChoice, c_array=_c_array) -> tuple[str, int]:
    """C text of the layer's constant arrays, and their bytes."""
    if not choice.weights:                                     # average pooling: no constants
        return "", 0
    weight = K.weight_array(op, choice.weights)
    wtype = "int32_t" if weight.dtype == np.int32 else "int8_t"
    bias = K.folded_bias(op, graph.tensors[op.inputs[0]].zero_point) if choice.fold_bias else op.arrays["bias"]
    arrays = requant_arrays(op, bias)
    text = (c_array(wtype, f"{ident}_weight", weight) + c_array("int32_t", f"{ident}_bias2", arrays["bias2"], 8) +
            c_array("int32_t", f"{ident}_m0", arrays["m0"], 8) + c_array("uint8_t", f"{ident}_e", arrays["e"], 32))
    return text, weight.nbytes + 8 * len(arrays["m0"]) + len(arrays["e"])


def wrapper(graph: Graph, op: Op, choice: K.KernelChoice) -> tuple[str, str, str]:
    """(comment, parameter list, body call) of the wrapper for this layer's shape; equal text = one wrapper."""
    if not choice.specialised:
        raise ValueError(f"{choice.function or 'a view'} is not a specialised kernel")
    return choice.spec.template(graph, op)


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
