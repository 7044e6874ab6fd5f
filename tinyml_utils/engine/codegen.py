"""Generate `model.c` / `model.h`: the whole network as constant arrays, one arena and one call per layer.

What the generated code contains, and why (TinyEngine's recipe):

* every weight, bias, multiplier and shift as a ``static const`` array: the linker puts them in
  flash, and nothing is parsed at run time;
* one ``static int8_t`` arena of the size the planner computed: no heap, no allocator, and the
  peak memory is known before the program runs;
* `model_run()`: one call per layer to the kernel chosen for it (`kernels.choose`), with every
  shape and arena offset a constant. A layer that moves no data (a flatten view) costs nothing;
* with ``kernels="opt"``, kernels compiled for each layer's shape (`specialise.py`).

Everything about a kernel (its arguments, its constants, its interpreter opcode) comes from its
spec (`kernel_spec.KernelSpec`); nothing here names a kernel.

The public API (`model.h`, names prefixed by `prefix`, "model" by default) is what firmware codes
against: MODEL_INPUT_SIZE, MODEL_OUTPUT_SIZE, MODEL_ARENA_SIZE, MODEL_NUM_LAYERS,
MODEL_INPUT_SCALE, MODEL_INPUT_ZERO_POINT, model_layer_names, model_input(), model_output(),
model_run(), and the optional per-layer hook (define MODEL_LAYER_HOOK and supply
model_layer_hook()).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..quant.intmodel import IntModel
from . import kernels as K
from . import specialise
from .ctext import c_array, c_comment, c_ident, c_string  # noqa: F401  (part of this module's interface)
from .ir import Graph, Op, from_intmodel
from .layer_constants import describe, layer_constants
from .planner import Plan, make_buffers, plan_memory

RUNTIME = Path(__file__).parent / "runtime"
RUNTIME_SOURCES = ("tm_ref.c", "tm_opt.c", "tm_interp.c")


class ModelTooLarge(ValueError):
    """The planned arena does not fit the memory budget given to the generator."""


@dataclass
class GeneratedModel:
    """Generated C for one model: header and source text, and what produced them."""
    prefix: str
    header: str
    source: str
    graph: Graph
    plan: Plan
    choices: dict                       # op name -> KernelChoice
    kernels: str
    style: str
    const_bytes: int                    # bytes of constant arrays (weights, biases, multipliers, shifts)
    layer_macs: list = field(default_factory=list)

    @property
    def scratch_offset(self) -> int:
        """<PREFIX>_SCRATCH_OFFSET: where the arena region free between inferences starts (bytes)."""
        return free_region(self.plan, self.graph)[0]

    @property
    def scratch_size(self) -> int:
        """<PREFIX>_SCRATCH_SIZE: bytes of that region (firmware may keep per-frame work buffers there)."""
        return free_region(self.plan, self.graph)[1]

    def write(self, directory) -> tuple[Path, Path]:
        """Write `<prefix>.h` and `<prefix>.c` into `directory`; returns their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        h, c = directory / f"{self.prefix}.h", directory / f"{self.prefix}.c"
        h.write_text(self.header)
        c.write_text(self.source)
        return h, c

    def table(self) -> list[dict]:
        """One row per layer: name, kind, kernel, in place, scratch bytes, MACs."""
        return [{"layer": op.name, "kind": op.kind, "kernel": self.choices[op.name].function or "(view)",
                 "in place": self.plan.inplace.get(op.name, ""), "scratch B": self.choices[op.name].scratch,
                 "MACs": op.macs, "note": self.choices[op.name].note} for op in self.graph.ops]


def runtime_sources() -> list[Path]:
    """The C runtime files to compile with generated models."""
    return [RUNTIME / name for name in RUNTIME_SOURCES]


def free_region(plan: Plan, graph: Graph) -> tuple[int, int]:
    """(offset, bytes) of the largest arena region outside the model's input buffer.

    Between inferences nothing in the arena is alive but the input being written, so firmware may
    keep per-frame work buffers (a front end's FFT buffer) there instead of in .bss of their own.
    model_run() overwrites the region, and it may hold the output: read the output first.
    """
    start = plan.offset(graph.input)
    end = start + graph.tensors[graph.input].nbytes
    end += -end % 4
    return max((0, start), (end, max(plan.arena_bytes - end, 0)), key=lambda region: region[1])


