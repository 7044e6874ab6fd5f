"""Run programs on QEMU's emulated Cortex-M boards: find the tools, start QEMU, decode a fault.

The program talks to the host through semihosting (see `mcu/firmware/semihost.h`): what it
prints comes back as text, and the value `main()` returns becomes QEMU's exit code. This module
is the emulator's side only; programs are built by `mcu.build`, the one road to the device, and
`mcu.programs.run_c_program` is the smallest way to try one.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = ("sudo apt-get install -y --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "qemu-system-arm")


class ToolchainMissing(RuntimeError):
    """arm-none-eabi-gcc or qemu-system-arm is not installed."""


class EmulatorTimeout(RuntimeError):
    """The program did not stop in time on the emulator."""


class ProgramFault(RuntimeError):
    """The core faulted (hard, memory, bus or usage fault, or a stack overflow); the message says where."""


@dataclass
class RunResult:
    """What a program on the emulated board printed, and its exit code."""
    output: str
    exit_code: int


def require(tool: str) -> str:
    """Path of a command-line tool, or a ToolchainMissing error that says how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise ToolchainMissing(f"{tool} was not found. Install the ARM toolchain and emulator with:\n  "
                               f"{INSTALL_HINT}\n(or run ./run setup, which does it when run as root)")
    return path


#: Deterministic virtual time: one instruction = 1 ns, so SysTick counts instructions (see mcu/firmware/cycles.h).
ICOUNT = ["-icount", "shift=0,align=off,sleep=off"]


def run_qemu(elf: Path, machine: str = "mps2-an386", timeout: float = 20.0, icount: bool = True,
             cwd: Path | None = None) -> RunResult:
    """Run an ELF on QEMU with semihosting; a program still running after `timeout` s is an error.

    With `icount` (the default) virtual time follows the instruction count, which makes the
    SysTick measurements of `mcu/firmware/cycles.h` deterministic. Files the program opens through
    semihosting are relative to `cwd` (default: the current directory).
    """
    qemu = require("qemu-system-arm")
    # Semihosting output goes to a stdio character device, so QEMU's own errors stay on stderr.
    cmd = [qemu, "-M", machine, "-display", "none", "-monitor", "none", "-serial", "null",
           "-chardev", "stdio,id=semihosting", "-semihosting-config", "enable=on,target=native,chardev=semihosting",
           "-kernel", str(elf), *(ICOUNT if icount else [])]
    try:   # (errors="replace": a program that overwrote its own strings prints bytes that are not UTF-8)
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise EmulatorTimeout(f"{elf.name} did not finish on QEMU {machine} within {timeout:g} s and was "
                              "stopped: it probably loops forever (or waits on a breakpoint without "
                              "semihosting).") from None
    if "Lockup" in done.stderr:
        raise ProgramFault(f"{elf.name} locked up the core on QEMU {machine}: it faulted while handling a fault, "
                           "which happens when the program overwrote memory that is not its own (a stack overflow "
                           "from an endless recursion, a write through a bad pointer). QEMU said: "
                           f"{done.stderr.strip().splitlines()[0]}")
    if done.stderr.strip():
        raise RuntimeError(f"QEMU reported an error: {done.stderr.strip()}")
    return RunResult(done.stdout, done.returncode)


def where(elf: Path, address: int) -> str:
    """function (file:line) of a code address in `elf`, for fault reports (the address if unknown)."""
    a2l = require("arm-none-eabi-addr2line")
    out = subprocess.run([a2l, "-f", "-s", "-e", str(elf), hex(address & ~1)], capture_output=True,
                         text=True).stdout.split()
    if len(out) < 2 or out[0] == "??":
        return hex(address)
    return out[0] if out[1].startswith("??") else f"{out[0]} ({out[1]})"   # no line without -g


def check_fault(elf: Path, result: RunResult, what: str = "the program") -> None:
    """Raise `ProgramFault` if the program reported a fault (the "FAULT:" line of mcu/firmware/fault.c).

    The message names the function and line of the faulting instruction, or says that the stack
    overflowed (that fault leaves no program counter)."""
    line = next((l for l in result.output.splitlines() if l.startswith("FAULT:")), None)
    if line is None:
        return
    if line.startswith("FAULT: stack overflow"):
        raise ProgramFault(f"{what} overflowed its stack: the stack pointer went below the lowest address the "
                           f"stack may use ({line[len('FAULT: '):]}). Look for a large local array (make it "
                           "static) or a recursion that does not end.")
    pc = re.search(r"pc=(0x[0-9a-f]+)", line)
    place = f" in {where(elf, int(pc.group(1), 16))}" if pc else ""
    raise ProgramFault(f"{what} crashed{place}: {line[len('FAULT: '):]}. A fault is an access to an address "
                       "that does not exist or is not allowed (an array index out of bounds, a bad pointer), an "
                       "unaligned access or a division by zero.")
