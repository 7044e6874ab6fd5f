"""Benchmark the whole keyword-spotting firmware on the emulated Cortex-M4: the course's figures.

    python -m tinyml_utils.bench [--clips N] [--board stm32f301k8]

What it builds and runs, all on QEMU `mps2-an386` (Cortex-M4F) with `-icount shift=0` (SysTick
counts instructions, 40 per tick, deterministic), linked against a real part's memory map:

1. the batch firmware (`mcu/firmware/kws_clips.c`: on-device MFCC front end, then the model)
   twice, with the engine's plain reference kernels and with its optimised (shape-specialised)
   kernels, on N test clips. The model is the course's deployed int8 DS-CNN-S
   (`deployed.get_int8_baseline`). Every layer's instructions come from the firmware's layer
   marks (the table is `mcu.measure.layer_table`, the one the chapters print); the logits of
   every clip are checked against the integer interpreter run on the device's own features;
2. the streaming firmware (`mcu/firmware/kws_stream.c`: a 20 ms hop front end, a ring of the last
   second of features, the model, posterior smoothing) with the optimised kernels, on a few
   seconds of test clips played back to back, to measure the memory of the whole keyword spotter.

It prints the per-layer table (instructions, instructions per MAC, kernel, and the gap to the
SMLAD limit of 2 MACs per instruction), the totals beside the cited figures (`ANCHORS`: measured
elsewhere on the same emulator, board, compiler and model), and as its last line one JSON object:

* `instructions`: one DS-CNN-S inference with the optimised kernels (`model_run()`, the largest
  over the clips);
* `arena_bytes`: the model's arena (MODEL_ARENA_SIZE: every activation and kernel scratch);
* `ram_bytes`: SRAM of the whole streaming firmware = .data + .bss (arena, front-end buffers,
  feature ring, posteriors, I/O buffers) + the stack's measured peak (painted stack);
* `flash_bytes`: the streaming firmware's whole flash image (vector table, code, the model's
  constants, the front end's tables, .data's initial values).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

#: Figures measured outside the course's code (same emulator, board, compiler and model), cited
#: by the benchmark and the chapters; the one place they are written down.
ANCHORS = {
    "cmsis_nn": {"what": "CMSIS-NN (DSP paths, -O2)", "instructions": 7_691_323,
                 "per_mac": {"pointwise": 2.09, "conv2d": 3.49, "depthwise": 7.79},
                 "flash_kb": 50.9, "weights_kb": 30.0, "bss_kb": 17.2, "stack_kb": 1.06,
                 "activation_bytes": 16_000},    # two 8,000-byte activation buffers (+ kernel scratch)
    "plain_c": {"what": "plain C reference kernels (-O2)", "instructions": 29_200_000},
    "tflite_micro": {"what": "TFLite Micro", "model": "MLPerf's KWS model", "arena_bytes": 24_272,
                     "activation_bytes": 16_000},
}
#: The front end's per-frame work buffers (mcu/firmware/frontend/mfcc.c): dead while the model runs.
FRONTEND_WORK_BUFFERS = ("fft_buffer", "magnitude", "log_mel")
TARGETS = {"instructions": 4_000_000, "arena_bytes": 9 * 1024, "ram_bytes": 16 * 1024, "flash_bytes": 48 * 1024}


def device_clips(int_model, waves: np.ndarray, kernels: str, board: str, workdir: Path, stack_reserve: int):
    """Build the batch firmware with `kernels` and classify `waves` (N, 16000) int16 on the device.

    Returns (ClipResults, generated model); raises if a logit differs from the interpreter's."""
    from .mcu import kws
    from .quant import interpreter

    code = kws.engine_code(int_model, workdir / f"model_{kernels}", kernels=kernels)
    firmware = kws.build_kws(code, board, workdir / f"build_{kernels}", stack_reserve=stack_reserve)
    result = kws.run_clips(firmware, waves, workdir / f"run_{kernels}", write_features=True,
                           timeout=60 + 2.0 * len(waves))
    expected = interpreter.run(int_model, result.features[:, None])
    if not np.array_equal(result.logits, expected):
        raise AssertionError(f"{kernels} kernels: the device's logits differ from the integer interpreter's")
    return result, code.meta["generated"]


def device_stream(int_model, waves: np.ndarray, board: str, workdir: Path, stack_reserve: int) -> dict:
    """Run the streaming firmware (optimised kernels) on `waves` played back to back; its memory in bytes."""
    from .mcu import kws, streaming
    from .quant import interpreter

    code = kws.engine_code(int_model, workdir / "model_stream", kernels="opt")
    firmware = kws.build_kws(code, board, workdir / "build_stream", app="stream", stack_reserve=stack_reserve)
    config = streaming.DetectorConfig()
    run = streaming.run_stream(firmware, np.concatenate(list(waves)), config, workdir / "run_stream",
                               write_features=True)
    _, windows = streaming.windows(run.features, config)
    if not np.array_equal(run.logits, interpreter.run(int_model, windows[:, None])):
        raise AssertionError("streaming firmware: the device's logits differ from the integer interpreter's")
    stack = run.run.stack_peak_bytes
    work = {name: n for name, n, mem in firmware.symbols() if mem == "RAM" and name in FRONTEND_WORK_BUFFERS}
    return {"flash_bytes": firmware.flash_bytes, "static_ram_bytes": firmware.static_ram_bytes, "stack_bytes": stack,
            "ram_bytes": firmware.static_ram_bytes + stack, "inferences": len(run.logits),
            "frontend_work_buffers": work, "scratch_bytes": code.meta["generated"].scratch_size,
            "sections": firmware.sections, "symbols": firmware.symbols(256)}


