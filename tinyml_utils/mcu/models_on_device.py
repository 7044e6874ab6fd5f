"""Run the engine's generated models on the emulated Cortex-M4 and count their instructions.

`run_on_qemu(models, inputs)` builds one program (`firmware/models_main.c`) holding every model,
the runtime kernels and the inputs (in flash), with `build.build`: the firmware's start-up code,
the board's linker script and its hard-float ABI, so an inference costs here exactly what it
costs in the firmware. QEMU runs it with `-icount`; per input the device prints the instructions
of the inference and of every layer (SysTick, `firmware/cycles.h`) and the int8 output in hex.

Inputs and outputs are int8 arrays (N, bytes) in the device's HWC order (`engine.ir.to_device_layout`).
The flash and RAM of each part come from the link's map file, by object: `all_models.o` (the
generated models) and `tm_ref.o`, `tm_opt.o`, `tm_interp.o` (the runtime kernels they call).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.codegen import RUNTIME, GeneratedModel, runtime_sources
from ..engine.hostbuild import device_inputs, hook_defines, model_table, write_models
from .boards import DEFAULT_BOARD
from .build import FIRMWARE, build
from .run import run

HARNESS = FIRMWARE / "models_main.c"
#: The generated C must compile without a warning; unused hook parameters are the harness's business.
STRICT_FLAGS = ("-Wextra", "-Werror", "-Wno-unused-parameter")


@dataclass
class QemuResult:
    """Per model: outputs (N, bytes), instructions per inference (N,), per layer (N, layers); and the
    memory of the program by object file ({"all_models.o": {"flash": bytes, "ram": bytes}, ...})."""
    outputs: list
    instructions: list
    layer_instructions: list
    memory: dict


def harness_header(models: list[GeneratedModel], inputs: list[np.ndarray]) -> str:
    """harness_models.h for the device: the model table, the inputs as flash arrays, their counts."""
    arrays = []
    for i, x in enumerate(inputs):
        body = ",".join(str(int(v)) for v in x.ravel())
        arrays.append(f"static const int8_t inputs_{i}[{max(x.size, 1)}] = {{{body or '0'}}};")
    ptrs = ", ".join(f"inputs_{i}" for i in range(len(models)))
    counts = ", ".join(str(len(x)) for x in inputs)
    return (f"#define NUM_MODELS {len(models)}\n#define MAX_LAYERS {max(len(m.graph.ops) for m in models)}\n"
            + model_table(models) + "\n".join(arrays)
            + f"\nstatic const int8_t *const inputs[] = {{{ptrs}}};\nstatic const int32_t counts[] = {{{counts}}};\n")


def parse_output(text: str, models: list[GeneratedModel], inputs: list[np.ndarray]) -> tuple[list, list, list]:
    """(outputs, instructions, layer instructions) per model from the harness's T and O lines."""
    lines = text.splitlines()
    outputs, totals, per_layer, pos = [], [], [], 0
    for x in inputs:
        outs, total, layer = [], [], []
        for _ in range(len(x)):
            t, o = lines[pos].split(), lines[pos + 1]
            pos += 2
            total.append(int(t[1]))
            layer.append([int(v) for v in t[2:]])
            outs.append(np.frombuffer(bytes.fromhex(o[2:]), dtype=np.int8))
        outputs.append(np.array(outs).reshape(len(x), -1))
        totals.append(np.array(total))
        per_layer.append(np.array(layer))
    return outputs, totals, per_layer


def run_on_qemu(models: list[GeneratedModel], inputs: list[np.ndarray], flags: list[str] = (),
                timeout: float = 300.0, workdir: Path | None = None, board: str = DEFAULT_BOARD) -> QemuResult:
    """Build the models for `board` (extra gcc `flags`, e.g. ["-O3"]) and run them on QEMU.

    Raises `mcu.run.DeviceFault` (naming the function) if the program faults, `EmulatorTimeout`
    after `timeout` seconds of host time."""
    inputs = device_inputs(models, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        all_models = write_models(models, work)
        (work / "harness_models.h").write_text(harness_header(models, inputs))
        firmware = build([HARNESS, all_models, *runtime_sources()], board, work, include_dirs=[RUNTIME, work],
                         name="models", extra_flags=[*STRICT_FLAGS, *hook_defines(models), *flags])
        memory = firmware.memory_by_object()
        done = run(firmware, work, timeout=timeout)
    return QemuResult(*parse_output(done.output, models, inputs), memory)