def plan_for(graph: Graph, kernels: str = "opt", strategy: str = "first_fit", inplace_depthwise: bool = True,
             inplace_pointwise: bool = True) -> tuple[Plan, dict]:
    """The memory plan with the scratch each chosen kernel needs, and the choices by op name.

    Which ops run in place is the planner's call and comes first (it depends on tensor lifetimes,
    not on scratch); the kernels are chosen for it; then the arena is planned with their scratch.
    """
    _, inplace, _ = make_buffers(graph, inplace_depthwise, inplace_pointwise)
    choices = K.choose_all(graph, kernels, inplace)
    plan = plan_memory(graph, strategy, inplace_depthwise, inplace_pointwise,
                       lambda graph, op, kind: choices[op.name].scratch)
    if plan.inplace != inplace:
        raise AssertionError(f"the plan runs {plan.inplace} in place, the kernels were chosen for {inplace}")
    return plan, choices


def _argument(role: str, graph: Graph, plan: Plan, op: Op, ident: str, arena: str) -> str:
    """One C argument of a layer's call (roles: kernel_spec.ARGUMENTS)."""
    if role.startswith("scratch"):
        if op.name not in plan.scratch:
            raise AssertionError(f"layer {op.name}: its kernel takes scratch but the plan gave it none")
        scratch = f"{arena} + {plan.scratch[op.name].offset}"
        return f"(int16_t *)({scratch})" if role == "scratch16" else scratch
    return {"params": lambda: f"&{ident}_params",
            "constants": lambda: f"{ident}_weight, {ident}_bias2, {ident}_m0, {ident}_e",
            "input": lambda: f"{arena} + {plan.offset(op.inputs[0])}",
            "input2": lambda: f"{arena} + {plan.offset(op.inputs[1])}",
            "output": lambda: f"{arena} + {plan.offset(op.output)}"}[role]()


def _call(graph: Graph, plan: Plan, op: Op, ident: str, choice: K.KernelChoice, arena: str,
          wrappers: specialise.Wrappers) -> str:
    """The layer's statement in model_run(): its kernel (or shape wrapper) with the spec's arguments."""
    spec = choice.spec
    if not spec.function:
        return f"/* {c_comment(op.name)}: a view of {c_comment(op.inputs[0])}, nothing to do */"
    name = wrappers.name_for(graph, op, choice) if spec.specialised else spec.function
    return f"{name}({', '.join(_argument(role, graph, plan, op, ident, arena) for role in spec.arguments)});"


def _interpreter_row(graph: Graph, plan: Plan, op: Op, ident: str, choice: K.KernelChoice) -> str:
    """The layer's row in the interpreter's table: opcode, params, in, in2, out, scratch, out bytes."""
    spec = choice.spec
    if spec.opcode is None:
        raise AssertionError(f"{spec.function} has no interpreter opcode (the interpreter runs no specialised kernels)")
    row = [spec.opcode, f"&{ident}_params" if spec.record else "0", plan.offset(op.inputs[0]),
           plan.offset(op.inputs[1]) if len(op.inputs) > 1 else 0, plan.offset(op.output),
           plan.scratch[op.name].offset if op.name in plan.scratch else 0, graph.tensors[op.output].nbytes]
    return "  {" + ", ".join(str(v) for v in row) + f"}},  /* {c_comment(op.name)} */"


