"""Checks for lab 9, the inference engine: lifetimes, a first-fit plan, in-place depthwise, a
requantizing kernel in C, and one code-generation step. Each compares with the engine package or
the integer interpreter."""
from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import CheckFailed, expect_equal, passed
from ..engine import ir, planner
from ..testing.random_graphs import random_intmodel
from ..quant import interpreter
from ..quant.fixedpoint import multiply_by_quantized_multiplier
from ..quant.intmodel import IntModel, Layer, TensorSpec


def _graphs(seed: int = 9, count: int = 40) -> list:
    """DS-CNN-S (random weights) and `count` random graphs."""
    from ..models import ds_cnn_s
    from ..quant.convert import convert

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ds = convert(ds_cnn_s().eval(), rng.normal(0, 3, (8, 49, 10)).astype(np.float32), name="ds_cnn_s")
    return [ir.from_intmodel(ds)] + [ir.from_intmodel(random_intmodel(rng)) for _ in range(count)]


def check_lifetimes(lifetimes) -> None:
    """lifetimes(graph) -> {tensor name: (first step, last step)}."""
    for g in _graphs():
        expected = planner.lifetimes(g)
        got = lifetimes(g)
        if not isinstance(got, dict):
            raise CheckFailed(f"lifetimes should return a dict, got {type(got).__name__}")
        for name, span in expected.items():
            if name not in got:
                raise CheckFailed(f"{g.name}: tensor {name!r} is missing from your lifetimes")
            expect_equal(f"{g.name}: lifetime of {name!r} (ops: {[op.kind for op in g.ops]})", tuple(got[name]), span)
    passed("lifetimes match the planner's on DS-CNN-S and 40 random graphs (inputs born at step 0, "
           "the output alive to the end)")


def check_first_fit(first_fit) -> None:
    """first_fit(buffers) -> {name: offset}; buffers: dicts (name, size, first, last) in placement order."""
    for g in _graphs(seed=19):
        for dw in (False, True):
            buffers, _, _ = planner.make_buffers(g, inplace_depthwise=dw)
            buffers = sorted(buffers, key=planner.ORDERS["size"])
            given = [{"name": b.name, "size": b.size, "first": b.first, "last": b.last} for b in buffers]
            got = first_fit([dict(b) for b in given])
            arena = planner.place_first_fit(buffers, "size")
            for b in buffers:
                if b.name not in got:
                    raise CheckFailed(f"no offset for buffer {b.name!r}")
                off = int(got[b.name])
                if off % planner.ALIGN:
                    raise CheckFailed(f"buffer {b.name!r} at offset {off}: offsets must be multiples of {planner.ALIGN}")
            for i, a in enumerate(given):
                for b in given[i + 1:]:
                    alive_together = a["first"] <= b["last"] and b["first"] <= a["last"]
                    oa, ob = int(got[a["name"]]), int(got[b["name"]])
                    if alive_together and oa < ob + b["size"] and ob < oa + a["size"]:
                        raise CheckFailed(f"{a['name']!r} at {oa} and {b['name']!r} at {ob} are alive together "
                                          "and overlap")
            for b in buffers:
                expect_equal(f"{g.name}: offset of {b.name!r} (first fit takes the lowest offset that fits)",
                             int(got[b.name]), b.offset)
            expect_equal(f"{g.name}: arena size", planner._aligned(max(int(got[b.name]) + b.size for b in buffers)),
                         arena)
    passed("first_fit places every buffer at the lowest free aligned offset, like planner.place_first_fit")


def _depthwise_case(rng, h, w, c, act=True):
    x = TensorSpec("x", (c, h, w), 0.05, int(rng.integers(-128, 128)))
    y = TensorSpec("y", (c, h, w), 0.04, -128 if act else int(rng.integers(-128, 128)))
    arrays = {"weight": rng.integers(-127, 128, (c, 1, 3, 3)).astype(np.int8),
              "bias": rng.integers(-3000, 3000, c).astype(np.int32),
              "multiplier": rng.integers(2**30, 2**31, c).astype(np.int32),
              "shift": rng.integers(-12, -8, c).astype(np.int32)}
    layer = Layer("conv2d", "dw", ["x"], "y", {"stride": (1, 1), "padding": (1, 1), "groups": c,
                                              "act_min": y.zero_point, "act_max": 127}, arrays)
    return IntModel({"x": x, "y": y}, [layer], "x", "y"), layer


