"""Compile generated models and run them: on the host with gcc, and on QEMU's Cortex-M4 board.

Both runners take several generated models at once and compile them into one program (each
model's C is prefixed, so many fit in one translation unit): a thousand small graphs cost one
compilation, not a thousand.

* `run_host(models, inputs)`: gcc on this machine; the program reads inputs from stdin and
  writes outputs (and, on request, every layer's output via the layer hook) to stdout.
* `run_on_qemu(models, inputs)`: arm-none-eabi-gcc for the Cortex-M4 and QEMU `mps2-an386`; the
  inputs are embedded in flash, outputs come back as hex lines over semihosting, with the
  instructions of every inference (and of every layer) counted by SysTick (`csrc/cycles.h`).

Inputs and outputs are int8 arrays (N, bytes) in the device's HWC order (`ir.to_device_layout`).
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import emulator
from .codegen import RUNTIME, GeneratedModel, runtime_sources

HOST_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
ARM_FLAGS = ["-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-Wextra", "-Wno-unused-parameter"]


def host_compiler() -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise emulator.ToolchainMissing("no host C compiler: install one with  sudo apt-get install -y gcc")
    return gcc


def _write_models(models: list[GeneratedModel], workdir: Path) -> Path:
    """Write every model's files and one C file that includes all their sources; returns it."""
    prefixes = [m.prefix for m in models]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError("models compiled together need distinct prefixes (generate(..., prefix=...))")
    for m in models:
        m.write(workdir)
    all_models = workdir / "all_models.c"
    all_models.write_text("".join(f'#include "{m.prefix}.c"\n' for m in models))
    return all_models


def device_inputs(models: list[GeneratedModel], inputs: list[np.ndarray]) -> list[np.ndarray]:
    """One int8 (N, input bytes) array per model, checked; returns them as (N, bytes) (any (N, ...) shape fits).

    Refuses rather than converts: a float array cast to int8 or a wrong-size input read past its end
    would give outputs that look plausible and are wrong.
    """
    if len(inputs) != len(models):
        raise ValueError(f"{len(models)} models but {len(inputs)} input arrays: give one int8 (N, bytes) array "
                         "per model")
    checked = []
    for m, x in zip(models, inputs):
        spec = m.graph.tensors[m.graph.input]
        nbytes = spec.nbytes
        expected = f"int8 (N, {nbytes}) in the device's HWC order (ir.to_device_layout(x_q, {spec.nchw_shape}))"
        x = np.asarray(x)
        if x.dtype != np.int8:
            raise TypeError(f"{m.prefix}: inputs must be {expected}, got dtype {x.dtype}. Quantize real-valued inputs "
                            "first (interpreter.quantize_input) instead of casting them")
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != nbytes:
            raise ValueError(f"{m.prefix}: each input must have {nbytes} bytes, as {expected}; got shape {x.shape}"
                             + (" (add the batch axis: x[None])" if x.size == nbytes and x.ndim == 1 else ""))
        checked.append(np.ascontiguousarray(x).reshape(len(x), nbytes))
    return checked


def _table(models: list[GeneratedModel]) -> str:
    """C declarations of a table of the models' entry points (shared by both harnesses)."""
    hooks = "".join(f"void {m.prefix}_layer_hook(int layer, const int8_t *out, int32_t bytes) "
                    f"{{ layer_hook(layer, out, bytes); }}\n" for m in models)
    rows = ",\n  ".join(f"{{{m.prefix}_input, {m.prefix}_output, {m.prefix}_run, {m.prefix.upper()}_INPUT_SIZE, "
                        f"{m.prefix.upper()}_OUTPUT_SIZE, {m.prefix}_scratch, {m.prefix.upper()}_SCRATCH_SIZE}}"
                        for m in models)
    return ("".join(f'#include "{m.prefix}.h"\n' for m in models) +
            "typedef struct { int8_t *(*input)(void); const int8_t *(*output)(void); void (*run)(void); "
            "int32_t in_size, out_size; int8_t *(*scratch)(void); int32_t scratch_size; } model_entry;\n" + hooks +
            f"static const model_entry models[{len(models)}] = {{\n  {rows}\n}};\n")


def _hook_defines(models: list[GeneratedModel]) -> list[str]:
    return [f"-D{m.prefix.upper()}_LAYER_HOOK" for m in models]


HOST_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
static int dumping;
static void layer_hook(int layer, const int8_t *out, int32_t bytes) {
  if (dumping) fwrite(out, 1, (size_t)bytes, stdout);
}
%(table)s
/* stdin: records (int32 model, int32 count, int32 dump) + count inputs; stdout: per input, with
 * dump set every layer's output in order, then the model output. Before each input the arena's
 * free region (model_scratch()) is filled with junk, as firmware using it would leave it. */