def header_text(graph: Graph, plan: Plan, prefix: str) -> str:
    """`<prefix>.h`: the sizes, quantization and entry points firmware codes against."""
    P, p = prefix.upper(), prefix
    x, y = graph.tensors[graph.input], graph.tensors[graph.output]
    free_offset, free_bytes = free_region(plan, graph)
    defines = [
        ("INPUT_SIZE", x.nbytes, f"bytes: int8 input, HWC order {x.shape}"),
        ("OUTPUT_SIZE", y.nbytes, f"bytes: int8 output {y.shape}"),
        ("ARENA_SIZE", plan.arena_bytes, "bytes: every activation and scratch buffer"),
        ("NUM_LAYERS", len(graph.ops), "layers, each reported to the hook"),
        ("INPUT_SCALE", f"{x.scale!r}f", "real = scale * (q - zero_point)"),
        ("INPUT_ZERO_POINT", x.zero_point, ""),
        ("INPUT_INV_SCALE", f"{float(np.float32(1.0) / np.float32(x.scale))!r}f",
         "q = round(x * this) + zp, as quant.linear"),
        ("OUTPUT_SCALE", f"{y.scale!r}f", ""),
        ("OUTPUT_ZERO_POINT", y.zero_point, ""),
        ("INPUT_HEIGHT", x.shape[0] if len(x.shape) == 3 else 1, ""),
        ("INPUT_WIDTH", x.shape[1] if len(x.shape) == 3 else 1, ""),
        ("INPUT_CHANNELS", x.shape[-1], ""),
        ("MACS", graph.macs, "multiply-accumulates per inference"),
        ("SCRATCH_OFFSET", free_offset, "bytes: arena region the application may use"),
        ("SCRATCH_SIZE", free_bytes, "between inferences (not the input; see below)"),
    ]
    define_lines = "\n".join((f"#define {P}_{k} {v}".ljust(48) + f" /* {c} */" if c else f"#define {P}_{k} {v}")
                             for k, v, c in defines)
    return f"""/* {p}.h: generated by tinyml_utils.engine.codegen for "{c_comment(graph.name)}". Do not edit. */
#ifndef {P}_H
#define {P}_H
#include <stdint.h>

{define_lines}

extern const char *const {p}_layer_names[{P}_NUM_LAYERS];
/* {P}_SCRATCH_OFFSET/SIZE: while the input is written, the rest of the arena is free; firmware may
 * put per-frame work buffers there ({p}_scratch()). {p}_run() overwrites them; read the output first. */
int8_t *{p}_input(void);          /* where to write the int8 input, HWC order (inside the arena: no copy) */
int8_t *{p}_scratch(void);        /* {P}_SCRATCH_SIZE bytes of the arena, free between inferences */
const int8_t *{p}_output(void);   /* the int8 output after {p}_run() */
void {p}_run(void);               /* one inference; the input buffer may be overwritten */

#ifdef {P}_LAYER_HOOK             /* defined by firmware for per-layer marks and debug dumps */
void {p}_layer_hook(int layer, const int8_t *output, int32_t bytes);  /* called after each layer, HWC */
#endif
#endif
"""


def _layers(graph: Graph, plan: Plan, choices: dict, prefix: str, style: str):
    """The per-layer parts of model.c: (constants text per layer, their bytes, one call or interpreter row
    per layer, the shape wrappers the calls use)."""
    P, arena = prefix.upper(), f"{prefix}_arena"
    constants, const_bytes, calls, wrappers = [], 0, [], specialise.Wrappers(prefix)
    for i, op in enumerate(graph.ops):
        ident, choice = f"{prefix}_l{i}_{c_ident(op.name)}", choices[op.name]
        text, nbytes = layer_constants(graph, op, ident, choice)
        const_bytes += nbytes
        constants.append(f"/* ---- layer {i}, {describe(graph, op)} ---- */\n{text}")
        if style == "interpreter":
            calls.append(_interpreter_row(graph, plan, op, ident, choice))
        else:
            calls.append(f"  {_call(graph, plan, op, ident, choice, arena, wrappers)}\n"
                         f"  {P}_HOOK({i}, {arena} + {plan.offset(op.output)}, {graph.tensors[op.output].nbytes});")
    return constants, const_bytes, calls, wrappers


def _run_function(calls: list, prefix: str, style: str) -> str:
    """model_run(): the calls in order, or the interpreter's table and the loop that runs it."""
    P, p, arena = prefix.upper(), prefix, f"{prefix}_arena"
    if style != "interpreter":
        return f"void {p}_run(void) {{\n" + "\n".join(calls) + "\n}\n"
    return (f"#include \"tm_interp.h\"\n\nstatic const tm_layer {p}_layers[{P}_NUM_LAYERS] = {{\n"
            f"  /* op, params, in, in2, out, scratch, out bytes */\n" + "\n".join(calls) + "\n};\n\n"
            f"void {p}_run(void) {{\n#ifdef {P}_LAYER_HOOK\n  tm_interpret({p}_layers, {P}_NUM_LAYERS, {arena}, "
            f"{p}_layer_hook);\n#else\n  tm_interpret({p}_layers, {P}_NUM_LAYERS, {arena}, 0);\n#endif\n}}\n")


