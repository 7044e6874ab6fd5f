"""Measure a model's kernels on the emulated Cortex-M4: instructions per layer, arena, flash.

`measure` generates the model's C with each kernel set ("ref", "generic", "opt"), runs it on
QEMU with `models_on_device.run_on_qemu` (the firmware's build: the same start-up code, linker
script and hard-float ABI, so a layer costs here what it costs in the firmware, to within one
SysTick tick of 40 instructions), checks every output against the integer interpreter and reads
flash and RAM from the link's map file. `layer_table` is the one per-layer table: the chapters
and `python -m tinyml_utils.bench` (whose per-layer counts come from the firmware's own layer
marks) both print it.

Per-layer counts come from the layer hook (a SysTick read after each layer, about 20 instructions
of it included in each layer); the total is one inference, from `model_run()`'s call to its return.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine import codegen
from ..engine.ir import to_device_layout
from .models_on_device import run_on_qemu

#: The runtime's object files: the kernels a generated model calls (their bytes are the model's too).
RUNTIME_OBJECTS = ("tm_ref.o", "tm_opt.o", "tm_interp.o")


@dataclass
class KernelSetResult:
    """One build's measurements: per-layer and total instructions, memory in bytes."""
    kernels: str
    generated: codegen.GeneratedModel
    layer_instructions: np.ndarray     # (layers,) for the first input
    instructions: int                  # one inference, first input
    arena_bytes: int
    flash_bytes: int                   # generated model (constants + code) + runtime kernels linked
    ram_bytes: int                     # the model's static RAM: arena (+ any other .data/.bss)
    weights_bytes: int                 # constant arrays alone: weights, biases, multipliers, shifts


def measure(int_model, x_q: np.ndarray, kernels_sets=("ref", "opt"), flags=(), **plan) -> dict:
    """Build each kernel set, run the int8 inputs x_q (N, C, H, W) on QEMU, check them against the
    interpreter; a `KernelSetResult` by kernel set. `plan` goes to `codegen.generate`."""
    from ..quant import interpreter

    expected = to_device_layout(interpreter.run(int_model, x_q), int_model.output_spec.shape)
    x_dev = to_device_layout(x_q, int_model.input_spec.shape)
    results = {}
    for kernels in kernels_sets:
        gen = codegen.generate(int_model, kernels=kernels, prefix="model", **plan)
        run = run_on_qemu([gen], [x_dev], flags=list(flags))
        if not np.array_equal(run.outputs[0], expected):
            raise AssertionError(f"{kernels} kernels on QEMU differ from the integer interpreter")
        mem = [run.memory.get(name, {"flash": 0, "ram": 0}) for name in ("all_models.o", *RUNTIME_OBJECTS)]
        results[kernels] = KernelSetResult(kernels, gen, run.layer_instructions[0][0], int(run.instructions[0][0]),
                                           gen.plan.arena_bytes, sum(m["flash"] for m in mem),
                                           sum(m["ram"] for m in mem), gen.const_bytes)
    return results


def layer_table(layer_instructions: dict, totals: dict, generated: dict, cited_per_mac: dict | None = None):
    """Per layer: kind, MACs, the SMLAD limit (MACs / 2) and, per kernel set, instructions,
    instructions per MAC and kernel; the last row is one whole inference (`totals`).

    `layer_instructions` maps a kernel set to its per-layer counts (layers,), `totals` to its
    instructions per inference, `generated` to its `GeneratedModel`. With an "opt" set, the gap to
    the limit ("opt / limit"); with `cited_per_mac` ({layer kind: instructions per MAC}), a column
    of cited figures.
    """
    import pandas as pd

    graph = next(iter(generated.values())).graph
    rows = []
    for i, op in enumerate(graph.ops):
        row = {"layer": op.name, "kind": op.kind, "MACs": op.macs, "SMLAD limit": op.macs // 2}
        for name, counts in layer_instructions.items():
            row[f"{name} instructions"] = int(counts[i])
            row[f"{name} instr/MAC"] = round(int(counts[i]) / op.macs, 2) if op.macs else None
            row[f"{name} kernel"] = generated[name].choices[op.name].function or "(view)"
        rows.append(row)
    total = {"layer": "total (model_run)", "kind": "", "MACs": graph.macs, "SMLAD limit": graph.macs // 2}
    for name, n in totals.items():
        total.update({f"{name} instructions": int(n), f"{name} instr/MAC": round(int(n) / graph.macs, 2),
                      f"{name} kernel": ""})
    table = pd.DataFrame(rows + [total]).set_index("layer")
    if "opt" in totals:
        table["opt / limit"] = (table["opt instructions"] / table["SMLAD limit"].where(table["MACs"] > 0)).round(2)
    if cited_per_mac is not None:
        table["CMSIS-NN instr/MAC (cited)"] = [cited_per_mac.get(kind) for kind in table["kind"]]
    return table


def kernel_set_table(results: dict, cited_per_mac: dict | None = None):
    """`layer_table` of `measure`'s results."""
    return layer_table({k: r.layer_instructions for k, r in results.items()},
                       {k: r.instructions for k, r in results.items()},
                       {k: r.generated for k, r in results.items()}, cited_per_mac)
