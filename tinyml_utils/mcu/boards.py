"""Board profiles: a QEMU machine (the core we can emulate) paired with the memory of a real part.

QEMU's MPS2/MPS3 boards have megabytes of memory; the parts people build keyword spotters on
have kilobytes. A profile keeps QEMU's core and memory map but gives the linker script the real
part's flash and SRAM sizes, so a firmware that would not fit the part fails to link, with the
region and the number of bytes over (see `build.py`).

With `-icount shift=0` one instruction takes 1 ns of virtual time, and SysTick counts at the
machine's clock (25 MHz on MPS2, 32 MHz on the MPS3 AN547 image): instructions = ticks * 1e9 /
`systick_hz`. `clock_hz` is the real part's core clock, for real-time budgets.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

KB = 1024

CORTEX_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
CORTEX_M7 = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")
CORTEX_M55 = ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard")


@dataclass(frozen=True)
class Board:
    """A QEMU machine with a real part's memory. Sizes in bytes, clocks in Hz."""
    name: str
    part: str              # the real part whose memory and clock the profile takes
    core: str
    machine: str           # qemu-system-arm -M ...
    cflags: tuple          # arm-none-eabi-gcc target flags
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    clock_hz: int          # the real part's core clock (for real-time budgets)
    systick_hz: int = 25_000_000  # QEMU's SysTick clock on `machine`

    @property
    def instructions_per_tick(self) -> float:
        """Instructions per SysTick tick under -icount shift=0 (1 instruction = 1 ns)."""
        return 1e9 / self.systick_hz

    def label(self) -> str:
        return f"{self.name} ({self.core}, {self.ram_bytes // KB} KB SRAM / {self.flash_bytes // KB} KB flash)"


# Memory and clocks from the makers' datasheets. QEMU models the core and the MPS2/MPS3 memory
# map; the sizes below are enforced by the linker script, not by QEMU.
BOARDS = {b.name: b for b in [
    Board("nrf52840", "Nordic nRF52840 (Arduino Nano 33 BLE Sense)", "Cortex-M4F", "mps2-an386", CORTEX_M4F,
          0x0000_0000, 1024 * KB, 0x2000_0000, 256 * KB, 64_000_000),
    Board("stm32l432kc", "ST STM32L432KC (Nucleo-L432KC)", "Cortex-M4F", "mps2-an386", CORTEX_M4F,
          0x0000_0000, 256 * KB, 0x2000_0000, 64 * KB, 80_000_000),
    Board("stm32f301k8", "ST STM32F301K8", "Cortex-M4F", "mps2-an386", CORTEX_M4F,
          0x0000_0000, 64 * KB, 0x2000_0000, 16 * KB, 72_000_000),
    Board("stm32f746ng", "ST STM32F746NG (32F746G-DISCO)", "Cortex-M7", "mps2-an500", CORTEX_M7,
          0x0000_0000, 1024 * KB, 0x2000_0000, 320 * KB, 216_000_000),
    # Arm's Corstone-300 FPGA image (AN547): code in the 512 KB ITCM, data in the 512 KB DTCM,
    # at the 32 MHz the image runs at (and QEMU's SysTick counts at).
    Board("corstone300", "Arm Corstone-300 (MPS3 AN547 image)", "Cortex-M55", "mps3-an547", CORTEX_M55,
          0x0000_0000, 512 * KB, 0x2000_0000, 512 * KB, 32_000_000, systick_hz=32_000_000),
]}

DEFAULT_BOARD = "nrf52840"


def get_board(board: str | Board) -> Board:
    """A profile by name (or the Board itself); unknown names list the known ones."""
    if isinstance(board, Board):
        return board
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; known boards: {', '.join(BOARDS)}")
    return BOARDS[board]


#: The linker script, with ${placeholders} filled in per board (string.Template).
LINKER_TEMPLATE = Path(__file__).parent / "firmware" / "board_template.ld"


def linker_script(board: str | Board, stack_reserve: int = 2048) -> str:
    """The linker script text for `board`, reserving at least `stack_reserve` bytes of stack."""
    b = get_board(board)
    return Template(LINKER_TEMPLATE.read_text()).substitute(
        part=b.part, core=b.core, machine=b.machine, flash_origin=f"0x{b.flash_origin:08X}", flash_bytes=b.flash_bytes,
        ram_origin=f"0x{b.ram_origin:08X}", ram_bytes=b.ram_bytes, stack_reserve=stack_reserve)