def check_depthwise_in_place(depthwise_in_place) -> None:
    """depthwise_in_place(data, shape, layer, model, scratch): overwrite an HWC depthwise input with its output."""
    rng = np.random.default_rng(3)
    for h, w, c in [(25, 5, 64), (7, 9, 3), (1, 1, 5), (4, 6, 1)]:
        model, layer = _depthwise_case(rng, h, w, c)
        x = rng.integers(-128, 128, (1, c, h, w)).astype(np.int8)
        data = ir.to_device_layout(x, (c, h, w))[0].copy()
        scratch = np.zeros(h * w, dtype=np.int8)
        result = depthwise_in_place(data, (h, w, c), layer, model, scratch)
        if result is not None and result is not data:
            raise CheckFailed("depthwise_in_place must write into `data` (in place) and return None")
        expected = ir.to_device_layout(interpreter.run(model, x), (c, h, w))[0]
        if not np.array_equal(data, expected):
            wrong = np.flatnonzero(data != expected)
            raise CheckFailed(f"shape {(h, w, c)}: {len(wrong)} of {data.size} bytes differ from the interpreter "
                              f"(first at HWC index {wrong[0]}: pixel {wrong[0] // c}, channel {wrong[0] % c})")
    passed("depthwise_in_place overwrites its input channel by channel and equals the interpreter")


#: Seconds a student's program may run before the check stops it (the cases take milliseconds).
HOST_TIMEOUT = 10.0
ARM_TIMEOUT = 20.0      # QEMU's start-up included
HANG_HINT = ("look for a loop that never ends (a counter that never reaches its bound, a condition that "
             "stays true)")
CRASH_HINT = ("an array index out of bounds (check every array's size and every index), a pointer to "
              "memory that is not yours, or a very large local array")


def _run_on_host(exe: Path, stdin: bytes) -> bytes:
    """Run the student's program; a hang, a crash or an error exit becomes a CheckFailed that says which."""
    try:
        done = subprocess.run([str(exe)], input=stdin, capture_output=True, timeout=HOST_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"your program did not finish within {HOST_TIMEOUT:g} s and was stopped: "
                          f"{HANG_HINT}") from None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        what = {"SIGSEGV": "a segmentation fault", "SIGBUS": "a bus error", "SIGFPE": "an arithmetic error "
                "(a division by zero?)", "SIGABRT": "an abort"}.get(name, name)
        raise CheckFailed(f"your program crashed ({what}, {name}): look for {CRASH_HINT}")
    if done.returncode:
        raise CheckFailed(f"your program stopped with exit code {done.returncode}; it printed:\n"
                          f"{done.stderr.decode(errors='replace')[-2000:]}")
    return done.stdout


def _run_on_arm(src: Path, workdir: Path) -> str:
    """Compile for the Cortex-M4 and run on QEMU; a hang or a fault becomes a CheckFailed saying where."""
    from .. import emulator
    from ..mcu import programs

    try:
        elf = programs.compile_cortex_m4([src], workdir / "student.elf", ["-Wno-error", "-g"])
    except emulator.ToolchainMissing:        # a RuntimeError too, but not the student's doing
        raise
    except RuntimeError as e:
        raise CheckFailed(f"your C compiles on the host but not for the Cortex-M4 (no C library there: use "
                          f"only <stdint.h> and your own code):\n{e}") from None
    try:
        result = emulator.run_qemu(elf, timeout=ARM_TIMEOUT)
        emulator.check_fault(elf, result, "your C")
    except emulator.EmulatorTimeout:
        raise CheckFailed(f"on the emulated Cortex-M4 your C did not finish within {ARM_TIMEOUT:g} s and was "
                          f"stopped (on the host it did): {HANG_HINT}; a shift by 32 or more is undefined "
                          "and differs between the two") from None
    except emulator.ProgramFault as e:
        raise CheckFailed(f"on the emulated Cortex-M4, {e}") from None
    return result.output


def _compile_and_run(c_source: str, driver: str, stdin: bytes, arm: bool = False) -> bytes | str:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "student.c"
        src.write_text("#include <stdint.h>\n" + c_source + "\n" + driver)
        if arm:
            return _run_on_arm(src, Path(tmp))
        exe = Path(tmp) / "student"
        done = subprocess.run([shutil.which("gcc") or "cc", "-O2", "-std=c99", "-Wall", str(src), "-o", str(exe)],
                              capture_output=True, text=True)
        if done.returncode:
            raise CheckFailed(f"your C does not compile:\n{done.stderr[-3000:]}")
        return _run_on_host(exe, stdin)


def _requant_cases(rng):
    acc = np.concatenate([rng.integers(-2**31, 2**31, 3000), rng.integers(-2**15, 2**15, 3000),
                          [-2**31, 2**31 - 1, 1, -1, 3 << 20, -(3 << 20), 0]]).astype(np.int32)
    m0 = rng.integers(2**30, 2**31, len(acc)).astype(np.int32)
    m0[-7:] = [2**31 - 1, 2**31 - 1, 2**30, 2**30, 2**30, 2**30, 2**30]
    shift = rng.integers(-31, 3, len(acc)).astype(np.int32)
    shift[-7:] = [0, 2, -1, -1, -20, -20, -5]
    zp = rng.integers(-128, 128, len(acc)).astype(np.int32)
    expected = np.clip(multiply_by_quantized_multiplier(acc, m0, shift).astype(np.int64) + zp, -128, 127)
    return acc, m0, shift, zp, expected.astype(np.int8)