def source_text(graph: Graph, plan: Plan, choices: dict, kernels: str, prefix: str, style: str) -> tuple[str, int]:
    """`<prefix>.c` and the bytes of its constant arrays."""
    P, p, arena = prefix.upper(), prefix, f"{prefix}_arena"
    constants, const_bytes, calls, wrappers = _layers(graph, plan, choices, prefix, style)
    names = ", ".join(f'"{c_string(op.name)}"' for op in graph.ops)
    inplace = ", ".join(sorted(set(plan.inplace.values()))) or "none"
    kernel_text = wrappers.source()
    if kernel_text:
        kernel_text = f"/* ---- kernels specialised for this model's shapes (tm_fast.h) ---- */\n{kernel_text}\n"
    return f"""/* {p}.c: generated by tinyml_utils.engine.codegen for "{c_comment(graph.name)}". Do not edit.
 * {len(graph.ops)} layers, {graph.macs:,} MACs; kernels: {kernels}; arena: {plan.strategy} plan,
 * in place: {inplace}, {plan.arena_bytes:,} bytes; constants: {const_bytes:,} bytes. */
{specialise.PRAGMA_BEGIN}#include "{p}.h"
#include "tm_runtime.h"
#include "tm_fast.h"

#ifdef {P}_LAYER_HOOK
#define {P}_HOOK(layer, data, bytes) {p}_layer_hook((layer), (data), (bytes))
#else
#define {P}_HOOK(layer, data, bytes) ((void)0)
#endif

static int8_t {arena}[{P}_ARENA_SIZE] __attribute__((aligned(8)));

const char *const {p}_layer_names[{P}_NUM_LAYERS] = {{{names}}};

{chr(10).join(constants)}
int8_t *{p}_input(void) {{ return {arena} + {plan.offset(graph.input)}; }}

int8_t *{p}_scratch(void) {{ return {arena} + {P}_SCRATCH_OFFSET; }}

const int8_t *{p}_output(void) {{ return {arena} + {plan.offset(graph.output)}; }}

{kernel_text}{_run_function(calls, prefix, style)}{specialise.PRAGMA_END}""", const_bytes


def _check_options(kernels: str, prefix: str, style: str) -> None:
    if style not in ("direct", "interpreter"):
        raise ValueError(f"style must be 'direct' or 'interpreter', got {style!r}")
    if kernels not in K.KERNEL_SETS:
        raise ValueError(f"kernels must be one of {K.KERNEL_SETS}, got {kernels!r}")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", prefix):
        raise ValueError(f"prefix must be a lower-case C identifier, got {prefix!r}")


def generate(model: IntModel | Graph, kernels: str = "opt", prefix: str = "model", strategy: str = "first_fit",
             inplace_depthwise: bool = True, inplace_pointwise: bool = True,
             max_arena_bytes: int | None = None, style: str = "direct") -> GeneratedModel:
    """Generate `<prefix>.h` and `<prefix>.c` for a model (an IntModel or an engine Graph).

    `kernels` "opt" (specialised per shape where possible), "generic" (tm_opt.c) or "ref";
    `strategy` and the in-place switches go to the planner; with `max_arena_bytes`, an arena
    larger than that raises `ModelTooLarge` saying by how much. `style` "direct" (one call per
    layer) or "interpreter" (a layer table run by `tm_interpret`, which links every kernel: for
    measuring what an interpreter costs; it has no specialised kernels, so "opt" means "generic").
    """
    _check_options(kernels, prefix, style)
    if style == "interpreter" and kernels == "opt":
        kernels = "generic"
    graph = model if isinstance(model, Graph) else from_intmodel(model)
    plan, choices = plan_for(graph, kernels, strategy, inplace_depthwise, inplace_pointwise)
    if max_arena_bytes is not None and plan.arena_bytes > max_arena_bytes:
        raise ModelTooLarge(f"{graph.name} needs {plan.arena_bytes:,} bytes of arena, "
                            f"{plan.arena_bytes - max_arena_bytes:,} more than the {max_arena_bytes:,} available "
                            f"({plan.strategy} plan, in place: {sorted(set(plan.inplace.values())) or 'none'})")
    source, const_bytes = source_text(graph, plan, choices, kernels, prefix, style)
    return GeneratedModel(prefix, header_text(graph, plan, prefix), source, graph, plan, choices, kernels, style,
                          const_bytes, [op.macs for op in graph.ops])