def layer_table(results: dict, generated: dict):
    """Per layer (first clip): MACs, the SMLAD limit, per kernel set instructions, per MAC, kernel;
    the cited CMSIS-NN figures beside them (`mcu.measure.layer_table`)."""
    from .mcu.measure import layer_table as table_of

    cmsis = ANCHORS["cmsis_nn"]
    table = table_of({k: r.layer_instructions[0] for k, r in results.items()},
                     {k: r.model_instructions.max() for k, r in results.items()}, generated, cmsis["per_mac"])
    table.loc["total (model_run)", "CMSIS-NN instr/MAC (cited)"] = round(cmsis["instructions"] / table["MACs"].iloc[-1], 2)
    return table


def cited_lines() -> list[str]:
    """The cited figures of `ANCHORS`, one line each, as the benchmark prints them."""
    c, p, t = ANCHORS["cmsis_nn"], ANCHORS["plain_c"], ANCHORS["tflite_micro"]
    per_mac = c["per_mac"]
    return [f"{c['what']}: {c['instructions']:,} instructions per inference; per MAC: pointwise "
            f"{per_mac['pointwise']}, first conv {per_mac['conv2d']}, depthwise {per_mac['depthwise']}; firmware "
            f"{c['flash_kb']} KB flash ({c['weights_kb']} KB weights), {c['bss_kb']} KB .bss, {c['stack_kb']} KB stack",
            f"{p['what']}: {p['instructions'] / 1e6:.1f} M instructions per inference",
            f"{t['what']}: {t['arena_bytes']:,}-byte arena for {t['model']} ({t['activation_bytes']:,} B of activations)"]


def run(clips: int = 3, board: str = "stm32f301k8", stack_reserve: int = 1024, stream_clips: int = 3,
        workdir: Path | None = None) -> dict:
    """Everything `main` prints, as data: {"table", "summary", "stream", "generated", "clips"}."""
    from .deployed import get_int8_baseline
    from .kws_data import load_kws

    int_model = get_int8_baseline()
    data = load_kws()   # the source TINYML_DATA chooses
    waves, description = data.test.waves, data.description
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        results, generated = {}, {}
        for kernels in ("ref", "opt"):
            results[kernels], generated[kernels] = device_clips(int_model, waves[:clips], kernels, board, work,
                                                                stack_reserve)
        stream = device_stream(int_model, waves[clips:clips + stream_clips], board, work, stack_reserve)
    opt = results["opt"]
    summary = {"instructions": int(opt.model_instructions.max()), "arena_bytes": generated["opt"].plan.arena_bytes,
               "ram_bytes": stream["ram_bytes"], "flash_bytes": stream["flash_bytes"],
               "ref_instructions": int(results["ref"].model_instructions.max()),
               "macs": generated["opt"].graph.macs, "stack_bytes": stream["stack_bytes"],
               "frontend_instructions_per_clip": int(opt.frontend_instructions.max()), "board": board,
               "firmware": "mcu kws_clips (instructions), kws_stream (RAM, flash)"}
    return {"table": layer_table(results, generated), "summary": summary, "stream": stream, "generated": generated,
            "clips": clips, "data": description}


def main(argv=None) -> int:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3, help="test clips classified (and checked) per build")
    parser.add_argument("--board", default="stm32f301k8", help="board profile whose memory the firmware is linked for")
    parser.add_argument("--stack-reserve", type=int, default=1024, help="bytes of stack the linker must leave free")
    args = parser.parse_args(argv)
    out = run(args.clips, args.board, args.stack_reserve)
    s, stream = out["summary"], out["stream"]
    print(f"KWS firmware (MFCC front end + DS-CNN-S int8) on QEMU mps2-an386 (Cortex-M4F), -icount shift=0, "
          f"linked for {args.board}; {out['clips']} test clips, every logit equal to the integer interpreter's "
          f"on the device's features. Data: {out['data']}")
    print("Per layer (first clip; the marks include ~20 instructions of the layer hook):")
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(out["table"].to_string())
    print(f"model_run(): reference kernels {s['ref_instructions']:,}, optimised {s['instructions']:,} instructions "
          f"({s['ref_instructions'] / s['instructions']:.1f}x fewer); SMLAD limit {s['macs'] // 2:,}")
    print(f"arena {s['arena_bytes']:,} B; streaming firmware: flash {stream['flash_bytes']:,} B, "
          f"RAM {stream['ram_bytes']:,} B = .data + .bss {stream['static_ram_bytes']:,} + stack peak "
          f"{stream['stack_bytes']:,} ({stream['inferences']} inferences checked)")
    work = stream["frontend_work_buffers"]
    if work and sum(work.values()) <= stream["scratch_bytes"]:
        print(f"not done (the firmware is mcu's): the front end's per-frame buffers ({', '.join(work)}: "
              f"{sum(work.values()):,} B of .bss) fit the arena's free region (model_scratch(), "
              f"{stream['scratch_bytes']:,} B); placed there, RAM would be {stream['ram_bytes'] - sum(work.values()):,} B")
    for line in cited_lines():
        print(f"cited (measured elsewhere): {line}")
    print(f"SMLAD limit: 2 MACs per instruction: {s['macs']:,} MACs need >= {s['macs'] // 2:,} instructions")
    for key, limit in TARGETS.items():
        verdict = "met" if s[key] <= limit else f"NOT met (+{s[key] - limit:,})"
        print(f"target {key} <= {limit:,}: {s[key]:,} {verdict}")
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
