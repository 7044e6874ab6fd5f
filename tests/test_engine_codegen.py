"""Generated C against the integer interpreter, bit for bit: random graphs on the host and on QEMU,
the DS-CNN-S baseline on test clips, the requantization arithmetic, the generated API."""
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_arm
from tinyml_utils import emulator
from tinyml_utils.engine import codegen, hostbuild
from tinyml_utils.mcu import models_on_device
from tinyml_utils.engine.ir import to_device_layout
from tinyml_utils.testing.random_graphs import random_inputs, random_intmodel
from tinyml_utils.quant import interpreter
from tinyml_utils.quant.fixedpoint import INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier

NUM_HOST_GRAPHS = 1200
NUM_QEMU_GRAPHS = 120          # with specialised kernels, among 200 (the others: generic kernels, interpreter style)
NUM_CLIPS = 200
KERNEL_CYCLE = ("ref", "generic", "opt")


def random_cases(seed, count, kernels=None, inputs_per_graph=3):
    """(generated models, device inputs, expected device outputs, int models) for `count` random graphs.

    `kernels`: one kernel set for all, a tuple to cycle through, or None for ref, generic, opt in turn.
    """
    rng = np.random.default_rng(seed)
    cycle = (kernels,) if isinstance(kernels, str) else kernels or KERNEL_CYCLE
    gens, xs, ys, models = [], [], [], []
    for i in range(count):
        model = random_intmodel(rng, f"random{i}")
        x = random_inputs(model, inputs_per_graph, rng)
        gens.append(codegen.generate(model, kernels=cycle[i % len(cycle)], prefix=f"g{i}",
                                     strategy=("naive", "first_fit")[int(rng.integers(2))],
                                     inplace_depthwise=bool(rng.integers(2)), inplace_pointwise=bool(rng.integers(2)),
                                     style="interpreter" if i % 5 == 4 else "direct"))
        xs.append(to_device_layout(x, model.input_spec.shape))
        ys.append(to_device_layout(interpreter.run(model, x), model.output_spec.shape))
        models.append((model, x))
    return gens, xs, ys, models


def first_mismatch(gens, got, expected):
    for g, a, b in zip(gens, got, expected):
        if not np.array_equal(a, b):
            return f"{g.prefix} ({[op.kind for op in g.graph.ops]}, kernels {g.kernels}): {a[0][:16]} vs {b[0][:16]}"
    return None


def specialised_cases(gens) -> set:
    """Which corner cases of the specialised kernels (tm_fast.h) the generated models exercise."""
    seen = set()
    for g in gens:
        for op in g.graph.ops:
            f = g.choices[op.name].function
            if not f.startswith("tm_fast_"):
                continue
            seen.add(f)
            out = g.graph.tensors[op.output]
            if op.kind == "avgpool":
                seen.add(f"avgpool channels % 4 == {out.shape[-1] % 4 != 0:d}")
                continue
            lo, hi = op.attrs["act_min"], op.attrs["act_max"]
            seen.add("clamp " + ("full" if (lo, hi) == (-128, 127) else "partial"))
            seen.add("requant " + ("relu" if lo >= out.zero_point else "signed"))
            if op.kind == "depthwise":
                seen.add(f"depthwise out_h odd {out.shape[0] % 2}, in place {op.name in g.plan.inplace}")
                continue
            k = int(np.prod(op.arrays["weight"].shape[1:]))
            pixels = 1 if len(out.shape) == 1 else out.shape[0] * out.shape[1]
            seen |= {f"K % 4 == {k % 4}", f"C_out odd {out.shape[-1] % 2}", f"pixels % 3 == {pixels % 3}"}
    return seen


