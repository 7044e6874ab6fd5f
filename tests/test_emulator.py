import pytest

from conftest import needs_arm
from tinyml_utils import emulator
from tinyml_utils.mcu import programs


@needs_arm
def test_program_output_and_exit_code():
    result = programs.run_c_program(r'''
#include "semihost.h"
int main(void) {
  int sum = 0;
  for (int i = 1; i <= 10; i++) sum += i;
  sh_write("sum="); sh_write_int(sum); sh_write(" min="); sh_write_int(-2147483647 - 1); sh_write("\n");
  return sum == 55 ? 7 : 1;
}''')
    assert result.output == "sum=55 min=-2147483648\n"
    assert result.exit_code == 7


@pytest.mark.slow
@needs_arm
def test_hang_becomes_a_timeout_error():
    with pytest.raises(emulator.EmulatorTimeout, match="did not finish"):
        programs.run_c_program("int main(void) { for (;;) {} }", timeout=2)


@needs_arm
def test_fault_is_reported():
    with pytest.raises(emulator.ProgramFault, match=r"crashed in main \(main.c:1\): hard fault pc=0x"):
        programs.run_c_program("int main(void) { return *(volatile int *)0xF0000000; }")


@needs_arm
def test_compile_error_is_shown():
    with pytest.raises(RuntimeError, match="arm-none-eabi-gcc failed"):
        programs.run_c_program("int main(void) { return undefined_name; }")


def test_missing_toolchain_names_the_install_command(monkeypatch):
    monkeypatch.setattr(emulator.shutil, "which", lambda tool: None)
    with pytest.raises(emulator.ToolchainMissing, match="apt-get install -y --no-install-recommends gcc-arm-none-eabi"):
        programs.run_c_program("int main(void) { return 0; }")


@needs_arm
def test_systick_counts_instructions_deterministically():
    code = r'''
#include "semihost.h"
#include "cycles.h"
__attribute__((noinline)) static void spin(int n) { for (volatile int i = 0; i < n; i++) {} }
int main(void) {
  ticks_start();
  static const int sizes[3] = {1000, 100000, 120000000};
  for (int k = 0; k < 3; k++) {
    int n = sizes[k];
    uint64_t t0 = ticks_now(); spin(n); uint64_t t1 = ticks_now();
    sh_write_int((int32_t)((t1 - t0) * INSTRUCTIONS_PER_TICK)); sh_write("\n");
  }
  return 0;
}'''
    first = programs.run_c_program(code)
    assert first.exit_code == 0 and first.output == programs.run_c_program(code).output  # deterministic
    counts = [int(v) for v in first.output.split()]
    # spin() runs 6 instructions per iteration (see its disassembly). 120 M iterations (720 M
    # instructions) wrap the 24-bit SysTick (2^24 ticks x 40 = 671 M instructions) once: the
    # interrupt handler must count it.
    assert len(counts) == 3
    for n, count in zip((1000, 100_000, 120_000_000), counts):
        assert abs(count - 6 * n) <= 80
