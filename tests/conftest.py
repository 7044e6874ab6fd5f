import os
import shutil

import pytest

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (./run setup)")
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                               reason="ARM toolchain or QEMU not installed (./run setup)")

# In CI the toolchain is installed by ./run setup: a skip there would hide a broken setup.
if os.environ.get("CI") or os.environ.get("TINYML_REQUIRE_TOOLS"):
    assert shutil.which("espeak-ng") and shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"), \
        "CI must have espeak-ng, arm-none-eabi-gcc and qemu-system-arm installed"
