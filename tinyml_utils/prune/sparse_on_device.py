"""What sparsity costs in time on a Cortex-M4: count the instructions of dense and sparse kernels.

One pointwise convolution (int8 weights (C_out, C_in), int8 inputs (positions, C_in), int32
outputs) is run on the emulated Cortex-M4 by the four kernels of `sparse_pointwise.c` (beside
this module): the plain dense loop, the SIMD dense loop (SXTB16 + SMLAD, as CMSIS-NN), CSR and
bitmask. The program is built like every program the course runs on QEMU (`mcu.build`: the
firmware's start-up code, the board's linker script, the Cortex-M4F's hard-float ABI), and QEMU
with `-icount` counts executed instructions exactly (`mcu/firmware/cycles.h`); every kernel's
outputs are checked against NumPy.

Instructions are not cycles: on a real Cortex-M4 most instructions take one cycle, loads two
(pipelined ones less), and SMLAD one. The counts show the work each inner loop does per weight.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .. import emulator
from ..mcu import programs
from .formats import to_csr

KERNELS = ("dense_ref", "dense_simd", "csr", "bitmask")
SPARSE_KERNELS = Path(__file__).parent / "sparse_pointwise.c"


def _c_array(ctype: str, name: str, values, align: int = 4) -> str:
    flat = ", ".join(str(int(v)) for v in np.asarray(values).flatten())
    return f"static const {ctype} {name}[] __attribute__((aligned({align}))) = {{{flat}}};\n"


def _checksum(out: np.ndarray) -> int:
    """Position-weighted sum of int32 outputs modulo 2^32, as the C program computes it."""
    weights = np.arange(1, out.size + 1, dtype=np.uint64)
    return int((out.flatten().astype(np.int64).astype(np.uint64) * weights).sum() % (1 << 32))


def program(weights: list[np.ndarray], x: np.ndarray) -> str:
    """C source of a program that times every kernel on every weight matrix and prints
    'case kernel instructions checksum' lines."""
    positions, c_in = x.shape
    c_out = weights[0].shape[0]
    if (c_in % 4 and c_in > 4) or any(w.shape != (c_out, c_in) for w in weights):
        raise ValueError(f"all weights must be (C_out, C_in) with C_in a multiple of 4 (the SIMD kernel reads "
                         f"four weights per word), got {[w.shape for w in weights]} for inputs {x.shape}")
    src = ['#include <stdint.h>\n#include "semihost.h"\n#include "cycles.h"\n#include "sparse_pointwise.h"\n',
           f"#define P {positions}\n#define CIN {c_in}\n#define COUT {c_out}\n",
           _c_array("int8_t", "x", x), "static int32_t out[P * COUT];\nstatic int16_t x16[2 * CIN] __attribute__((aligned(4)));\n"]
    calls = []
    for n, w in enumerate(weights):
        csr = to_csr(w)
        padded = np.zeros((c_out, -(-c_in // 32) * 32), dtype=bool)   # rows padded to whole 32-bit words
        padded[:, :c_in] = w != 0
        bits = np.packbits(padded, axis=1, bitorder="little").view("<u4")  # (C_out, ceil(C_in / 32))
        src += [_c_array("int8_t", f"w{n}", w), _c_array("int8_t", f"v{n}", csr["values"] if len(csr["values"]) else [0]),
                _c_array("uint8_t", f"col{n}", csr["col_index"] if len(csr["col_index"]) else [0]),
                _c_array("uint16_t", f"ptr{n}", csr["row_ptr"]), _c_array("uint32_t", f"bits{n}", bits)]
        calls += [f"  MEASURE({n}, 0, pw_dense_ref(x, w{n}, out, P, CIN, COUT));",
                  f"  MEASURE({n}, 1, pw_dense_simd(x, w{n}, out, P, CIN, COUT, x16));",
                  f"  MEASURE({n}, 2, pw_csr(x, v{n}, col{n}, ptr{n}, out, P, CIN, COUT));",
                  f"  MEASURE({n}, 3, pw_bitmask(x, (const uint32_t *)bits{n}, v{n}, out, P, CIN, COUT));"]
    src.append(r"""
static uint32_t checksum(void) {
  uint32_t sum = 0;
  for (uint32_t i = 0; i < P * COUT; i++) sum += (uint32_t)out[i] * (i + 1u);
  return sum;
}
#define MEASURE(n, k, call) do { uint64_t t0 = ticks_now(); call; uint64_t t1 = ticks_now(); \
  sh_write_int(n); sh_write(" "); sh_write_int(k); sh_write(" "); \
  sh_write_int((int32_t)((t1 - t0) * INSTRUCTIONS_PER_TICK)); sh_write(" "); \
  sh_write_hex(checksum()); sh_write("\n"); } while (0)
int main(void) {
  ticks_start();
""" + "\n".join(calls) + "\n  return 0;\n}\n")
    return "".join(src)


def kernel_instructions(weights: list[np.ndarray], x: np.ndarray, timeout: float = 120.0):
    """Instructions each kernel executes for each int8 weight matrix (C_out, C_in) on inputs x
    (positions, C_in), measured on QEMU's Cortex-M4. Returns a pandas DataFrame, one row per matrix:
    nonzeros, sparsity and the instructions of every kernel. Raises if any kernel's outputs differ
    from NumPy's."""
    import pandas as pd

    weights = [np.ascontiguousarray(w, dtype=np.int8) for w in weights]
    x = np.ascontiguousarray(x, dtype=np.int8)
    with tempfile.TemporaryDirectory() as tmp:
        main = Path(tmp) / "main.c"
        main.write_text(program(weights, x))
        elf = programs.compile_cortex_m4([main, SPARSE_KERNELS], Path(tmp) / "main.elf",
                                         [f"-I{SPARSE_KERNELS.parent}", "-Werror"])
        result = emulator.run_qemu(elf, timeout=timeout)
    if result.exit_code != 0:
        raise RuntimeError(f"the kernel program failed on QEMU (exit code {result.exit_code}): {result.output}")
    rows = {n: {"nonzeros": int((w != 0).sum()), "sparsity": float((w == 0).mean())} for n, w in enumerate(weights)}
    for line in result.output.split("\n"):
        if not line.strip():
            continue
        n, k, count, checksum = (int(v, 0) for v in line.split())
        expected = _checksum(x.astype(np.int32) @ weights[n].astype(np.int32).T)
        if checksum != expected:
            raise RuntimeError(f"kernel {KERNELS[k]} computed wrong outputs for weight matrix {n} "
                               f"(checksum {checksum}, NumPy {expected})")
        rows[n][KERNELS[k]] = count
    return pd.DataFrame.from_dict(rows, orient="index")
