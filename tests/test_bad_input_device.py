"""Bad input, the device and C rows: bad input to the engine's runners, the code generator, the
firmware and the C lab checks gives a clear error (type and what was wrong), never a silent wrong
answer. One test per row of the bad-input table."""
import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_arm
from tinyml_utils import emulator
from tinyml_utils.checks import CheckFailed, lab09
from tinyml_utils.engine import codegen, hostbuild, ir
from tinyml_utils.testing.random_graphs import random_inputs, random_intmodel
from tinyml_utils.mcu import build, models_on_device, programs, run
from tinyml_utils.quant import interpreter
from tinyml_utils.quant.convert import convert
from tinyml_utils.standins import random_dscnn, toy_kws_data

REPO = Path(__file__).resolve().parents[1]
needs_gcc = pytest.mark.skipif(__import__("shutil").which("gcc") is None, reason="no host C compiler")


@pytest.fixture(scope="module")
def kws_model():
    """A random DS-CNN converted on toy data: int8 input (1, 49, 10), 490 bytes on the device."""
    X, _ = toy_kws_data(32)
    int_model = convert(random_dscnn(), X[:, None], name="toy_ds_cnn")
    return int_model, codegen.generate(int_model), X


# ---- row: float or wrong-size input into hostbuild.run_host / models_on_device.run_on_qemu ----

@pytest.mark.parametrize("runner", [hostbuild.run_host, models_on_device.run_on_qemu])
def test_runners_refuse_float_and_wrong_size_inputs(kws_model, runner):
    int_model, gen, X = kws_model
    # The checks come before any compilation: no toolchain is needed to see them.
    with pytest.raises(TypeError, match=r"model: inputs must be int8 \(N, 490\).*got dtype float32.*quantize_input"):
        runner([gen], [X[:2].reshape(2, -1)])
    with pytest.raises(ValueError, match=r"each input must have 490 bytes.*got shape \(1, 400\)"):
        runner([gen], [np.zeros((1, 400), np.int8)])
    with pytest.raises(ValueError, match=r"490 bytes.*got shape \(490,\) \(add the batch axis: x\[None\]\)"):
        runner([gen], [np.zeros(490, np.int8)])
    with pytest.raises(ValueError, match="1 models but 2 input arrays"):
        runner([gen], [np.zeros((1, 490), np.int8)] * 2)
    # The documented way to make inputs refuses real values too, instead of truncating them.
    with pytest.raises(TypeError, match="to_device_layout takes quantized integer tensors, got dtype float32"):
        ir.to_device_layout(X[:2, None], int_model.input_spec.shape)
    with pytest.raises(ValueError, match=r"must fit int8 \[-128, 127\], got \[0, 300\]"):
        ir.to_device_layout(np.arange(0, 301).reshape(1, 1, 1, -1), (1, 1, 301))


@pytest.mark.slow
@needs_gcc
def test_runners_accept_valid_inputs_unchanged(kws_model):
    int_model, gen, X = kws_model
    x_q = interpreter.quantize_input(int_model, X[:3, None])
    x_dev = ir.to_device_layout(x_q, int_model.input_spec.shape)
    expected = ir.to_device_layout(interpreter.run(int_model, x_q), int_model.output_spec.shape)
    np.testing.assert_array_equal(hostbuild.run_host([gen], [x_dev])[0], expected)
    # any (N, ...) int8 shape with 490 bytes per input is fine: (N, H, W, C) as well as (N, 490)
    np.testing.assert_array_equal(hostbuild.run_host([gen], [x_dev.reshape(3, 49, 10, 1)])[0], expected)


# ---- row: firmware stack overflowing below RAM on a 16 KB board ----

JUMP_OVER = """#include <stdint.h>
#include "report.h"
#include "startup.h"
volatile int8_t big_bss[12000];      /* leaves 3.7 KB of the 16 KB for the stack */
__attribute__((noinline)) int32_t deep(int32_t n) {
  volatile int8_t frame[FRAME_BYTES];
  for (int32_t i = 0; i < 16; i++) frame[i] = (int8_t)(i + n);   /* writes only its lowest bytes */
  return frame[3];
}
int main(void) {
  big_bss[0] = 1;
  return report_stack_and_finish(deep(FRAME_BYTES) + big_bss[0]);
}
"""
RECURSION = """#include <stdint.h>
#include "report.h"
__attribute__((noinline)) int32_t depth(int32_t n) {
  volatile int32_t frame[8];
  frame[0] = n;
  return n ? depth(n - 1) + frame[0] : 0;
}
int main(void) { return report_stack_and_finish(depth(DEPTH)); }
"""


def _firmware(tmp_path, code, board, defines):
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "app.c"
    src.write_text(code)
    return build.build([src, build.FIRMWARE / "report.c"], board, tmp_path / "build", defines=defines)