def check_requantize_c(c_source: str) -> None:
    """c_source defines int8_t requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zero_point)."""
    if not isinstance(c_source, str) or "requantize" not in c_source:
        raise CheckFailed("give the C source of `int8_t requantize(int32_t acc, int32_t m0, int32_t shift, "
                          "int32_t zero_point)` as a string")
    acc, m0, shift, zp, expected = _requant_cases(np.random.default_rng(11))
    driver = r'''
#include <stdio.h>
int main(void) {
  int32_t r[4];
  while (fread(r, sizeof r, 1, stdin) == 1) { int8_t q = requantize(r[0], r[1], r[2], r[3]); fwrite(&q, 1, 1, stdout); }
  return 0;
}'''
    records = np.stack([acc, m0, shift, zp], axis=1).astype("<i4").tobytes()
    got = np.frombuffer(_compile_and_run(c_source, driver, records), dtype=np.int8)
    if len(got) != len(expected):
        raise CheckFailed(f"your program returned {len(got)} results for {len(expected)} cases")
    wrong = np.flatnonzero(got != expected)
    if len(wrong):
        i = wrong[0]
        raise CheckFailed(f"{len(wrong)} of {len(expected)} cases differ; first: requantize({acc[i]}, {m0[i]}, "
                          f"{shift[i]}, {zp[i]}) gave {got[i]}, the specification gives {expected[i]}")
    where = "with the host's gcc"
    if shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):
        n = 200
        table = ",".join(f"{{{a},{m},{s},{z}}}" for a, m, s, z in zip(acc[-n:], m0[-n:], shift[-n:], zp[-n:]))
        arm_driver = (f'#include "semihost.h"\nstatic const int32_t cases[{n}][4] = {{{table}}};\n'
                      "int main(void) { uint32_t sum = 0;\n"
                      f"  for (int i = 0; i < {n}; i++) sum = sum * 31u + (uint8_t)requantize(cases[i][0], cases[i][1], "
                      "cases[i][2], cases[i][3]);\n  sh_write_int((int32_t)sum); sh_write(\"\\n\"); return 0; }\n")
        digest = 0
        for q in expected[-n:]:
            digest = (digest * 31 + int(np.uint8(q))) & 0xFFFFFFFF
        printed = _compile_and_run(c_source, arm_driver, b"", arm=True).split()
        if not printed or not printed[0].lstrip("-").isdigit():
            raise CheckFailed(f"on the emulated Cortex-M4 the test program printed {printed[:5]} instead of "
                              "one number")
        got_arm = int(printed[0]) & 0xFFFFFFFF
        if got_arm != digest:
            raise CheckFailed("on the emulated Cortex-M4 your requantize gives different results than on the host "
                              "(look for undefined behaviour: signed overflow, shifts by 32 or more)")
        where += " and on the emulated Cortex-M4"
    passed(f"requantize in C equals the specification on {len(expected):,} cases, ties and extremes included, {where}")


def check_weight_array_c(weight_array_c) -> None:
    """weight_array_c(name, weight (C_out, C_in/g, kH, kW) int8) -> C text of `static const int8_t name[n]` in OHWI order."""
    rng = np.random.default_rng(5)
    for shape in [(64, 1, 10, 4), (3, 2, 3, 3), (1, 1, 1, 1), (12, 64, 1, 1)]:
        weight = rng.integers(-128, 128, shape).astype(np.int8)
        text = weight_array_c("layer_weight", weight)
        if "static const int8_t layer_weight" not in text:
            raise CheckFailed("the array must be declared `static const int8_t layer_weight[...]`")
        n = weight.size
        driver = ("#include <stdio.h>\nint main(void) { fwrite(layer_weight, 1, sizeof layer_weight, stdout); "
                  "return 0; }\n")
        got = np.frombuffer(_compile_and_run(text, driver, b""), dtype=np.int8)
        if len(got) != n:
            raise CheckFailed(f"weight {shape}: your array layer_weight has {len(got)} bytes, it must have {n} "
                              f"(one int8 per weight: {' x '.join(map(str, shape))})")
        expected = weight.transpose(0, 2, 3, 1).reshape(-1)
        if not np.array_equal(got, expected):
            raise CheckFailed(f"weight {shape}: the array's bytes are not in (C_out, kH, kW, C_in) order "
                              f"(first 8: {got[:8]} vs {expected[:8]})")
    passed("weight_array_c emits the weights in OHWI order as a static const array that compiles")
