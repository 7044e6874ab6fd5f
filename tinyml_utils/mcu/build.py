"""Build a program for a board: the one road from C to the emulated device.

Everything the course runs on QEMU is built here: the keyword-spotting firmware, the engine's
model harness (`models_on_device.py`), chapter 2's sparse kernels and the emulator smoke tests.
One start-up code (`firmware/startup.c`: FPU on, .data/.bss, painted stack, stack guard), one
linker script per board (`firmware/board_template.ld`, sizes from `boards.py`), one ABI (the
board's, hard-float on the Cortex-M4F), so an instruction count means the same thing everywhere.

Each C file is compiled on its own into a named object, then all are linked against the board's
script, with a map file: `Firmware.memory_by_object()` says which object's bytes went where.
When the program does not fit, the linker says "region `RAM' overflowed by N bytes"; `build`
turns that into a `DoesNotFit` error naming the board, the region and the bytes over. Sizes come
from the ELF's section headers:

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
from ..emulator import require
from .boards import Board, get_board, linker_script

FIRMWARE = Path(__file__).parent / "firmware"
#: The device support every program links: start-up code, fault reports, semihosting, SysTick.
DEVICE_SOURCES = ("startup.c", "fault.c", "semihost.c", "cycles.c")
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
        """Address of a symbol in the ELF (also the linker script's, e.g. _sstack)."""
        nm = require("arm-none-eabi-nm")
        for line in subprocess.run([nm, str(self.elf)], capture_output=True, text=True, check=True).stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == name:
                return int(parts[0], 16)
        raise KeyError(f"{name} is not a symbol of {self.elf.name}")

    def where(self, address: int) -> str:
        """function (file:line) of a code address, for fault reports."""
        return emulator.where(self.elf, address)

    def memory_by_object(self) -> dict:
        """Flash and RAM bytes per object file, from the link's map: {"model.o": {"flash": B, "ram": B}}."""
        return memory_by_object(self.elf.with_suffix(".map").read_text())


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
        if not found or section not in (".text", ".rodata", ".data", ".bss"):
            continue
        size, obj = int(found.group(1), 16), Path(found.group(2)).name
        entry = usage.setdefault(obj, {"flash": 0, "ram": 0})
        entry["flash"] += size if section in (".text", ".rodata", ".data") else 0
        entry["ram"] += size if section in (".data", ".bss") else 0
    return usage


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


def compile_flags(board: str | Board, include_dirs: list = (), defines: dict | None = None,
                  extra_flags: list = ()) -> list[str]:
    """arm-none-eabi-gcc flags for one C file of a program for `board` (target, CFLAGS, -D, -I)."""
    return [*get_board(board).cflags, *CFLAGS, *extra_flags,
            *(f"-D{k}" if v is None else f"-D{k}={v}" for k, v in (defines or {}).items()),
            *(f"-I{d}" for d in [FIRMWARE, *include_dirs])]


def _object_names(sources: list) -> list[str]:
    """One object file name per source, its stem (the map file reports bytes by it), made unique."""
    names, seen = [], {}
    for src in sources:
        stem = Path(src).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.o" if seen[stem] == 1 else f"{stem}_{seen[stem]}.o")
    return names


def _run_gcc(cmd: list, board: Board) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        overflow = {r: int(n) for r, n in re.findall(r"region `(\w+)' overflowed by (\d+) bytes", done.stderr)}
        if overflow:
            raise DoesNotFit(board, overflow, done.stderr.strip())
        raise BuildError(f"arm-none-eabi-gcc failed for {board.name}:\n{done.stderr.strip()}")
    return done


def build(sources: list, board: str | Board, out_dir: str | Path, include_dirs: list = (),
          defines: dict | None = None, stack_reserve: int = 2048, name: str = "firmware",
          extra_flags: list = ()) -> Firmware:
    """Compile `sources` with the device support (`DEVICE_SOURCES`) and link them for `board`.

    `extra_flags` go to every compilation and to the link (e.g. ["-O3"]). Returns the `Firmware`;
    raises `DoesNotFit` when the image exceeds the board's flash or SRAM, `BuildError` on any
    other compiler or linker error, `ToolchainMissing` (with the install command) without gcc.
    """
    board = get_board(board)
    gcc = require("arm-none-eabi-gcc")
    out = Path(out_dir)
    objects_dir = out / "obj"
    objects_dir.mkdir(parents=True, exist_ok=True)
    script = out / f"{board.name}.ld"
    script.write_text(linker_script(board, stack_reserve))
    flags = compile_flags(board, include_dirs, defines, extra_flags)
    all_sources = [*(FIRMWARE / f for f in DEVICE_SOURCES), *map(Path, sources)]
    objects, warnings = [], []
    for src, obj_name in zip(all_sources, _object_names(all_sources)):
        obj = objects_dir / obj_name
        warnings.append(_run_gcc([gcc, *flags, "-c", str(src), "-o", str(obj)], board).stderr.strip())
        objects.append(str(obj))
    elf = out / f"{name}.elf"
    link = [gcc, *board.cflags, *CFLAGS, *extra_flags, *objects, "-T", str(script), *LDFLAGS,
            f"-Wl,-Map={elf.with_suffix('.map')}", "-o", str(elf)]
    warnings.append(_run_gcc(link, board).stderr.strip())
    return Firmware(elf, board, section_sizes(elf), stack_reserve, "\n".join(w for w in warnings if w),
                    dict(defines or {}))
