"""Which C kernel runs each operator: the kernel sets, and the choice among the kernels' specs.

Every C kernel has a spec (`kernel_spec.KernelSpec`) beside the C it describes: `kernels_ref.py`
(tm_ref.c), `kernels_opt.py` (tm_opt.c), `kernels_fast.py` (tm_fast.h). Three kernel sets:

* ``"ref"``: every operator runs its plain reference kernel (tm_ref.c);
* ``"generic"``: an optimised ARMv7E-M kernel (tm_opt.c, shapes read at run time) where one
  exists and its preconditions hold, the reference kernel otherwise;
* ``"opt"``: a kernel *specialised* for the layer's shape (tm_fast.h, instantiated by
  `specialise.py` with every shape a constant) where its preconditions hold, else as "generic".

`choose` tries the set's tiers from the fastest down and takes the first kernel that runs the op
(in place or not, as the memory plan runs it) and whose preconditions hold. The reason a layer
keeps a slower kernel is recorded, so a benchmark table can say why.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import kernels_fast, kernels_opt, kernels_ref
from .ir import Graph, Op
from .kernel_spec import ACC_LIMIT, KernelSpec  # noqa: F401  (part of this module's interface)
from .kernels_fast import FAST_PIXELS, MAX_FAST_SHIFT  # noqa: F401
from .weight_layouts import (blocks_of, folded_bias, interleave_pairs, weight_array,  # noqa: F401
                             weight_rows, weight_words)

KERNEL_SETS = ("ref", "generic", "opt")


@dataclass(frozen=True)
class Tier:
    """The kernels of one runtime file, and the note for an op kind it has no kernel for."""
    specs: tuple
    missing: str


REFERENCE = Tier(kernels_ref.SPECS, "")
GENERIC = Tier(kernels_opt.SPECS, "no generic optimised kernel")
SPECIALISED = Tier(kernels_fast.SPECS, "no optimised kernel (little work)")
TIERS = {"ref": (REFERENCE,), "generic": (GENERIC, REFERENCE), "opt": (SPECIALISED, GENERIC, REFERENCE)}
NO_WORK = ("flatten",)     # a view or a copy: nothing to optimise, so no note says so

#: Every kernel's spec by C function name ("" is the view: a flatten that moves no data).
SPECS: dict[str, KernelSpec] = {s.function: s for tier in (REFERENCE, GENERIC, SPECIALISED) for s in tier.specs}
assert len(SPECS) == sum(len(t.specs) for t in (REFERENCE, GENERIC, SPECIALISED)), "two specs name one kernel"


@dataclass
class KernelChoice:
    """The C function for one op, its scratch bytes, and how its constants are laid out."""
    function: str          # e.g. "tm_pointwise_opt"; "" for a view; tm_fast_* for a specialised kernel
    scratch: int = 0       # bytes of scratch in the arena
    weights: str = ""      # "ohwi", "dw", "rows", "pairs" (rows interleaved in channel pairs), "words"
    fold_bias: bool = False  # bias - z_in * sum(weight row)
    note: str = ""         # why a slower kernel was kept

    @property
    def spec(self) -> KernelSpec:
        """The chosen kernel's spec (its call arguments, interpreter opcode, ...)."""
        return SPECS[self.function]

    @property
    def specialised(self) -> bool:
        """True for a kernel generated for this layer's shape (tm_fast.h), instantiated in model.c."""
        return self.spec.specialised


def _note(op: Op, passed_over: list) -> str:
    """Why faster tiers were passed over: each one's unmet precondition, or (once, not again by a slower
    tier) that it has no kernel for the op's kind. Equal reasons are said once."""
    notes, said_missing = [], False
    for tier, why in passed_over:
        if why is None:                              # the tier has no kernel for this kind
            if not said_missing and op.kind not in NO_WORK:
                notes.append(tier.missing)
            said_missing = True
        elif why not in notes:
            notes.append(why)
    return "; ".join(notes)


def choose(graph: Graph, op: Op, kernels: str, inplace: str | None) -> KernelChoice:
    """The kernel for `op` (`inplace` is 'depthwise' / 'pointwise' when the plan runs it in place)."""
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels must be one of {KERNEL_SETS}, got {kernels!r}")
    passed_over = []
    for tier in TIERS[kernels]:
        first_reason = None                          # stays None if the tier has no kernel for the op
        for spec in (s for s in tier.specs if s.runs(op, inplace)):
            why = spec.check(graph, op)
            if not why:
                return KernelChoice(spec.function, spec.scratch(graph, op), spec.weights, spec.fold_bias,
                                    _note(op, passed_over))
            first_reason = first_reason or why
        passed_over.append((tier, first_reason))
    raise AssertionError(f"no kernel runs {op.kind} op {op.name!r} (in place: {inplace})")


def choose_all(graph: Graph, kernels: str, inplace: dict) -> dict[str, KernelChoice]:
    """Every op's kernel by op name; `inplace` maps the ops the plan runs in place to their kind."""
    return {op.name: choose(graph, op, kernels, inplace.get(op.name)) for op in graph.ops}