@needs_arm
def test_stack_overflow_below_ram_is_reported(tmp_path):
    # A 6 KB frame on stm32f301k8 jumps past the whole 3.7 KB stack: before the guard, its writes
    # landed in .bss (or below RAM, where QEMU ignores them) and the run ended with exit 0.
    fw = _firmware(tmp_path, JUMP_OVER, "stm32f301k8", {"FRAME_BYTES": 6000})
    assert fw.stack_bytes == 16 * 1024 - fw.static_ram_bytes
    with pytest.raises(run.StackOverflow, match=r"(?s)stack overflowed on stm32f301k8 .*more than the 3,736 bytes "
                                                r"of stack.*12,648 bytes.*make it static.*FAULT: stack overflow sp=0x1fff"):
        run.run(fw, tmp_path / "run")
    # the same program with a frame that fits runs and measures its stack as before
    small = _firmware(tmp_path / "small", JUMP_OVER, "stm32f301k8", {"FRAME_BYTES": 100})
    assert 100 < run.run(small, tmp_path / "run_small").stack_peak_bytes < 300


@needs_arm
@pytest.mark.parametrize("board", ["stm32f301k8", "corstone300"])   # MPU guard (Armv7-M), MSPLIM (Armv8-M)
def test_deep_recursion_is_a_stack_overflow(tmp_path, board):
    fw = _firmware(tmp_path, RECURSION, board, {"DEPTH": 1_000_000})
    with pytest.raises(run.StackOverflow, match=rf"stack overflowed on {board} "):
        run.run(fw, tmp_path / "run")
    assert run.run(_firmware(tmp_path / "ok", RECURSION, board, {"DEPTH": 10}), tmp_path / "ok_run").exit_code == 0


# ---- row: checks/lab09 with a C answer that hangs, crashes or has the wrong array size ----

HANGS = ("int8_t requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zero_point) {\n"
         "  while (acc != 12345) acc += 2 * (acc & 0);  /* never changes */\n  return (int8_t)(m0 + shift + zero_point); }")
CRASHES = ("int8_t requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zero_point) {\n"
           "  static const int8_t table[4] = {0};\n  return table[acc * 1000003]; }  /* far out of bounds */")
ARM_ONLY = ("int8_t requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zero_point) {\n"
            "#ifdef __arm__\n  BODY\n#endif\n"
            "  int64_t prod = (int64_t)acc * m0;\n  int32_t hi = (int32_t)((prod + (1LL << 30)) >> 31);\n"
            "  return 0 * hi; }")


@pytest.mark.slow
@needs_gcc
def test_lab09_c_that_hangs_or_crashes_on_the_host_fails_clearly(monkeypatch):
    monkeypatch.setattr(lab09, "HOST_TIMEOUT", 2.0)
    with pytest.raises(CheckFailed, match=r"did not finish within 2 s and was stopped: look for a loop that never ends"):
        lab09.check_requantize_c(HANGS)
    with pytest.raises(CheckFailed, match=r"crashed \(a segmentation fault, SIGSEGV\): look for an array index out "
                                          "of bounds"):
        lab09.check_requantize_c(CRASHES)


@needs_gcc
def test_lab09_weight_array_of_the_wrong_size_fails_clearly():
    def too_short(name, weight):
        return f"static const int8_t {name}[{weight.size - 1}] = {{0}};"
    with pytest.raises(CheckFailed, match=r"weight \(64, 1, 10, 4\): your array layer_weight has 2559 bytes, it "
                                          r"must have 2560 \(one int8 per weight: 64 x 1 x 10 x 4\)"):
        lab09.check_weight_array_c(too_short)


@pytest.mark.slow
@needs_arm
def test_lab09_c_that_hangs_or_crashes_on_the_cortex_m4_fails_clearly(monkeypatch):
    # Code that passes on the host and misbehaves only on the device (as undefined behaviour can).
    monkeypatch.setattr(lab09, "ARM_TIMEOUT", 3.0)
    monkeypatch.setattr(lab09, "_requant_cases", lambda rng: _zero_cases(rng))
    with pytest.raises(CheckFailed, match=r"on the emulated Cortex-M4 your C did not finish within 3 s"):
        lab09.check_requantize_c(ARM_ONLY.replace("BODY", "for (volatile int i = 0; ; i++) {}"))
    with pytest.raises(CheckFailed, match=r"on the emulated Cortex-M4, your C crashed in requantize \(student.c:4\): "
                                          r"hard fault pc=0x[0-9a-f]+ .*address=0xf0000000"):
        lab09.check_requantize_c(ARM_ONLY.replace("BODY", "if (acc == 0) return *(volatile int8_t *)0xF0000000u;"))


