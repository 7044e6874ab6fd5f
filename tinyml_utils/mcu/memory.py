"""Where a firmware's bytes go, and which boards it fits.

Flash holds what must survive power-off: code, constants (the model's weights, biases,
multipliers and shifts; the front end's tables) and the initial values of .data. SRAM holds
what changes: .data, .bss (the model's arena, the front end's buffers) and the stack. The RAM a
firmware needs is .data + .bss + the stack's peak, measured on the device by stack painting.
"""
from __future__ import annotations

import pandas as pd

from .boards import BOARDS, Board, get_board
from .build import Firmware

#: Name prefixes of the front end's and the model's symbols (see frontend.py and the engine's codegen).
FRONTEND_TABLES = ("mfcc_window", "mfcc_fft_twiddle", "mfcc_split_twiddle", "mfcc_bit_reverse", "mfcc_mel_",
                   "mfcc_dct")
FRONTEND_BUFFERS = ("fft_buffer", "magnitude", "log_mel", "stream", "hop", "ring", "posteriors")


def breakdown(firmware: Firmware, stack_peak: int) -> dict:
    """Bytes by part: {"flash": {part: bytes}, "RAM": {part: bytes}} (parts sum to the totals)."""
    symbols = firmware.symbols()
    model_consts = sum(n for name, n, mem in symbols if mem == "flash" and name.startswith("model_l"))
    tables = sum(n for name, n, mem in symbols if mem == "flash" and name.startswith(FRONTEND_TABLES))
    rodata = firmware.sections.get(".rodata", 0)
    flash = {"code": firmware.sections.get(".text", 0) + firmware.sections.get(".isr_vector", 0)
             + firmware.sections.get(".ARM.exidx", 0),
             "model constants": model_consts, "front-end tables": tables,
             "other constants": rodata - model_consts - tables, ".data initial values": firmware.data_bytes}
    arena = sum(n for name, n, mem in symbols if mem == "RAM" and name == "model_arena")
    buffers = sum(n for name, n, mem in symbols if mem == "RAM" and name in FRONTEND_BUFFERS)
    ram = {"model arena": arena, "front-end buffers": buffers,
           "other .bss and .data": firmware.static_ram_bytes - arena - buffers, "stack (peak)": stack_peak}
    return {"flash": flash, "RAM": ram}


def verdicts(flash_bytes: int, ram_bytes: int, boards=None) -> pd.DataFrame:
    """Per board: fits or not, and by how many bytes, for a firmware needing `flash_bytes` of flash
    and `ram_bytes` of SRAM (.data + .bss + peak stack)."""
    rows = []
    for board in (boards or BOARDS.values()):
        b: Board = get_board(board)
        flash_margin, ram_margin = b.flash_bytes - flash_bytes, b.ram_bytes - ram_bytes
        short = [f"{what} short by {-m:,} B" for what, m in (("flash", flash_margin), ("SRAM", ram_margin)) if m < 0]
        rows.append({"board": b.name, "core": b.core, "flash KB": b.flash_bytes // 1024,
                     "SRAM KB": b.ram_bytes // 1024, "flash margin B": flash_margin, "SRAM margin B": ram_margin,
                     "verdict": "fits" if not short else "does not fit: " + ", ".join(short)})
    return pd.DataFrame(rows).set_index("board")
