"""Compile generated models with the host's gcc and run them: `run_host`.

The runner takes several generated models at once and compiles them into one program (each
model's C is prefixed, so many fit in one translation unit): a thousand small graphs cost one
compilation, not a thousand. The program (`host_main.c`) reads inputs from stdin and writes
outputs (and, on request, every layer's output via the layer hook) to stdout.

The same models run on the emulated Cortex-M4 with `mcu.models_on_device.run_on_qemu`, which
shares this module's input checks and model table (`device_inputs`, `write_models`,
`model_table`).

Inputs and outputs are int8 arrays (N, bytes) in the device's HWC order (`ir.to_device_layout`).
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .. import emulator
from .codegen import RUNTIME, GeneratedModel, runtime_sources

HOST_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
HOST_MAIN = Path(__file__).parent / "host_main.c"


def host_compiler() -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise emulator.ToolchainMissing("no host C compiler: install one with  sudo apt-get install -y gcc")
    return gcc


def write_models(models: list[GeneratedModel], workdir: Path) -> Path:
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


def model_table(models: list[GeneratedModel]) -> str:
    """C text of harness_models.h's table: the models' headers, a `<prefix>_layer_hook` per model
    forwarding to the harness's `layer_hook`, and `models[]`, their entry points and sizes."""
    hooks = "".join(f"void {m.prefix}_layer_hook(int layer, const int8_t *out, int32_t bytes) "
                    f"{{ layer_hook(layer, out, bytes); }}\n" for m in models)
    rows = ",\n  ".join(f"{{{m.prefix}_input, {m.prefix}_output, {m.prefix}_run, {m.prefix.upper()}_INPUT_SIZE, "
                        f"{m.prefix.upper()}_OUTPUT_SIZE, {m.prefix}_scratch, {m.prefix.upper()}_SCRATCH_SIZE}}"
                        for m in models)
    return ("".join(f'#include "{m.prefix}.h"\n' for m in models) +
            "typedef struct { int8_t *(*input)(void); const int8_t *(*output)(void); void (*run)(void); "
            "int32_t in_size, out_size; int8_t *(*scratch)(void); int32_t scratch_size; } model_entry;\n" + hooks +
            f"static const model_entry models[{len(models)}] = {{\n  {rows}\n}};\n")


def hook_defines(models: list[GeneratedModel]) -> list[str]:
    """-D flags that make every model call its layer hook."""
    return [f"-D{m.prefix.upper()}_LAYER_HOOK" for m in models]


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
    all_models = write_models(models, workdir)
    (workdir / "harness_models.h").write_text(model_table(models))
    common = [*HOST_CFLAGS, *hook_defines(models), f"-I{RUNTIME}", f"-I{workdir}"]
    objects = []
    for src, opt in [(HOST_MAIN, ["-O0"]), (all_models, list(model_flags))] + [(s, ["-O2", *flags]) for s in runtime_sources()]:
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
