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
from tinyml_utils.engine.ir import to_device_layout
from tinyml_utils.engine.random_graphs import random_inputs, random_intmodel
from tinyml_utils.quant import interpreter
from tinyml_utils.quant.fixedpoint import INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier

NUM_HOST_GRAPHS = 1200
NUM_QEMU_GRAPHS = 120
NUM_CLIPS = 200


def random_cases(seed, count, kernels=None, inputs_per_graph=3):
    """(generated models, device inputs, expected device outputs, int models) for `count` random graphs."""
    rng = np.random.default_rng(seed)
    gens, xs, ys, models = [], [], [], []
    for i in range(count):
        model = random_intmodel(rng, f"random{i}")
        x = random_inputs(model, inputs_per_graph, rng)
        gens.append(codegen.generate(model, kernels=kernels or ("ref", "opt")[i % 2], prefix=f"g{i}",
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


def test_random_graphs_on_the_host_match_the_interpreter():
    gens, xs, ys, _ = random_cases(seed=100, count=NUM_HOST_GRAPHS)
    kinds = {op.kind for g in gens for op in g.graph.ops}
    assert kinds == {"conv2d", "depthwise", "pointwise", "fully_connected", "avgpool", "maxpool", "add", "flatten"}
    functions = {c.function for g in gens for c in g.choices.values()}
    assert {"tm_conv2d_opt", "tm_depthwise_opt", "tm_pointwise_inplace_opt", "tm_depthwise_inplace_ref",
            "tm_pointwise_inplace_ref", "tm_fully_connected_opt"} <= functions
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


@needs_arm
def test_random_graphs_on_qemu_with_optimised_kernels():
    gens, xs, ys, _ = random_cases(seed=300, count=NUM_QEMU_GRAPHS, kernels="opt", inputs_per_graph=2)
    result = hostbuild.run_on_qemu(gens, xs)
    assert first_mismatch(gens, result.outputs, ys) is None


@pytest.fixture(scope="module")
def baseline_int_model():
    from tinyml_utils.kws_data import kws_features
    from tinyml_utils.quant.convert import convert
    from tinyml_utils.train import get_baseline

    feats = kws_features("synthetic")
    model, _ = get_baseline("ds_cnn_s", progress=False)
    int_model = convert(model, feats["train"][0][:512], name="ds_cnn_s")
    x_q = interpreter.quantize_input(int_model, feats["test"][0][:NUM_CLIPS])
    return int_model, x_q


@needs_arm
def test_ds_cnn_baseline_on_host_and_qemu_matches_the_interpreter(baseline_int_model):
    int_model, x_q = baseline_int_model
    expected = interpreter.run(int_model, x_q)
    x_dev = to_device_layout(x_q, int_model.input_spec.shape)
    ref, opt = (codegen.generate(int_model, kernels=k, prefix=f"kws_{k}") for k in ("ref", "opt"))
    host_ref, host_opt = hostbuild.run_host([ref, opt], [x_dev, x_dev])
    assert len(expected) >= 200
    np.testing.assert_array_equal(host_ref, expected)
    np.testing.assert_array_equal(host_opt, expected)
    on_qemu = hostbuild.run_on_qemu([opt], [x_dev])
    np.testing.assert_array_equal(on_qemu.outputs[0], expected)
    # Instruction counts are deterministic: the optimised kernels meet the engine issue's target.
    assert on_qemu.instructions[0].max() <= 8_000_000
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


def test_generated_api_names(baseline_int_model):
    gen = codegen.generate(baseline_int_model[0])
    for name in ("MODEL_INPUT_SIZE 490", "MODEL_OUTPUT_SIZE 12", "MODEL_ARENA_SIZE", "MODEL_NUM_LAYERS 12",
                 "MODEL_INPUT_SCALE", "MODEL_INPUT_ZERO_POINT", "model_layer_names[MODEL_NUM_LAYERS]",
                 "int8_t *model_input(void);", "const int8_t *model_output(void);", "void model_run(void);",
                 "#ifdef MODEL_LAYER_HOOK", "void model_layer_hook(int layer, const int8_t *output, int32_t bytes);"):
        assert name in gen.header, name
    arena = int(re.search(r"MODEL_ARENA_SIZE (\d+)", gen.header).group(1))
    assert arena == gen.plan.arena_bytes <= 9 * 1024


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