int main(void) {
  int32_t head[3];
  while (fread(head, sizeof head, 1, stdin) == 1) {
    const model_entry *m = &models[head[0]];
    dumping = head[2];
    for (int32_t n = 0; n < head[1]; n++) {
      for (int32_t i = 0; i < m->scratch_size; i++) m->scratch()[i] = (int8_t)(0x5A ^ (i * 7 + n));
      if (fread(m->input(), 1, (size_t)m->in_size, stdin) != (size_t)m->in_size) return 2;
      m->run();
      fwrite(m->output(), 1, (size_t)m->out_size, stdout);
    }
  }
  return 0;
}
"""


def _gcc(args: list[str]) -> None:
    done = subprocess.run([host_compiler(), *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"gcc failed on the generated code:\n{done.stderr[-4000:]}")


def build_host(models: list[GeneratedModel], workdir: Path, flags: list[str] = (),
               model_flags: list[str] | None = None) -> Path:
    """Compile the models, the runtime and the stdin/stdout harness with host gcc; returns the executable.

    The runtime kernels are compiled with -O2 (and `flags`); the generated models with
    `model_flags`, by default -O0 for more than 4 models (a thousand random models then compile in
    seconds; the specialised kernels of tm_fast.h are then one shared copy with run-time shapes)
    and -O2 for up to 4 (each specialised kernel compiled for its shape, as on the device).
    """
    if model_flags is None:
        model_flags = ["-O0"] if len(models) > 4 else ["-O2"]
    all_models = _write_models(models, workdir)
    main = workdir / "host_main.c"
    main.write_text(HOST_MAIN % {"table": _table(models)})
    common = [*HOST_CFLAGS, *_hook_defines(models), f"-I{RUNTIME}", f"-I{workdir}"]
    objects = []
    for src, opt in [(main, ["-O0"]), (all_models, list(model_flags))] + [(s, ["-O2", *flags]) for s in runtime_sources()]:
        obj = workdir / (Path(src).stem + ".o")
        _gcc([*common, *opt, "-c", str(src), "-o", str(obj)])
        objects.append(str(obj))
    exe = workdir / "host_models"
    _gcc([*objects, "-o", str(exe)])
    return exe


def run_host(models: list[GeneratedModel], inputs: list[np.ndarray], layers: bool = False,
             flags: list[str] = (), model_flags: list[str] | None = None) -> list:
    """Run each model on its inputs (N, input bytes) on the host; returns outputs (N, output bytes) per model.

    With `layers`, returns per model a list over layers of (N, bytes) arrays (the hook's dumps), the
    model output last.
    """
    inputs = device_inputs(models, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_host(models, Path(tmp), flags, model_flags)
        stream = bytearray()
        for i, x in enumerate(inputs):
            stream += struct.pack("<3i", i, len(x), int(layers)) + x.tobytes()
        done = subprocess.run([str(exe)], input=bytes(stream), capture_output=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"the host program failed (exit {done.returncode}): {done.stderr.decode()[-2000:]}")
    data, pos, results = np.frombuffer(done.stdout, dtype=np.int8), 0, []
    for m, x in zip(models, inputs):
        sizes = [m.graph.tensors[op.output].nbytes for op in m.graph.ops] if layers else []
        sizes.append(m.graph.tensors[m.graph.output].nbytes)
        per = sum(sizes)
        block = data[pos:pos + per * len(x)].reshape(len(x), per)
        pos += per * len(x)
        splits = np.split(block, np.cumsum(sizes)[:-1], axis=1)
        results.append(splits if layers else splits[0])
    if pos != len(data):
        raise RuntimeError(f"the host program wrote {len(data)} bytes, expected {pos}")
    return results


QEMU_MAIN = r"""
#include <stdint.h>
#include "semihost.h"
#include "cycles.h"
static uint64_t marks[%(max_layers)d + 1];
static int32_t num_marks;
static void layer_hook(int layer, const int8_t *out, int32_t bytes) { marks[++num_marks] = ticks_now(); }
%(table)s
%(inputs)s
static void put_hex(const int8_t *data, int32_t n) {
  static const char digits[] = "0123456789abcdef";
  char line[2 * 64 + 2];
  for (int32_t i = 0; i < n; i += 64) {
    int32_t k = 0;
    for (int32_t j = i; j < n && j < i + 64; j++) {
      line[k++] = digits[((uint8_t)data[j]) >> 4];
      line[k++] = digits[((uint8_t)data[j]) & 15];
    }
    line[k] = 0;
    sh_write(line);
  }
  sh_write("\n");
}
int main(void) {
  ticks_start();
  for (int32_t m = 0; m < %(num_models)d; m++) {
    for (int32_t n = 0; n < counts[m]; n++) {
      const int8_t *x = inputs[m] + n * models[m].in_size;
      int8_t *junk = models[m].scratch();     /* the free region as firmware would leave it */
      for (int32_t i = 0; i < models[m].scratch_size; i++) junk[i] = (int8_t)(0x5A ^ (i * 7 + n));
      int8_t *dst = models[m].input();
      for (int32_t i = 0; i < models[m].in_size; i++) dst[i] = x[i];
      num_marks = 0;
      marks[0] = ticks_now();
      models[m].run();
      uint64_t end = ticks_now();
      sh_write("T "); sh_write_int((int32_t)((end - marks[0]) * INSTRUCTIONS_PER_TICK));
      for (int32_t l = 1; l <= num_marks; l++) {
        sh_write(" "); sh_write_int((int32_t)((marks[l] - marks[l - 1]) * INSTRUCTIONS_PER_TICK));
      }
      sh_write("\nO ");
      put_hex(models[m].output(), models[m].out_size);
    }
  }
  return 0;
}
"""


@dataclass
class QemuResult:
    """Per model: outputs (N, bytes), instructions per inference (N,), per layer (N, layers); and the
    memory of the program by object file ({"all_models.o": {"flash": bytes, "ram": bytes}, ...})."""
    outputs: list
    instructions: list
    layer_instructions: list
    memory: dict


def memory_by_object(map_text: str) -> dict:
    """Flash (.text, .rodata, .data's load image) and RAM (.data, .bss) bytes per object file, from a
    GNU ld map file. Output sections start in column 0; input sections below them name their object."""
    usage: dict = {}
    section = None
    text = map_text.split("Linker script and memory map", 1)[-1]
    for line in text.splitlines():
        head = re.match(r"^(\.[\w.]+)", line)
        if head:
            section = head.group(1)
        found = re.search(r"0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+\.o)\s*$", line)
        if not found or section not in (".text", ".data", ".bss"):
            continue
        size, obj = int(found.group(1), 16), Path(found.group(2)).name
        entry = usage.setdefault(obj, {"flash": 0, "ram": 0})
        entry["flash"] += size if section in (".text", ".data") else 0
        entry["ram"] += size if section in (".data", ".bss") else 0
    return usage


def _arm_objects(sources: list[Path], workdir: Path, flags: list[str]) -> list[Path]:
    """Compile C files for the Cortex-M4 one by one into named objects (so a map file can attribute bytes)."""
    gcc = emulator.require("arm-none-eabi-gcc")
    objects = []
    for src in sources:
        obj = workdir / (Path(src).stem + ".o")
        cmd = [gcc, *emulator.CFLAGS, *flags, f"-I{emulator.CSRC}", "-c", str(src), "-o", str(obj)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"arm-none-eabi-gcc failed on {Path(src).name}:\n{done.stderr[-4000:]}")
        objects.append(obj)
    return objects


def run_on_qemu(models: list[GeneratedModel], inputs: list[np.ndarray], flags: list[str] = (),
                timeout: float = 300.0, workdir: Path | None = None) -> QemuResult:
    """Build the models for the Cortex-M4 (extra gcc `flags`, e.g. ["-O3"]) and run them on QEMU."""
    inputs = device_inputs(models, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        all_models = _write_models(models, work)
        arrays = []
        for i, x in enumerate(inputs):
            body = ",".join(str(int(v)) for v in x.ravel())
            arrays.append(f"static const int8_t inputs_{i}[{max(x.size, 1)}] = {{{body or '0'}}};")
        ptrs = ", ".join(f"inputs_{i}" for i in range(len(models)))
        counts = ", ".join(str(len(x)) for x in inputs)
        text = "\n".join(arrays) + (f"\nstatic const int8_t *const inputs[] = {{{ptrs}}};\n"
                                    f"static const int32_t counts[] = {{{counts}}};\n")
        main = work / "qemu_main.c"
        main.write_text(QEMU_MAIN % {"table": _table(models), "inputs": text, "num_models": len(models),
                                     "max_layers": max(len(m.graph.ops) for m in models)})
        compile_flags = [*ARM_FLAGS[:2], *ARM_FLAGS[3:], *_hook_defines(models), f"-I{RUNTIME}", f"-I{work}", *flags]
        objects = _arm_objects([main, all_models, *runtime_sources()], work, compile_flags)
        elf = work / "models.elf"
        emulator.compile_cortex_m4(objects, elf, [ARM_FLAGS[2], f"-Wl,-Map={work / 'models.map'}", *flags])
        memory = memory_by_object((work / "models.map").read_text())
        result = emulator.run_qemu(elf, timeout=timeout)
        emulator.check_fault(elf, result, "the generated models on QEMU")
    if result.exit_code != 0:
        raise RuntimeError(f"the program on QEMU exited with {result.exit_code}: {result.output[-2000:]}")
    lines = result.output.splitlines()
    outputs, counts_, per_layer, pos = [], [], [], 0
    for m, x in zip(models, inputs):
        outs, total, layer = [], [], []
        for _ in range(len(x)):
            t, o = lines[pos].split(), lines[pos + 1]
            pos += 2
            total.append(int(t[1]))
            layer.append([int(v) for v in t[2:]])
            outs.append(np.frombuffer(bytes.fromhex(o[2:]), dtype=np.int8))
        outputs.append(np.array(outs).reshape(len(x), -1))
        counts_.append(np.array(total))
        per_layer.append(np.array(layer))
    return QemuResult(outputs, counts_, per_layer, memory)
