"""One C kernel as the code generator sees it: a `KernelSpec`, written beside the C it describes.

Each runtime file has a module of specs: `kernels_ref.py` (runtime/tm_ref.c), `kernels_opt.py`
(tm_opt.c) and `kernels_fast.py` (tm_fast.h, tm_fast_dw.h), as CMSIS-NN keeps each kernel's
``*_get_buffer_size()`` next to the kernel. A spec holds every fact about its kernel that the
generator needs: which operators it runs, its preconditions (with the reason when one is unmet),
its scratch bytes, the layout of its constants, the roles of its C arguments and its value in the
interpreter's enum. `kernels.choose` picks among the specs; `codegen` writes a layer's constants,
its call and its interpreter row from the chosen spec alone.

Adding a kernel: write its C, add its spec to its file's SPECS (and, if the interpreter should
run it, its enum value and switch case in tm_interp.h / tm_interp.c: a test compares them with
the specs). Nothing else names kernels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .ir import Graph, Op
from .weight_layouts import folded_bias

ACC_LIMIT = 1 << 30      # |acc| below this: the optimised requantization (tm_mbqm_right) is exact

#: What each entry of `KernelSpec.arguments` passes, in the generated call.
ARGUMENTS = {
    "params": "the layer's parameter record, &<layer>_params (its C type: `record`)",
    "constants": "a specialised kernel's arrays: <layer>_weight, _bias2, _m0, _e",
    "input": "the input's arena address",
    "input2": "the second input's arena address (add)",
    "output": "the output's arena address; for a kernel run in place, also the input's",
    "scratch": "the scratch buffer's arena address",
    "scratch16": "the scratch buffer's arena address as int16_t *",
}
IN_PLACE = ("never", "only", "either")   # never: separate output; only: output over input; either: both


def no_scratch(graph: Graph, op: Op) -> int:
    return 0


def always(graph: Graph, op: Op) -> str:
    return ""


@dataclass(frozen=True)
class KernelSpec:
    """The generator's facts about one C kernel (see the module docstring)."""
    function: str                     # the C function; "" for a view (a flatten that moves no data: no call)
    kinds: tuple                      # the `Op.kind`s it runs
    arguments: tuple = ()             # the roles of its C arguments, in order (keys of ARGUMENTS)
    record: str = ""                  # C type of its parameter record; "" for none (a view, a specialised kernel)
    weights: str = ""                 # weight layout (weight_layouts.py); "" for none
    fold_bias: bool = False           # bias - z_in * sum(weight row): the input zero point leaves the inner loop
    in_place: str = "never"           # one of IN_PLACE
    check: Callable[[Graph, Op], str] = always          # "" when its preconditions hold for op, else why not
    scratch: Callable[[Graph, Op], int] = no_scratch    # scratch bytes for op
    opcode: str | None = None         # its name in the interpreter's enum tm_op; None: the interpreter lacks it
    template: Callable | None = None  # specialised kernels: (graph, op) -> (comment, parameters, body) of a wrapper

    def __post_init__(self):
        unknown = [a for a in self.arguments if a not in ARGUMENTS]
        if unknown or self.in_place not in IN_PLACE:
            raise ValueError(f"{self.function}: unknown argument roles {unknown} or in_place {self.in_place!r}")

    def runs(self, op: Op, inplace: str | None) -> bool:
        """True if this kernel runs ops of op's kind the way the plan runs op (in place or not)."""
        if op.kind not in self.kinds:
            return False
        return self.in_place == "either" or (self.in_place == "only") == bool(inplace)

    @property
    def specialised(self) -> bool:
        """A kernel compiled for each layer's shape (tm_fast.h), through a wrapper in model.c."""
        return self.template is not None


# ---- shapes and preconditions shared by the optimised kernels ----

def input_shape(graph: Graph, op: Op) -> tuple:
    return graph.tensors[op.inputs[0]].shape


def reduction_length(op: Op) -> int:
    """K: the products summed into one accumulator (kH * kW * C_in/groups, or C_in)."""
    return int(np.prod(op.arrays["weight"].shape[1:]))


def up4(n: int) -> int:
    return (n + 3) // 4 * 4


def right_shifts_only(op: Op) -> str:
    """Every multiplier below 0.5 (shift <= -1): requantization without a left shift."""
    return "" if (op.arrays["shift"] < 0).all() else "a multiplier >= 0.5 (left shift)"


def accumulator_bounded(bias: np.ndarray, k: int, per_term: int) -> str:
    """|bias| + K * (largest |term|) < 2^30: no accumulator can reach the bound, whatever the input."""
    ok = int(np.abs(bias.astype(np.int64)).max(initial=0)) + k * per_term < ACC_LIMIT
    return "" if ok else "accumulator bound not proven"


def matrix_bounded(graph: Graph, op: Op) -> str:
    """The matrix kernels multiply raw int8 inputs (|x * w| <= 128 * 128) onto the folded bias."""
    bias = folded_bias(op, graph.tensors[op.inputs[0]].zero_point)
    return accumulator_bounded(bias, reduction_length(op), 128 * 128)


def depthwise_bounded(graph: Graph, op: Op) -> str:
    """Depthwise subtracts the zero point first (|(x - z) * w| <= 255 * 128) and adds the plain bias."""
    return accumulator_bounded(op.arrays["bias"], reduction_length(op), 255 * 128)


def ungrouped(op: Op) -> str:
    return "" if op.attrs["groups"] == 1 else "grouped convolution"