@pytest.mark.slow
def test_random_graphs_on_the_host_match_the_interpreter():
    gens, xs, ys, _ = random_cases(seed=100, count=NUM_HOST_GRAPHS)
    kinds = {op.kind for g in gens for op in g.graph.ops}
    assert kinds == {"conv2d", "depthwise", "pointwise", "fully_connected", "avgpool", "maxpool", "add", "flatten"}
    functions = {c.function for g in gens for c in g.choices.values()}
    assert {"tm_conv2d_opt", "tm_depthwise_opt", "tm_pointwise_inplace_opt", "tm_depthwise_inplace_ref",
            "tm_pointwise_inplace_ref", "tm_fully_connected_opt", "tm_fast_conv2d", "tm_fast_pointwise",
            "tm_fast_depthwise3x3", "tm_fast_avgpool"} <= functions
    assert {f"K % 4 == {r}" for r in range(4)} | {f"pixels % 3 == {r}" for r in range(3)} | {
        "C_out odd 0", "C_out odd 1", "clamp full", "clamp partial", "requant relu", "requant signed",
        "avgpool channels % 4 == 0",
        "avgpool channels % 4 == 1"} | {f"depthwise out_h odd {o}, in place {p}" for o in (0, 1) for p in (False, True)
                                        } <= specialised_cases(gens)
    assert any(c.note == "accumulator bound not proven" for g in gens for c in g.choices.values())
    got = hostbuild.run_host(gens, xs)
    assert first_mismatch(gens, got, ys) is None


def test_every_layer_dump_matches_the_interpreter():
    gens, xs, _, models = random_cases(seed=200, count=60, inputs_per_graph=2)
    dumps = hostbuild.run_host(gens, xs, layers=True)
    for g, layers, (model, x) in zip(gens, dumps, models):
        every = interpreter.run(model, x, return_all=True)
        for op, dumped in zip(g.graph.ops, layers):
            expected = to_device_layout(every[op.output], model.tensor(op.output).shape)
            assert np.array_equal(dumped, expected), f"{g.prefix}: layer {op.name} ({op.kind}) differs"


@pytest.mark.slow
@needs_arm
def test_random_graphs_on_qemu_with_optimised_kernels():
    gens, xs, ys, _ = random_cases(seed=300, count=NUM_QEMU_GRAPHS * 5 // 3, kernels=("opt", "opt", "opt", "generic"),
                                   inputs_per_graph=2)
    assert sum(g.kernels == "opt" for g in gens) >= NUM_QEMU_GRAPHS
    assert {"tm_fast_conv2d", "tm_fast_pointwise", "tm_fast_depthwise3x3", "tm_fast_avgpool"} <= specialised_cases(gens)
    result = models_on_device.run_on_qemu(gens, xs)
    assert first_mismatch(gens, result.outputs, ys) is None


@pytest.fixture(scope="module")
def baseline_int_model():
    from tinyml_utils.deployed import get_int8_baseline
    from tinyml_utils.kws_data import kws_features

    int_model = get_int8_baseline()
    x_q = interpreter.quantize_input(int_model, kws_features("synthetic")["test"][0][:NUM_CLIPS])
    return int_model, x_q


@pytest.mark.slow
@needs_arm
def test_ds_cnn_baseline_on_host_and_qemu_matches_the_interpreter(baseline_int_model):
    int_model, x_q = baseline_int_model
    expected = interpreter.run(int_model, x_q)
    x_dev = to_device_layout(x_q, int_model.input_spec.shape)
    ref, generic, opt = (codegen.generate(int_model, kernels=k, prefix=f"kws_{k}") for k in ("ref", "generic", "opt"))
    assert all(opt.choices[op.name].specialised for op in opt.graph.ops if op.kind != "flatten")
    # -O0: the specialised kernels as one shared copy with run-time shapes (as for the random graphs)
    host_ref, host_generic, host_opt = hostbuild.run_host([ref, generic, opt], [x_dev] * 3, model_flags=["-O0"])
    # -O2: as gcc compiles them for the device (constants folded, loops unrolled)
    host_opt_o2 = hostbuild.run_host([opt], [x_dev], model_flags=["-O2"])[0]
    assert len(expected) >= 200
    for got in (host_ref, host_generic, host_opt, host_opt_o2):
        np.testing.assert_array_equal(got, expected)
    on_qemu = models_on_device.run_on_qemu([opt, generic], [x_dev, x_dev])
    np.testing.assert_array_equal(on_qemu.outputs[0], expected)
    np.testing.assert_array_equal(on_qemu.outputs[1], expected)
    # Instruction counts are deterministic: the specialised kernels meet the course's target (4 M per inference).
    assert on_qemu.instructions[0].max() <= 4_000_000 < on_qemu.instructions[1].min()
    assert on_qemu.layer_instructions[0].shape == (len(x_q), len(opt.graph.ops))


