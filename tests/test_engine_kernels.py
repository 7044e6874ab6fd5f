"""The kernel registry against the C it describes, and each optimised kernel against its reference twin.

* every spec names a C function that exists, the interpreter's enum and switch agree with the
  specs' opcodes and arguments, and the Python constants of the specialised kernels are the C's;
* each optimised kernel (tm_opt.c, tm_fast.h) is called directly, beside the reference kernel the
  "ref" set picks for the same op, on random shapes and data within its preconditions: same bytes;
* debug builds (-DTM_DEBUG): the deployed model and random graphs run with every precondition
  asserted in C (so the generator's Python checks imply the C ones), and a kernel called outside
  its preconditions stops.
"""
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tinyml_utils.engine import codegen, hostbuild, kernels, kernels_fast, kernels_opt, specialise
from tinyml_utils.engine.ir import KINDS, Graph, Op, Tensor, to_device_layout
from tinyml_utils.engine.layer_constants import layer_constants
from tinyml_utils.quant import interpreter
from tinyml_utils.quant.fixedpoint import quantize_multiplier
from tinyml_utils.testing.random_graphs import random_inputs, random_intmodel

RUNTIME = codegen.RUNTIME
CASES_PER_KERNEL = 8
OPTIMISED = kernels_opt.SPECS + kernels_fast.SPECS
#: How the interpreter's switch (tm_interp.c) passes each argument role of a spec.
INTERPRETER_ARGUMENTS = {"params": "p", "input": "in", "input2": "arena + l->in2", "output": "out",
                         "scratch": "scratch", "scratch16": "(int16_t *)(void *)scratch"}


# ---- the registry against the C ----

def test_every_spec_names_a_c_kernel_and_every_kind_has_a_reference_kernel():
    declared = (RUNTIME / "tm_runtime.h").read_text()
    templates = (RUNTIME / "tm_fast.h").read_text() + (RUNTIME / "tm_fast_dw.h").read_text()
    for spec in kernels.SPECS.values():
        if spec.specialised:
            assert re.search(rf"^TM_FAST void {spec.function}\(", templates, re.M), spec.function
        elif spec.function:
            assert re.search(rf"^void {spec.function}\(", declared, re.M), spec.function
    for kind in KINDS:
        op = Op(kind, "x", ["in"], "out")
        modes = [None, "depthwise"] if kind == "depthwise" else [None, "pointwise"] if kind == "pointwise" else [None]
        for inplace in modes:
            assert any(s.runs(op, inplace) for s in kernels.REFERENCE.specs), (kind, inplace)


def _enum_and_switch():
    enum = re.search(r"enum tm_op \{(.*?)\};", (RUNTIME / "tm_interp.h").read_text(), re.S).group(1)
    names = [n.strip() for n in enum.split(",") if n.strip()]
    cases = re.findall(r"case (TM_\w+):\s*(?:(\w+)\((.*?)\);\s*)?break;", (RUNTIME / "tm_interp.c").read_text())
    return names, {op: (fn, [a.strip() for a in args.split(",")] if args else []) for op, fn, args in cases}


def test_interpreter_enum_and_switch_match_the_specs():
    names, switch = _enum_and_switch()
    with_opcode = [s for s in kernels.SPECS.values() if s.opcode]
    assert sorted(names) == sorted(s.opcode for s in with_opcode), "enum tm_op and the specs' opcodes differ"
    assert sorted(switch) == sorted(names), "the switch in tm_interp.c must have one case per enum value"
    for spec in with_opcode:
        expected = (spec.function, [INTERPRETER_ARGUMENTS[role] for role in spec.arguments])
        assert switch[spec.opcode] == expected, f"{spec.opcode}: the switch calls {switch[spec.opcode]}"
    assert all(s.specialised for s in kernels.SPECS.values() if not s.opcode), "only tm_fast.h lacks opcodes"


def test_specialised_constants_match_tm_fast_h():
    fast_h = (RUNTIME / "tm_fast.h").read_text()
    assert int(re.search(r"#define TM_FAST_PIXELS (\d+)", fast_h).group(1)) == kernels_fast.FAST_PIXELS
    assert int(re.search(r"tm_exponents_in\(\(e\), \(channels\), 1, (\d+)\)", fast_h).group(1)) == \
        kernels_fast.MAX_FAST_SHIFT


# ---- each optimised kernel against its reference twin ----

