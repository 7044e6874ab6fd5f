"""The smallest way to try C on the device: build sources for the default board and run one file.

Both use the one road to the device (`mcu.build`: the firmware's start-up code, the board's
linker script, the hard-float ABI) and the default board profile (`boards.DEFAULT_BOARD`: QEMU's
`mps2-an386`, a Cortex-M4F). The program talks to the host through semihosting
(`firmware/semihost.h`): what it prints comes back as text, and the value `main()` returns becomes
QEMU's exit code.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..emulator import RunResult, check_fault, run_qemu
from .boards import DEFAULT_BOARD
from .build import build


def compile_cortex_m4(sources: list[Path], elf: Path, extra_flags: list[str] = ()) -> Path:
    """Compile and link C sources with the course's start-up code for the default board into `elf`.

    A compiler error raises `mcu.build.BuildError` (a RuntimeError) with gcc's message."""
    elf = Path(elf)
    return build(sources, DEFAULT_BOARD, elf.parent, name=elf.stem, extra_flags=list(extra_flags)).elf


def run_c_program(code: str, timeout: float = 20.0) -> RunResult:
    """Compile one C file (with `int main(void)`; `#include "semihost.h"` to print, `"cycles.h"` to
    count instructions) and run it; a fault raises `ProgramFault` naming the function and line."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "main.c"
        src.write_text(code)
        elf = compile_cortex_m4([src], Path(tmp) / "main.elf", ["-g"])   # -g: line numbers for fault reports
        result = run_qemu(elf, timeout=timeout)
        check_fault(elf, result)
        return result