def run_host_c(code: str, stdin: bytes = b"") -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "main.c", Path(tmp) / "main"
        src.write_text(code)
        subprocess.run([hostbuild.host_compiler(), "-O2", "-std=c99", "-Wall", "-Werror", f"-I{codegen.RUNTIME}",
                        str(src), "-o", str(exe)], check=True)
        return subprocess.run([str(exe)], input=stdin, capture_output=True, check=True).stdout


def test_requantization_in_c_matches_the_specification():
    rng = np.random.default_rng(0)
    n = 20000
    acc = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, n // 2, endpoint=True),
                          rng.integers(-2**20, 2**20, n // 2), [INT32_MIN, INT32_MAX, 0, -1, 1]]).astype(np.int32)
    m0 = rng.integers(2**30, 2**31, len(acc)).astype(np.int32)
    m0[-5:] = [INT32_MAX, 2**30, 0, 2**30, INT32_MAX]
    shift = rng.integers(-31, 8, len(acc)).astype(np.int32)
    zp = rng.integers(-128, 128, len(acc)).astype(np.int32)
    records = np.stack([acc, m0, shift, zp], axis=1).astype("<i4")
    out = run_host_c(r'''
#include <stdio.h>
#include "tm_requant.h"
int main(void) {
  int32_t r[4];
  while (fread(r, sizeof r, 1, stdin) == 1) {
    int8_t full = tm_requantize(r[0], r[1], r[2], r[3], -128, 127);
    int ok = r[0] <= -(1 << 30) || r[0] >= (1 << 30) || r[2] >= 0;   /* outside tm_mbqm_right's domain */
    int32_t fast = ok ? 0 : tm_mbqm_right(r[0], r[1], -r[2], 1 << (-r[2] - 1));
    fwrite(&full, 1, 1, stdout);
    putchar(ok || fast == tm_mbqm(r[0], r[1], r[2]));
  }
  return 0;
}''', records.tobytes())
    got = np.frombuffer(out, dtype=np.int8).reshape(-1, 2)
    expected = np.clip(multiply_by_quantized_multiplier(acc, m0, shift).astype(np.int64) + zp, -128, 127)
    np.testing.assert_array_equal(got[:, 0], expected)
    assert got[:, 1].all(), "tm_mbqm_right differs from tm_mbqm for some |acc| < 2^30, shift < 0"


def test_specialised_requantization_matches_the_specification():
    """tm_fast_requant (doubled accumulator, zero point in the rounding constant, SMMLAR form under a
    ReLU clamp) against the specification, on its domain: |acc| < 2^30, 1 <= e <= 22."""
    rng = np.random.default_rng(1)
    n = 40000
    acc = np.concatenate([rng.integers(-2**30 + 1, 2**30, n // 2), rng.integers(-2**14, 2**14, n // 2)]).astype(np.int32)
    m0 = rng.integers(2**30, 2**31, n).astype(np.int32)
    e = rng.integers(1, 23, n).astype(np.int32)
    zp = rng.integers(-128, 128, n).astype(np.int32)
    act_min = np.where(rng.random(n) < 0.5, -128, np.maximum(zp, rng.integers(-128, 128, n))).astype(np.int32)
    act_max = np.where(rng.random(n) < 0.5, 127, rng.integers(act_min, 128)).astype(np.int32)
    # ties: acc * m0 / 2^31 and the rounding shift land exactly on .5
    acc[:8], m0[:8], e[:8] = [1, -1, 3 << 20, -(3 << 20), 1 << 21, -(1 << 21), 5, -5], 2**30, [1, 1, 20, 20, 22, 22, 2, 2]
    records = np.stack([acc, m0, e, zp, act_min, act_max], axis=1).astype("<i4")
    out = run_host_c(r'''
#include <stdio.h>
#include "tm_fast.h"
int main(void) {
  int32_t r[6];
  while (fread(r, sizeof r, 1, stdin) == 1) {
    int8_t q = tm_fast_requant(2 * r[0], r[1], r[2], tm_fast_nudge(r[2], r[3]), r[3], r[4], r[5]);
    fwrite(&q, 1, 1, stdout);
  }
  return 0;
}''', records.tobytes())
    expected = np.clip(multiply_by_quantized_multiplier(acc, m0, -e).astype(np.int64) + zp, act_min, act_max)
    np.testing.assert_array_equal(np.frombuffer(out, dtype=np.int8), expected)


def test_generated_api_names(baseline_int_model):
    gen = codegen.generate(baseline_int_model[0])
    for name in ("MODEL_INPUT_SIZE 490", "MODEL_OUTPUT_SIZE 12", "MODEL_ARENA_SIZE", "MODEL_NUM_LAYERS 12",
                 "MODEL_INPUT_SCALE", "MODEL_INPUT_ZERO_POINT", "model_layer_names[MODEL_NUM_LAYERS]",
                 "int8_t *model_input(void);", "const int8_t *model_output(void);", "void model_run(void);",
                 "#ifdef MODEL_LAYER_HOOK", "void model_layer_hook(int layer, const int8_t *output, int32_t bytes);",
                 "MODEL_SCRATCH_OFFSET", "MODEL_SCRATCH_SIZE 8000", "int8_t *model_scratch(void);"):
        assert name in gen.header, name
    arena = int(re.search(r"MODEL_ARENA_SIZE (\d+)", gen.header).group(1))
    assert arena == gen.plan.arena_bytes <= 9 * 1024
    free = re.search(r"MODEL_SCRATCH_OFFSET (\d+).*\n#define MODEL_SCRATCH_SIZE (\d+)", gen.header)
    assert (gen.scratch_offset, gen.scratch_size) == (int(free.group(1)), int(free.group(2)))


def test_free_region_misses_the_input():
    rng = np.random.default_rng(5)
    for _ in range(300):
        model = random_intmodel(rng)
        gen = codegen.generate(model, strategy=("naive", "first_fit")[int(rng.integers(2))])
        offset, size = codegen.free_region(gen.plan, gen.graph)
        start, n = gen.plan.offset(gen.graph.input), gen.graph.tensors[gen.graph.input].nbytes
        assert 0 <= offset and offset + size <= gen.plan.arena_bytes and offset % 4 == 0
        assert size == 0 or offset + size <= start or offset >= start + n
        assert size >= max(start, gen.plan.arena_bytes - start - n - 3)


@needs_arm
def test_generated_code_builds_for_the_hard_float_firmware(baseline_int_model):
    gen = codegen.generate(baseline_int_model[0])
    with tempfile.TemporaryDirectory() as tmp:
        gen.write(tmp)
        for src in [Path(tmp) / "model.c", *codegen.runtime_sources()]:
            cmd = [emulator.require("arm-none-eabi-gcc"), "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                   "-mfpu=fpv4-sp-d16", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{codegen.RUNTIME}", f"-I{tmp}",
                   "-c", str(src), "-o", str(Path(tmp) / (src.stem + ".o"))]
            subprocess.run(cmd, check=True)


def test_too_small_budget_says_by_how_much(baseline_int_model):
    with pytest.raises(codegen.ModelTooLarge, match=r"needs \d[\d,]* bytes of arena, [\d,]+ more than the 4,096"):
        codegen.generate(baseline_int_model[0], max_arena_bytes=4096)
