import pytest

from conftest import needs_arm
from tinyml_utils import emulator


@needs_arm
def test_program_output_and_exit_code():
    result = emulator.run_c_program(r'''
#include "semihost.h"
int main(void) {
  int sum = 0;
  for (int i = 1; i <= 10; i++) sum += i;
  sh_write("sum="); sh_write_int(sum); sh_write(" min="); sh_write_int(-2147483647 - 1); sh_write("\n");
  return sum == 55 ? 7 : 1;
}''')
    assert result.output == "sum=55 min=-2147483648\n"
    assert result.exit_code == 7


@needs_arm
def test_hang_becomes_a_timeout_error():
    with pytest.raises(emulator.EmulatorTimeout, match="did not finish"):
        emulator.run_c_program("int main(void) { for (;;) {} }", timeout=2)


@needs_arm
def test_fault_is_reported():
    result = emulator.run_c_program("int main(void) { return *(volatile int *)0xF0000000; }")
    assert result.exit_code == 99 and "FAULT" in result.output


@needs_arm
def test_compile_error_is_shown():
    with pytest.raises(RuntimeError, match="arm-none-eabi-gcc failed"):
        emulator.run_c_program("int main(void) { return undefined_name; }")


def test_missing_toolchain_names_the_install_command(monkeypatch):
    monkeypatch.setattr(emulator.shutil, "which", lambda tool: None)
    with pytest.raises(emulator.ToolchainMissing, match="apt-get install -y --no-install-recommends gcc-arm-none-eabi"):
        emulator.run_c_program("int main(void) { return 0; }")
