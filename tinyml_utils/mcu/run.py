"""Run firmware on QEMU and turn what it reports into numbers (or into clear errors).

The emulated board runs with `-icount shift=0,align=off,sleep=off`: one instruction advances
virtual time by 1 ns, so SysTick counts instructions and every count is deterministic. QEMU's
Cortex-M has no cycle-accurate pipeline model (and its DWT cycle counter reads 0), which is why
the course measures *instructions*, not cycles: on a real Cortex-M4 most instructions take one
cycle, loads and multiply-accumulates into memory a little more, so instructions are a close
lower bound on cycles.

The firmware ends with an exit code (semihosting's extended exit): 0 is success, the others are
turned into exceptions that say what went wrong (see `firmware/startup.h`).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from .. import emulator
from .build import Firmware

EXIT_MESSAGES = {2: "the firmware could not open an input file",
                 3: "the firmware found its input file truncated or in the wrong format"}
EXIT_STACK_OVERFLOW = 4    # firmware/startup.h, firmware/fault.h
EXIT_FAULT = 99


class DeviceError(RuntimeError):
    """The firmware stopped with an error exit code; the message includes what it printed."""


class DeviceFault(DeviceError):
    """The core faulted (hard, memory, bus or usage fault); the message names the function."""


class StackOverflow(DeviceError):
    """The stack outgrew its region (the guard below it faulted, or it used its last word)."""


@dataclass
class DeviceRun:
    """What one run printed, its exit code and the host's wall time (not a measurement)."""
    output: str
    exit_code: int
    firmware: Firmware
    wall_seconds: float

    def lines(self, tag: str) -> list[list[str]]:
        """The printed lines that start with `tag`, split into words (without the tag)."""
        return [line.split()[1:] for line in self.output.splitlines() if line.split()[:1] == [tag]]

    def instructions(self, ticks) -> float:
        """SysTick ticks -> instructions on this board's emulated machine."""
        return ticks * self.firmware.board.instructions_per_tick

    @property
    def stack_peak_bytes(self) -> int:
        """Deepest stack use the firmware reported (painted-stack measurement), bytes."""
        lines = self.lines("stack")
        if not lines:
            raise DeviceError("the firmware did not report its stack use (no 'stack' line)")
        return int(lines[-1][0])


def run(firmware: Firmware, workdir: str | Path, timeout: float = 60.0) -> DeviceRun:
    """Run `firmware` on its board's QEMU machine; semihosting files are relative to `workdir`.

    Raises `EmulatorTimeout` if it runs longer than `timeout` seconds of host time, `DeviceFault`
    on a fault (naming the function and line), `StackOverflow` when the stack outgrew the RAM that
    .data and .bss leave, `DeviceError` on any other non-zero exit code.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        result = emulator.run_qemu(firmware.elf, machine=firmware.board.machine, timeout=timeout, cwd=workdir)
    except emulator.EmulatorTimeout:
        raise emulator.EmulatorTimeout(
            f"{firmware.elf.name} did not finish on QEMU {firmware.board.machine} ({firmware.board.name}) "
            f"within {timeout:g} s of host time and was stopped: it probably loops forever, or the batch is "
            "too large for this timeout.") from None
    done = DeviceRun(result.output, result.exit_code, firmware, time.perf_counter() - t0)
    if done.exit_code == 0:
        return done
    tail = "\n".join(done.output.splitlines()[-5:])
    if done.exit_code == EXIT_STACK_OVERFLOW:
        fw = firmware
        raise StackOverflow(
            f"the stack overflowed on {fw.board.label()}: the program needs more than the {fw.stack_bytes:,} bytes "
            f"of stack that .data + .bss ({fw.static_ram_bytes:,} bytes) leave of the {fw.board.ram_bytes:,} bytes "
            "of SRAM. Use less stack (a large local array: make it static; a deep or endless recursion), less "
            f"static RAM (a smaller arena or buffers), or a board with more SRAM. The device printed:\n{tail}")
    if done.exit_code == EXIT_FAULT:
        pc = re.search(r"pc=(0x[0-9a-f]+)", done.output)
        where = f" in {firmware.where(int(pc.group(1), 16))}" if pc else ""
        raise DeviceFault(f"the core faulted{where} on {firmware.board.name}. The device printed:\n{tail}")
    message = EXIT_MESSAGES.get(done.exit_code, f"the firmware exited with code {done.exit_code}")
    raise DeviceError(f"{message}. The device printed:\n{tail}")
