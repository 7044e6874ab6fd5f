"""Generate `model.c` / `model.h`: the whole network as constant arrays, one arena and one call per layer.

What the generated code contains, and why (TinyEngine's recipe):

* every weight, bias, multiplier and shift as a ``static const`` array: the linker puts them in
  flash, and nothing is parsed at run time;
* one ``static int8_t`` arena of the size the planner computed: no heap, no allocator, and the
  peak memory is known before the program runs;
* `model_run()`: one call per layer to the kernel chosen for it (`kernels.choose`), with every
  shape and arena offset a constant. A layer that moves no data (a flatten view) costs nothing;
* with ``kernels="opt"``, kernels compiled for each layer's shape (`specialise.py`).

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
from .ir import Graph, Op, from_intmodel
from .planner import Plan, plan_memory

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


def c_ident(name: str) -> str:
    """A C identifier from a tensor or layer name."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII)
    return ident if re.match(r"[A-Za-z_]", ident) else f"_{ident}"


def c_comment(text: str) -> str:
    """`text` made safe inside a /* ... */ comment: a name with "*/" would end the comment early and
    one with "/*" trips gcc's -Wcomment (an error under -Werror). Other text is unchanged."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return text.replace("*/", "* /").replace("/*", "/ *")


def c_string(text: str) -> str:
    """`text` as the body of a C string literal: backslashes, quotes, "?" (trigraphs: "??/" is a backslash
    under -std=c99) and non-printable characters escaped."""
    out = []
    for ch in str(text):
        if ch in '\\"?':
            out.append("\\" + ch)
        elif ch.isascii() and ch.isprintable():
            out.append(ch)
        else:                                  # UTF-8 bytes as octal escapes (hex would swallow following digits)
            out.extend(f"\\{b:03o}" for b in ch.encode())
    return "".join(out)


def c_array(ctype: str, name: str, values, per_line: int = 20) -> str:
    """`static const <ctype> name[n] = {...};` with `per_line` values a line."""
    values = [int(v) for v in np.ravel(values)]
    if not values:
        raise ValueError(f"{name}: an empty C array")
    lines = [", ".join(str(v) for v in values[i:i + per_line]) for i in range(0, len(values), per_line)]
    body = ",\n  ".join(lines)
    return f"static const {ctype} {name}[{len(values)}] = {{\n  {body}\n}};\n"


def _conv_params(graph: Graph, op: Op, ident: str, choice: K.KernelChoice) -> str:
    if op.kind == "fully_connected":     # a 1x1 convolution on a 1x1 map
        (h, w, c_in), (oh, ow, c_out) = (1, 1, *graph.tensors[op.inputs[0]].shape), (1, 1, *graph.tensors[op.output].shape)
        (kh, kw), (sh, sw), (ph, pw), groups = (1, 1), (1, 1), (0, 0), 1
    else:
        (h, w, c_in), (oh, ow, c_out) = graph.tensors[op.inputs[0]].shape, graph.tensors[op.output].shape
        (kh, kw), (sh, sw), (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
        groups = op.attrs["groups"]
    z_in, z_out = graph.tensors[op.inputs[0]].zero_point, graph.tensors[op.output].zero_point
    bias = f"{ident}_bias_folded" if choice.fold_bias else f"{ident}_bias"
    return (f"static const tm_conv_params {ident}_params = {{\n"
            f"  .in_h = {h}, .in_w = {w}, .in_c = {c_in}, .out_h = {oh}, .out_w = {ow}, .out_c = {c_out},\n"
            f"  .kernel_h = {kh}, .kernel_w = {kw}, .stride_h = {sh}, .stride_w = {sw}, "
            f".pad_h = {ph}, .pad_w = {pw}, .groups = {groups},\n"
            f"  .in_zero_point = {z_in}, .out_zero_point = {z_out}, "
            f".act_min = {op.attrs['act_min']}, .act_max = {op.attrs['act_max']},\n"
            f"  .weight = {ident}_weight, .bias = {bias}, .multiplier = {ident}_multiplier, "
            f".shift = {ident}_shift,\n}};\n")


def _layer_constants(graph: Graph, op: Op, ident: str, choice: K.KernelChoice) -> tuple[str, int]:
    """C text of one layer's constant arrays and parameter struct, and the arrays' bytes."""
    if not choice.function:
        return "", 0
    if choice.specialised:
        return specialise.constants(graph, op, ident, choice, c_array)
    if op.kind in ("avgpool", "maxpool"):
        (h, w, c), (oh, ow, _) = graph.tensors[op.inputs[0]].shape, graph.tensors[op.output].shape
        (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["stride"]
        return (f"static const tm_pool_params {ident}_params = {{ .in_h = {h}, .in_w = {w}, .channels = {c}, "
                f".out_h = {oh}, .out_w = {ow}, .kernel_h = {kh}, .kernel_w = {kw}, "
                f".stride_h = {sh}, .stride_w = {sw} }};\n"), 0
    if op.kind == "flatten":
        h, w, c = graph.tensors[op.inputs[0]].shape
        return f"static const tm_flatten_params {ident}_params = {{ .h = {h}, .w = {w}, .c = {c} }};\n", 0
    if op.kind == "add":
        a = op.attrs
        za, zb = (graph.tensors[t].zero_point for t in op.inputs)
        return (f"static const tm_add_params {ident}_params = {{\n"
                f"  .size = {graph.tensors[op.output].nbytes}, .a_zero_point = {za}, .b_zero_point = {zb}, "
                f".out_zero_point = {graph.tensors[op.output].zero_point}, .left_shift = {a['left_shift']},\n"
                f"  .a_multiplier = {a['multiplier_a']}, .a_shift = {a['shift_a']}, "
                f".b_multiplier = {a['multiplier_b']}, .b_shift = {a['shift_b']},\n"
                f"  .out_multiplier = {a['multiplier_out']}, .out_shift = {a['shift_out']}, "
                f".act_min = {a['act_min']}, .act_max = {a['act_max']},\n}};\n"), 0
    weight = K.weight_array(op, choice.weights)
    bias = (K.folded_bias(op, graph.tensors[op.inputs[0]].zero_point) if choice.fold_bias
            else op.arrays["bias"]).astype(np.int64)
    text = (c_array("int8_t", f"{ident}_weight", weight) +
            c_array("int32_t", f"{ident}_bias_folded" if choice.fold_bias else f"{ident}_bias", bias, 8) +
            c_array("int32_t", f"{ident}_multiplier", op.arrays["multiplier"], 8) +
            c_array("int32_t", f"{ident}_shift", op.arrays["shift"], 20) +
            _conv_params(graph, op, ident, choice))
    return text, weight.size + 4 * 3 * bias.size


def _describe(graph: Graph, op: Op) -> str:
    ins = " + ".join(str(graph.tensors[t].shape) for t in op.inputs)
    extra = ""
    if "kernel" in op.attrs:
        extra = f" {op.attrs['kernel'][0]}x{op.attrs['kernel'][1]} stride {op.attrs['stride']}"
        if "padding" in op.attrs:
            extra += f" padding {op.attrs['padding']}"
    return f"{c_comment(op.name)}: {op.kind}{extra}, {ins} -> {graph.tensors[op.output].shape}, {op.macs:,} MACs"


def _call(graph: Graph, plan: Plan, op: Op, ident: str, choice: K.KernelChoice, arena: str,
          wrappers: specialise.Wrappers) -> str:
    at = lambda t: f"{arena} + {plan.offset(t)}"  # noqa: E731
    f = choice.function
    scratch = f"{arena} + {plan.scratch[op.name].offset}" if op.name in plan.scratch else None
    if not f:
        return f"/* {op.name}: a view of {op.inputs[0]}, nothing to do */"
    if choice.specialised:
        return specialise.call(wrappers, graph, op, ident, choice, at, scratch)
    if f == "tm_depthwise_opt":
        return f"{f}(&{ident}_params, {at(op.inputs[0])}, {at(op.output)}, (int16_t *)({scratch}));"
    if f.endswith("_inplace_ref") or f.endswith("_inplace_opt"):
        return f"{f}(&{ident}_params, {at(op.output)}, {scratch});"
    if f in ("tm_conv2d_opt", "tm_pointwise_opt"):
        return f"{f}(&{ident}_params, {at(op.inputs[0])}, {at(op.output)}, {scratch});"
    if f == "tm_add_ref":
        return f"{f}(&{ident}_params, {at(op.inputs[0])}, {at(op.inputs[1])}, {at(op.output)});"
    return f"{f}(&{ident}_params, {at(op.inputs[0])}, {at(op.output)});"


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
    """The memory plan with the scratch each chosen kernel needs, and the choices by op name."""
    choices = {}

    def scratch(graph, op, inplace):
        choices[op.name] = K.choose(graph, op, kernels, inplace)
        return choices[op.name].scratch

    plan = plan_memory(graph, strategy, inplace_depthwise, inplace_pointwise, scratch)
    return plan, choices


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
    if style not in ("direct", "interpreter"):
        raise ValueError(f"style must be 'direct' or 'interpreter', got {style!r}")
    if kernels not in K.KERNEL_SETS:
        raise ValueError(f"kernels must be one of {K.KERNEL_SETS}, got {kernels!r}")
    if style == "interpreter" and kernels == "opt":
        kernels = "generic"
    graph = model if isinstance(model, Graph) else from_intmodel(model)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", prefix):
        raise ValueError(f"prefix must be a lower-case C identifier, got {prefix!r}")
    plan, choices = plan_for(graph, kernels, strategy, inplace_depthwise, inplace_pointwise)
    if max_arena_bytes is not None and plan.arena_bytes > max_arena_bytes:
        raise ModelTooLarge(f"{graph.name} needs {plan.arena_bytes:,} bytes of arena, "
                            f"{plan.arena_bytes - max_arena_bytes:,} more than the {max_arena_bytes:,} available "
                            f"({plan.strategy} plan, in place: {sorted(set(plan.inplace.values())) or 'none'})")
    P, p = prefix.upper(), prefix
    arena = f"{p}_arena"
    x, y = graph.tensors[graph.input], graph.tensors[graph.output]
    names = ", ".join(f'"{c_string(op.name)}"' for op in graph.ops)
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
        ("SCRATCH_OFFSET", free_region(plan, graph)[0], "bytes: arena region the application may use"),
        ("SCRATCH_SIZE", free_region(plan, graph)[1], "between inferences (not the input; see below)"),
    ]
    define_lines = "\n".join((f"#define {P}_{k} {v}".ljust(48) + f" /* {c} */" if c else f"#define {P}_{k} {v}")
                              for k, v, c in defines)
    header = f"""/* {p}.h: generated by tinyml_utils.engine.codegen for "{c_comment(graph.name)}". Do not edit. */
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
    body, const_bytes, calls = [], 0, []
    wrappers = specialise.Wrappers(p)
    for i, op in enumerate(graph.ops):
        ident = f"{p}_l{i}_{c_ident(op.name)}"
        choice = choices[op.name]
        text, nbytes = _layer_constants(graph, op, ident, choice)
        const_bytes += nbytes
        body.append(f"/* ---- layer {i}, {_describe(graph, op)} ---- */\n{text}")
        out = graph.tensors[op.output]
        if style == "interpreter":
            fn = choice.function
            row = [f"TM_{fn[3:].upper()}" if fn else "TM_VIEW", f"&{ident}_params" if fn else "0",
                   plan.offset(op.inputs[0]), plan.offset(op.inputs[1]) if len(op.inputs) > 1 else 0,
                   plan.offset(op.output), plan.scratch[op.name].offset if op.name in plan.scratch else 0, out.nbytes]
            calls.append("  {" + ", ".join(str(v) for v in row) + f"}},  /* {c_comment(op.name)} */")
        else:
            calls.append(f"  {_call(graph, plan, op, ident, choice, arena, wrappers)}\n"
                         f"  {P}_HOOK({i}, {arena} + {plan.offset(op.output)}, {out.nbytes});")
    inplace = ", ".join(sorted(set(plan.inplace.values()))) or "none"
    if style == "interpreter":
        run = (f"#include \"tm_interp.h\"\n\nstatic const tm_layer {p}_layers[{P}_NUM_LAYERS] = {{\n"
               f"  /* op, params, in, in2, out, scratch, out bytes */\n" + "\n".join(calls) + "\n};\n\n"
               f"void {p}_run(void) {{\n#ifdef {P}_LAYER_HOOK\n  tm_interpret({p}_layers, {P}_NUM_LAYERS, {arena}, "
               f"{p}_layer_hook);\n#else\n  tm_interpret({p}_layers, {P}_NUM_LAYERS, {arena}, 0);\n#endif\n}}\n")
    else:
        run = f"void {p}_run(void) {{\n" + "\n".join(calls) + "\n}\n"
    kernel_text = wrappers.source()
    if kernel_text:
        kernel_text = f"/* ---- kernels specialised for this model's shapes (tm_fast.h) ---- */\n{kernel_text}\n"
    source = f"""/* {p}.c: generated by tinyml_utils.engine.codegen for "{c_comment(graph.name)}". Do not edit.
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

{chr(10).join(body)}
int8_t *{p}_input(void) {{ return {arena} + {plan.offset(graph.input)}; }}

int8_t *{p}_scratch(void) {{ return {arena} + {P}_SCRATCH_OFFSET; }}

const int8_t *{p}_output(void) {{ return {arena} + {plan.offset(graph.output)}; }}

{kernel_text}{run}{specialise.PRAGMA_END}"""
    return GeneratedModel(prefix, header, source, graph, plan, choices, kernels, style, const_bytes,
                          [op.macs for op in graph.ops])
