"""Build firmware for a board: arm-none-eabi-gcc, the board's linker script, sizes from the ELF.

The firmware's C sources (start-up code, semihosting, SysTick, the application and the model) are
compiled and linked in one `arm-none-eabi-gcc` call against a linker script that has the real
part's flash and SRAM sizes (`boards.py`). When the program does not fit, the linker says
"region `RAM' overflowed by N bytes"; `build` turns that into a `DoesNotFit` error naming the
board, the region and the bytes over. Sizes come from the ELF's section headers:

* flash = vector table + code + constants + the initial values of .data (copied to RAM at reset);
* static RAM = .data + .bss (the stack comes on top; `run.py` measures its peak on the device).

The stack sits at the bottom of RAM, below .data and .bss (`firmware/board_template.ld`), with a
guard below it (`firmware/startup.c`): a stack that overflows faults instead of overwriting data.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .. import emulator
from ..emulator import CSRC, require
from .boards import Board, get_board, linker_script

FIRMWARE = Path(__file__).parent / "firmware"
FLASH_SECTIONS = (".isr_vector", ".text", ".rodata", ".ARM.exidx", ".data")
#: -O2 plus: no copy loops turned into memcpy calls (the reset handler is such a loop); every
#: function and variable in its own section so the linker drops unused ones; no errno from sqrtf
#: (so it is one VSQRT instruction); debug info for addr2line (it does not go to flash).
CFLAGS = ("-O2", "-g", "-ffreestanding", "-fno-tree-loop-distribute-patterns", "-ffunction-sections",
          "-fdata-sections", "-fno-math-errno", "-Wall")
#: newlib's libm (logf, expf) and libc (memcpy, memset), and libgcc; no C run-time start-up files.
LDFLAGS = ("-nostartfiles", "-Wl,--gc-sections", "-lm", "-lc", "-lgcc")


class BuildError(RuntimeError):
    """The compiler or linker failed; the message holds its output."""


class DoesNotFit(BuildError):
    """The firmware does not fit the board's flash or SRAM: `overflow` maps region -> bytes over."""

    def __init__(self, board: Board, overflow: dict, log: str):
        self.board, self.overflow = board, overflow
        what = "; ".join(f"{_region_label(r)} overflowed by {n:,} bytes" for r, n in overflow.items())
        super().__init__(f"the firmware does not fit {board.label()}: {what}.\nLinker output:\n{log}")


def _region_label(region: str) -> str:
    return {"RAM": "SRAM (RAM region: .data + .bss + stack reserve)",
            "FLASH": "flash (FLASH region: code + constants + .data initial values)"}.get(region, region)


@dataclass
class Firmware:
    """A linked firmware image and its section sizes (bytes)."""
    elf: Path
    board: Board
    sections: dict
    stack_reserve: int
    warnings: str = ""
    defines: dict = field(default_factory=dict)

    @property
    def flash_bytes(self) -> int:
        """Bytes of flash the image occupies (code, constants, .data's initial values)."""
        return sum(self.sections.get(s, 0) for s in FLASH_SECTIONS)

    @property
    def data_bytes(self) -> int:
        return self.sections.get(".data", 0)

    @property
    def bss_bytes(self) -> int:
        return self.sections.get(".bss", 0)

    @property
    def stack_bytes(self) -> int:
        """Bytes of the stack region: the RAM that .data and .bss leave (at least `stack_reserve`)."""
        return self.sections.get(".stack", 0)

    @property
    def static_ram_bytes(self) -> int:
        """.data + .bss: RAM in use before the stack."""
        return self.data_bytes + self.bss_bytes

    def symbols(self, min_bytes: int = 0) -> list[tuple[str, int, str]]:
        """(name, bytes, memory) of every function and variable, largest first; memory is
        'flash' (code, constants), 'RAM' (.bss) or 'RAM+flash' (.data)."""
        nm = require("arm-none-eabi-nm")
        out = subprocess.run([nm, "-S", "--size-sort", "-C", str(self.elf)], capture_output=True, text=True,
                             check=True).stdout
        where = {"t": "flash", "r": "flash", "b": "RAM", "d": "RAM+flash"}
        rows = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[2].lower() in where and int(parts[1], 16) >= min_bytes:
                rows.append((parts[3], int(parts[1], 16), where[parts[2].lower()]))
        return sorted(rows, key=lambda r: -r[1])

    def symbol_address(self, name: str) -> int:
        """Address of a symbol in the ELF."""
        nm = require("arm-none-eabi-nm")
        for line in subprocess.run([nm, str(self.elf)], capture_output=True, text=True, check=True).stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == name:
                return int(parts[0], 16)
        raise KeyError(f"{name} is not a symbol of {self.elf.name}")

    def where(self, address: int) -> str:
        """function (file:line) of a code address, for fault reports."""
        return emulator.where(self.elf, address)


def section_sizes(elf: Path) -> dict:
    """Sizes in bytes of the allocated sections of an ELF, by name."""
    size = require("arm-none-eabi-size")
    out = subprocess.run([size, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return {k: v for k, v in sizes.items() if not k.startswith((".debug", ".comment", ".ARM.attributes"))}


def build(sources: list, board: str | Board, out_dir: str | Path, include_dirs: list = (),
          defines: dict | None = None, stack_reserve: int = 2048, name: str = "firmware",
          extra_flags: list = ()) -> Firmware:
    """Compile and link `sources` with the start-up code for `board`; returns the `Firmware`.

    Raises `DoesNotFit` when the image exceeds the board's flash or SRAM, `BuildError` on any
    other compiler or linker error, `ToolchainMissing` (with the install command) without gcc.
    """
    board = get_board(board)
    gcc = require("arm-none-eabi-gcc")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    script = out / f"{board.name}.ld"
    script.write_text(linker_script(board, stack_reserve))
    elf = out / f"{name}.elf"
    defines = dict(defines or {})
    cmd = [gcc, *board.cflags, *CFLAGS, *extra_flags,
           *(f"-D{k}" if v is None else f"-D{k}={v}" for k, v in defines.items()),
           *(f"-I{d}" for d in [CSRC, FIRMWARE, *include_dirs]),
           str(FIRMWARE / "startup.c"), *(str(CSRC / f) for f in ("fault.c", "semihost.c", "cycles.c")),
           *map(str, sources),
           "-T", str(script), *LDFLAGS, "-o", str(elf)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        overflow = {r: int(n) for r, n in re.findall(r"region `(\w+)' overflowed by (\d+) bytes", done.stderr)}
        if overflow:
            raise DoesNotFit(board, overflow, done.stderr.strip())
        raise BuildError(f"arm-none-eabi-gcc failed for {board.name}:\n{done.stderr.strip()}")
    return Firmware(elf, board, section_sizes(elf), stack_reserve, done.stderr.strip(), defines)