def _tensor(name, shape, rng, like=None):
    zero_point = like.zero_point if like else int(rng.integers(-128, 128))
    nchw = (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape
    return Tensor(name, tuple(shape), like.scale if like else 0.05, zero_point, nchw)


def _requant_arrays(rng, k, c_out, weight):
    """Weights, a small bias and multipliers that spread outputs over about +-64 steps (no saturation)."""
    spread = 64.0 / (np.sqrt(k) * 60.0 * 60.0 + 1.0)
    pairs = [quantize_multiplier(float(m)) for m in spread * 2.0 ** rng.uniform(-2, 2, c_out)]
    return {"weight": weight, "bias": rng.integers(-2**12, 2**12, c_out).astype(np.int32),
            "multiplier": np.array([p[0] for p in pairs], np.int32), "shift": np.array([p[1] for p in pairs], np.int32)}


def _clamp(rng, zero_point):
    r = rng.random()
    return (-128, 127) if r < 0.4 else (max(-128, zero_point), 127) if r < 0.8 else (max(-128, zero_point), 100)


def _random_op(kind, rng, inplace):
    """A one-op graph of `kind` with random shapes and data (same shape in and out when `inplace`)."""
    h, w = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    c = int(rng.integers(1, 40)) if kind in ("pointwise", "fully_connected") else int(rng.integers(1, 9))
    if kind == "fully_connected":
        c_out = int(rng.integers(1, 20))
        x, y = _tensor("x", (c,), rng), _tensor("y", (c_out,), rng)
        weight = rng.integers(-128, 128, (c_out, c)).astype(np.int8)
        attrs, arrays = {}, _requant_arrays(rng, c, c_out, weight)
    elif kind == "avgpool":
        (kh, kw), (sh, sw) = (int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))), tuple(rng.integers(1, 3, 2))
        x = _tensor("x", (h, w, c), rng)
        y = _tensor("y", ((h - kh) // sh + 1, (w - kw) // sw + 1, c), rng, like=x)
        pool = Op(kind, "op", ["x"], "y", {"kernel": (kh, kw), "stride": (int(sh), int(sw))})
        return Graph("case", {"x": x, "y": y}, [pool], "x", "y")
    else:
        c = max(c, 2) if kind == "depthwise" else c
        (kh, kw), (sh, sw), (ph, pw) = (1, 1), (1, 1), (0, 0)
        if kind != "pointwise":
            ph, pw = int(rng.integers(0, 3)), int(rng.integers(0, 3))
            kh, kw = int(rng.integers(1, min(5, h + 2 * ph) + 1)), int(rng.integers(1, min(5, w + 2 * pw) + 1))
            sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if inplace or (kind == "depthwise" and rng.random() < 0.6):
            (kh, kw), (sh, sw), (ph, pw) = ((3, 3), (1, 1), (1, 1)) if kind == "depthwise" else ((1, 1), (1, 1), (0, 0))
        c_out = c if kind == "depthwise" or inplace else int(rng.integers(1, 12))
        groups = c if kind == "depthwise" else 1
        x = _tensor("x", (h, w, c), rng)
        y = _tensor("y", ((h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1, c_out), rng)
        weight = rng.integers(-128, 128, (c_out, c // groups, kh, kw)).astype(np.int8)
        attrs = {"kernel": (kh, kw), "stride": (sh, sw), "padding": (ph, pw), "groups": groups}
        arrays = _requant_arrays(rng, c // groups * kh * kw, c_out, weight)
    attrs["act_min"], attrs["act_max"] = _clamp(rng, y.zero_point)
    return Graph("case", {"x": x, "y": y}, [Op(kind, "op", ["x"], "y", attrs, arrays)], "x", "y")


def _cases(spec, kernel_set, rng, count):
    """(graph, in place) pairs for which `kernel_set` picks `spec`: random ops within its preconditions."""
    modes = {"never": [False], "only": [True], "either": [False, True]}[spec.in_place]
    found, tries = [], 0
    while len(found) < count:
        tries += 1
        assert tries < 100 * count, f"could not draw ops for {spec.function}"
        kind, inplace = spec.kinds[int(rng.integers(len(spec.kinds)))], modes[len(found) % len(modes)]
        if inplace and kind not in ("depthwise", "pointwise"):
            continue
        graph = _random_op(kind, rng, inplace)
        plan, choices = codegen.plan_for(graph, kernel_set, "naive", inplace, inplace)
        if choices["op"].function == spec.function and bool(plan.inplace) == inplace:
            found.append((graph, inplace))
    return found


def _case_code(n, graph, inplace, kernel_set, wrappers):
    """C for one case: the kernel of `kernel_set` (suffix o) and of "ref" (suffix r) on one input, in
    arenas of their own (the input copied to where each plan put it, the rest junk)."""
    constants, body = [], []
    for suffix, kset in (("o", kernel_set), ("r", "ref")):
        plan, choices = codegen.plan_for(graph, kset, "naive", inplace, inplace)
        op, ident, arena = graph.ops[0], f"c{n}{suffix}", f"arena{n}{suffix}"
        constants.append(layer_constants(graph, op, ident, choices["op"])[0])
        constants.append(f"static int8_t {arena}[{plan.arena_bytes + 4}] __attribute__((aligned(8)));\n")
        body += [f"  junk({arena}, {plan.arena_bytes + 4});",
                 f"  copy({arena} + {plan.offset('x')}, input, {graph.tensors['x'].nbytes});",
                 f"  {codegen._call(graph, plan, op, ident, choices['op'], arena, wrappers)}",
                 f"  fwrite({arena} + {plan.offset('y')}, 1, {graph.tensors['y'].nbytes}, stdout);"]
    return "".join(constants), f"static void case{n}(const int8_t *input) {{\n" + "\n".join(body) + "\n}\n"


HARNESS = r"""
#include <stdio.h>
#include <stdint.h>
#include "tm_runtime.h"
#include "tm_fast.h"
static void junk(int8_t *p, int32_t n) { for (int32_t i = 0; i < n; i++) p[i] = (int8_t)(0x5A ^ (i * 7)); }
static void copy(int8_t *dst, const int8_t *src, int32_t n) { for (int32_t i = 0; i < n; i++) dst[i] = src[i]; }
%(code)s
int main(void) {
  static int8_t input[%(max_input)d];
%(calls)s
  return 0;
}
"""


def _compile_and_run(code: str, stdin: bytes, flags=(), sources=()) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "main.c", Path(tmp) / "main"
        src.write_text(code)
        subprocess.run([hostbuild.host_compiler(), *hostbuild.HOST_CFLAGS, *flags, f"-I{RUNTIME}", str(src),
                        *map(str, sources), "-o", str(exe)], check=True)
        return subprocess.run([str(exe)], input=stdin, capture_output=True)


@pytest.mark.slow
def test_each_optimised_kernel_matches_its_reference_twin():
    rng = np.random.default_rng(11)
    cases = [(spec, graph, inplace) for spec in OPTIMISED
             for graph, inplace in _cases(spec, "opt" if spec.specialised else "generic", rng, CASES_PER_KERNEL)]
    wrappers, constants, functions, calls, stdin = specialise.Wrappers("h"), [], [], [], b""
    for n, (spec, graph, inplace) in enumerate(cases):
        const, function = _case_code(n, graph, inplace, "opt" if spec.specialised else "generic", wrappers)
        constants.append(const)
        functions.append(function)
        calls.append(f"  if (fread(input, 1, {graph.tensors['x'].nbytes}, stdin) != {graph.tensors['x'].nbytes}) "
                     f"return 2;\n  case{n}(input);")
        stdin += rng.integers(-128, 128, graph.tensors["x"].nbytes).astype(np.int8).tobytes()
    code = HARNESS % {"code": "".join(constants) + wrappers.source() + "".join(functions), "calls": "\n".join(calls),
                      "max_input": max(g.tensors["x"].nbytes for _, g, _ in cases)}
    done = _compile_and_run(code, stdin, ["-O2"], [RUNTIME / "tm_ref.c", RUNTIME / "tm_opt.c"])
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out, pos = np.frombuffer(done.stdout, np.int8), 0
    for spec, graph, inplace in cases:
        n = graph.tensors["y"].nbytes
        got, expected = out[pos:pos + n], out[pos + n:pos + 2 * n]
        pos += 2 * n
        op = graph.ops[0]
        assert np.array_equal(got, expected), (f"{spec.function} differs from its reference twin on {op.kind} "
                                               f"{graph.tensors['x'].shape} -> {graph.tensors['y'].shape} "
                                               f"{op.attrs}, in place {inplace}")
    assert pos == len(out)
    assert {s.function for s, _, _ in cases} == {s.function for s in OPTIMISED}
    assert _matrix_corners(cases) == {f"K % 4 == {r}" for r in range(4)} | {"C_out odd", "C_out even", "in place"}


def _matrix_corners(cases) -> set:
    """The tails of the matrix kernels the cases reach: K not a multiple of 4, an odd last channel."""
    seen = set()
    for spec, graph, inplace in cases:
        if spec.weights in ("pairs", "words"):
            weight = graph.ops[0].arrays["weight"]
            seen |= {f"K % 4 == {weight[0].size % 4}", f"C_out {'odd' if len(weight) % 2 else 'even'}"}
            seen |= {"in place"} if inplace else set()
    return seen


# ---- debug builds ----

@pytest.mark.slow
def test_debug_build_runs_the_deployed_model_and_random_graphs():
    from tinyml_utils.deployed import get_int8_baseline
    from tinyml_utils.kws_data import kws_features

    int_model = get_int8_baseline()
    x_q = interpreter.quantize_input(int_model, kws_features("synthetic")["test"][0][:6])
    expected = to_device_layout(interpreter.run(int_model, x_q), int_model.output_spec.shape)
    x_dev = to_device_layout(x_q, int_model.input_spec.shape)
    gens = [codegen.generate(int_model, kernels=k, prefix=f"kws_{k}") for k in ("generic", "opt")]
    for got in hostbuild.run_host(gens, [x_dev] * 2, flags=["-DTM_DEBUG"], model_flags=["-O2", "-DTM_DEBUG"]):
        np.testing.assert_array_equal(got, expected)
    # whatever the generator accepts for an optimised kernel, the kernel's asserts accept too
    rng = np.random.default_rng(12)
    models = [random_intmodel(rng) for _ in range(120)]
    gens = [codegen.generate(m, kernels=("generic", "opt")[i % 2], prefix=f"g{i}", inplace_depthwise=bool(i % 3),
                             inplace_pointwise=bool(i % 4)) for i, m in enumerate(models)]
    xs = [random_inputs(m, 2, rng) for m in models]
    got = hostbuild.run_host(gens, [to_device_layout(x, m.input_spec.shape) for x, m in zip(xs, models)],
                             flags=["-DTM_DEBUG"], model_flags=["-O0", "-DTM_DEBUG"])
    for g, m, x, y in zip(gens, models, xs, got):
        assert np.array_equal(y, to_device_layout(interpreter.run(m, x), m.output_spec.shape)), g.prefix


OUTSIDE_PRECONDITIONS = r"""
#include <stdint.h>
#include "tm_runtime.h"
#include "tm_fast.h"
int main(void) {
  static const int8_t weight[4] = {1, 2, 3, 4};
  static const int32_t bias[1] = {0}, multiplier[1] = {1 << 30}, shift[1] = {%(shift)d};
  static const int32_t words[1] = {0x04030201}, bias2[1] = {0}, m0[1] = {1 << 30};
  static const uint8_t e[1] = {%(e)d};
  static int8_t input[4], output[4], scratch[64];
  const tm_conv_params p = {.in_h = 1, .in_w = 1, .in_c = 4, .out_h = 1, .out_w = 1, .out_c = 1, .kernel_h = 1,
                            .kernel_w = 1, .stride_h = 1, .stride_w = 1, .groups = 1, .act_min = -128, .act_max = 127,
                            .weight = weight, .bias = bias, .multiplier = multiplier, .shift = shift};
  tm_pointwise_opt(&p, input, output, scratch);
  tm_fast_pointwise(input, output, (int32_t *)(void *)scratch, words, bias2, m0, e, 1, 4, 1, 0, -128, 127);
  return output[0] == 0 ? 0 : 3;
}
"""


@pytest.mark.parametrize("shift, e, broken", [(-1, 1, None), (0, 1, "tm_shifts_in"), (-1, 23, "tm_exponents_in")])
def test_debug_build_stops_a_kernel_called_outside_its_preconditions(shift, e, broken):
    code = OUTSIDE_PRECONDITIONS % {"shift": shift, "e": e}
    sources = [RUNTIME / "tm_opt.c"]
    debug = _compile_and_run(code, b"", ["-O1", "-DTM_DEBUG"], sources)
    if broken is None:
        assert debug.returncode == 0, debug.stderr.decode()
    else:
        assert debug.returncode != 0 and broken in debug.stderr.decode(), debug.stderr.decode()
        assert _compile_and_run(code, b"", ["-O1"], sources).returncode == 0, "release builds check nothing"