def _zero_cases(rng):
    """Cases whose answer is 0 (so that ARM_ONLY's `0 * hi` passes on the host)."""
    n = 300
    acc = np.zeros(n, np.int32)
    m0 = np.full(n, 2**30, np.int32)
    shift = np.zeros(n, np.int32)
    zp = np.zeros(n, np.int32)
    return acc, m0, shift, zp, np.zeros(n, np.int8)


# ---- row: codegen of models.DNN (a (49, 10) input without a channel axis) ----

def test_codegen_of_a_2d_input_says_how_to_add_the_channel_axis():
    import torch

    from tinyml_utils.models import DNN

    torch.manual_seed(0)
    X, _ = toy_kws_data(16)
    model = DNN().eval()
    with pytest.raises(ir.UnsupportedOperator, match=r"the model's input 'input_1' has shape \(49, 10\), without a "
                                                     r"channel axis.*\(N, 1, 49, 10\), e\.g\. convert\(model, "
                                                     r"X\[:, None\]\).*models\.DNN"):
        codegen.generate(convert(model, X, name="dnn"))
    gen = codegen.generate(convert(model, X[:, None], name="dnn"))      # the advice works
    assert gen.graph.tensors[gen.graph.input].nchw_shape == (1, 49, 10)


# ---- row: a model or layer name with */ (or quotes) breaks the generated C ----

@needs_gcc
def test_names_that_are_not_c_are_sanitised():
    rng = np.random.default_rng(7)
    model = random_intmodel(rng, "evil */ model /* name")
    model.meta["name"] = 'evil */ model /* "name" \\'
    model.layers[0] = dataclasses.replace(model.layers[0], name='l0 */ "quoted" \\ ??/ é')
    gen = codegen.generate(model, style="interpreter")
    assert 'for "evil * / model / * "name" \\". Do not edit. */' in gen.header      # comment-safe
    assert '"l0 */ \\"quoted\\" \\\\ \\?\\?/ \\303\\251"' in gen.source   # the C string: escaped
    x = random_inputs(model, 2, rng)
    got = hostbuild.run_host([gen], [ir.to_device_layout(x, model.input_spec.shape)])[0]  # gcc -Wall -Werror
    np.testing.assert_array_equal(got, ir.to_device_layout(interpreter.run(model, x), model.output_spec.shape))
    # the layer names array holds the names unchanged, byte for byte
    names = [op.name for op in gen.graph.ops]
    assert _c_strings_round_trip(names) == names


def _c_strings_round_trip(texts) -> list:
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "names.c"
        items = ", ".join(f'"{codegen.c_string(t)}"' for t in texts)
        src.write_text(f"#include <stdio.h>\nstatic const char *const names[] = {{{items}}};\n"
                       f"int main(void) {{ for (int i = 0; i < {len(texts)}; i++) printf(\"%s\\n\", names[i]); "
                       "return 0; }\n")
        subprocess.run([shutil.which("gcc"), "-std=c99", "-Wall", "-Werror", str(src), "-o", f"{tmp}/names"], check=True)
        out = subprocess.run([f"{tmp}/names"], capture_output=True, check=True).stdout.decode()
    return out.splitlines()


# ---- row: emulator.run_c_program on a fault ----

@needs_arm
def test_run_c_program_names_the_fault_and_where():
    code = ("#include <stdint.h>\n__attribute__((noinline)) int32_t crash(int32_t i) "
            "{ return ((volatile int32_t *)0xF0000000u)[i]; }\nint main(void) { return crash(0); }\n")
    with pytest.raises(emulator.ProgramFault, match=r"the program crashed in crash \(main.c:2\): hard fault "
                                                    r"pc=0x[0-9a-f]{8} .*address=0xf0000000"):
        programs.run_c_program(code)
    # An endless recursion runs into the stack guard below RAM (the firmware's start-up code, which
    # every program gets): a ProgramFault that says the stack overflowed, not undecodable output.
    with pytest.raises(emulator.ProgramFault, match=r"overflowed its stack.*recursion that does not end"):
        programs.run_c_program("int d(int n) { volatile char b[64]; b[0] = (char)n; return n ? d(n - 1) + b[0] : 0; }\n"
                               "int main(void) { return d(1 << 30); }\n")


# ---- row: tests marked needs_arm skip silently unless TINYML_REQUIRE_TOOLS is set ----

def test_run_test_requires_the_tools():
    """./run test installs the tools, so it sets TINYML_REQUIRE_TOOLS: conftest then fails instead of skipping."""
    script = (REPO / "run").read_text()
    branch = re.search(r"\n  test\)\n(.*?)\n    ;;", script, re.S).group(1)
    assert re.search(r"^\s*export TINYML_REQUIRE_TOOLS=1\b", branch, re.M)
    assert branch.index("TINYML_REQUIRE_TOOLS") < branch.index("-m pytest")
    assert "TINYML_REQUIRE_TOOLS" in (REPO / "tests" / "conftest.py").read_text()
