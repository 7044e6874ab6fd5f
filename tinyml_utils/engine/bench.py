"""Benchmark the engine on DS-CNN-S int8 on QEMU's Cortex-M4 board: instructions, arena, flash.

    python -m tinyml_utils.engine.bench [--clips N] [--flags="-O3"] [--kernels ref,generic,opt]

Builds the cached baseline DS-CNN-S (converted with `quant.convert`) with each kernel set (by
default the reference kernels and the optimised, shape-specialised ones), runs test clips on
QEMU `mps2-an386` with `-icount shift=0,align=off,sleep=off` (instructions counted by SysTick,
deterministic), checks
the outputs against the integer interpreter, and prints a per-layer table (instructions,
instructions per MAC, kernel), the totals, the arena and the flash, then one JSON line with
`instructions`, `arena_bytes`, `flash_bytes`, `ram_bytes` (the optimised build) and more.

The harness is compiled for the soft-float ABI (the emulator's default); `python -m
tinyml_utils.bench` measures the deployment firmware (hard-float ABI), which can differ by a few
percent per layer because gcc allocates registers differently. Per-layer counts come from the
layer hook (a SysTick read after each layer, about 20 instructions of it included in each
layer); the total is one inference from `model_run()`'s
call to its return. Flash and RAM are the bytes the linker placed for the generated model and the
runtime kernels it uses (from the map file; the test harness and start-up code are excluded).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np

from . import codegen, hostbuild
from .ir import to_device_layout

#: Measured elsewhere on the same emulator (engine and CMSIS-NN issues); printed for comparison.
ANCHORS = {"CMSIS-NN (DSP paths, -O2)": 7_691_323, "plain C reference kernels (-O2)": 29_200_000}
RUNTIME_OBJECTS = ("tm_ref.o", "tm_opt.o", "tm_interp.o")


@dataclass
class BenchResult:
    """One build's measurements: per-layer and total instructions, memory in bytes."""
    kernels: str
    generated: codegen.GeneratedModel
    layer_instructions: np.ndarray     # (layers,) for the first clip
    instructions: int                  # per inference, first clip
    arena_bytes: int
    flash_bytes: int                   # generated model (constants + code) + runtime kernels linked
    ram_bytes: int                     # the model's static RAM: arena (+ any other .data/.bss)
    weights_bytes: int                 # constant arrays alone: weights, biases, multipliers, shifts


def kws_model(clips: int = 1):
    """(IntModel of the cached DS-CNN-S baseline, int8 test inputs (clips, 1, 49, 10), data description)."""
    from ..kws_data import kws_features, load_kws
    from ..quant import interpreter
    from ..quant.convert import convert
    from ..train import get_baseline

    feats = kws_features("synthetic")
    model, _ = get_baseline("ds_cnn_s", progress=False)
    int_model = convert(model, feats["train"][0][:512], name="ds_cnn_s")
    x_q = interpreter.quantize_input(int_model, feats["test"][0][:clips])
    return int_model, x_q, load_kws("synthetic").description


def measure(int_model, x_q: np.ndarray, kernels_sets=("ref", "opt"), flags=(), **plan) -> dict:
    """Build each kernel set, run the inputs on QEMU, check them against the interpreter; results by set."""
    from ..quant import interpreter

    expected = to_device_layout(interpreter.run(int_model, x_q), int_model.output_spec.shape)
    x_dev = to_device_layout(x_q, int_model.input_spec.shape)
    results = {}
    for kernels in kernels_sets:
        gen = codegen.generate(int_model, kernels=kernels, prefix="model", **plan)
        run = hostbuild.run_on_qemu([gen], [x_dev], flags=list(flags))
        if not np.array_equal(run.outputs[0], expected):
            raise AssertionError(f"{kernels} kernels on QEMU differ from the integer interpreter")
        mem = [run.memory.get(name, {"flash": 0, "ram": 0}) for name in ("all_models.o", *RUNTIME_OBJECTS)]
        results[kernels] = BenchResult(kernels, gen, run.layer_instructions[0][0], int(run.instructions[0][0]),
                                       gen.plan.arena_bytes, sum(m["flash"] for m in mem),
                                       sum(m["ram"] for m in mem), gen.const_bytes)
    return results


def layer_table(results: dict):
    """A pandas table: per layer MACs, and per kernel set instructions, instructions/MAC, kernel."""
    import pandas as pd

    first = next(iter(results.values())).generated
    rows = []
    for i, op in enumerate(first.graph.ops):
        row = {"layer": op.name, "kind": op.kind, "MACs": op.macs}
        for name, r in results.items():
            row[f"{name} instructions"] = int(r.layer_instructions[i])
            row[f"{name} instr/MAC"] = round(r.layer_instructions[i] / op.macs, 2) if op.macs else None
            row[f"{name} kernel"] = r.generated.choices[op.name].function or "(view)"
        rows.append(row)
    total = {"layer": "total (model_run)", "kind": "", "MACs": first.graph.macs}
    for name, r in results.items():
        total.update({f"{name} instructions": r.instructions, f"{name} instr/MAC": round(r.instructions / first.graph.macs, 2),
                      f"{name} kernel": ""})
    return pd.DataFrame(rows + [total]).set_index("layer")


def summary(results: dict) -> dict:
    """The JSON summary: the optimised build's figures, the reference build's instructions."""
    opt, ref = results.get("opt"), results.get("ref")
    best = opt or ref
    return {"model": "ds_cnn_s", "macs": best.generated.graph.macs, "instructions": best.instructions,
            "ref_instructions": ref.instructions if ref else None, "arena_bytes": best.arena_bytes,
            "flash_bytes": best.flash_bytes, "ram_bytes": best.ram_bytes, "weights_bytes": best.weights_bytes}


def main(argv=None) -> int:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1, help="test clips to run (and check) per build")
    parser.add_argument("--flags", default="", help='extra arm-none-eabi-gcc flags, e.g. "-O3"')
    parser.add_argument("--kernels", default="ref,opt", help="kernel sets to build, from ref, generic, opt")
    args = parser.parse_args(argv)
    int_model, x_q, description = kws_model(args.clips)
    results = measure(int_model, x_q, kernels_sets=tuple(args.kernels.split(",")), flags=args.flags.split())
    print(f"DS-CNN-S int8 on QEMU mps2-an386 (Cortex-M4), -icount shift=0: instructions per inference "
          f"(clip 1 of {len(x_q)}; every clip checked against the interpreter). Data: {description}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(layer_table(results).to_string())
    for name, r in results.items():
        print(f"{name:>7}: {r.instructions:>12,} instructions  arena {r.arena_bytes:,} B  flash {r.flash_bytes:,} B "
              f"(weights and other constants {r.weights_bytes:,} B)  RAM {r.ram_bytes:,} B")
    for name, value in ANCHORS.items():
        print(f"anchor: {name}: {value:,} instructions")
    print(json.dumps(summary(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
