"""The firmware around the engine's generated C: a small DS-CNN on the device equals the integer
interpreter on the device's features, the layer-diff helper finds a planted bug, and the engine's
model harness counts what the firmware counts (one road to the device)."""
import numpy as np
import pytest

from conftest import needs_arm
from tinyml_utils import mfcc
from tinyml_utils.config import seed_everything
from tinyml_utils.mcu import build, debug, kws, measure
from tinyml_utils.models import DSCNN
from tinyml_utils.quant import convert, interpreter


@pytest.fixture(scope="module")
def small_model():
    seed_everything(0)
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    waves = np.stack([8000 * np.sin(2 * np.pi * f * t) * rng.uniform(0.1, 1) + rng.standard_normal(16000) * 300
                      for f in rng.uniform(100, 3000, 8)]).astype(np.int16)
    model = DSCNN(channels=(8, 8, 8)).eval()                   # random weights: the arithmetic is what we test
    return convert.convert(model, mfcc.mfcc(waves)), waves


@needs_arm
def test_device_equals_interpreter(small_model, tmp_path):
    int_model, waves = small_model
    code = kws.engine_code(int_model, tmp_path / "model")
    firmware = kws.build_kws(code, "nrf52840", tmp_path / "build")
    result = kws.run_clips(firmware, waves, tmp_path / "run", write_features=True)
    np.testing.assert_array_equal(result.logits, interpreter.run(int_model, result.features[:, None]))
    assert result.layer_names == [layer.name for layer in int_model.layers]
    assert (result.layer_instructions.sum(axis=1) <= result.model_instructions + 40 * len(result.layer_names)).all()


@needs_arm
def test_first_divergence_names_the_planted_bug(small_model, tmp_path):
    int_model, waves = small_model
    buggy = debug.inject_wrong_shift(int_model, "pw1", delta=2)
    firmware = kws.build_kws(kws.engine_code(buggy, tmp_path / "model"), "nrf52840", tmp_path / "build", dump_layers=True)
    result = kws.run_clips(firmware, waves[:2], tmp_path / "run", write_features=True)
    dumps = debug.read_layer_dumps(tmp_path / "run" / "layers.bin", len(result.layer_names))
    for clip in range(2):
        diffs = debug.compare_layers(int_model, result.features[clip], dumps[clip], result.layer_names)
        assert debug.first_divergence(diffs) == "pw1"
        assert [d.mismatches for d in diffs[:2]] == [0, 0]          # conv1 and dw1 are right
        good = debug.compare_layers(buggy, result.features[clip], dumps[clip], result.layer_names)
        assert debug.first_divergence(good) is None                 # the device ran the buggy model faithfully


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize("kernels", ["ref", "opt"])
def test_harness_counts_what_the_firmware_counts(small_model, tmp_path, kernels):
    """The same model, built by the same road (start-up code, linker script, ABI, flags), costs the
    same instructions per layer in the engine's harness as in the firmware, to within one SysTick
    tick (40 instructions) per measurement: the two hooks differ, the layers do not."""
    int_model, waves = small_model
    firmware = kws.build_kws(kws.engine_code(int_model, tmp_path / "model", kernels=kernels), "nrf52840",
                             tmp_path / "build")
    on_firmware = kws.run_clips(firmware, waves[:1], tmp_path / "run", write_features=True)
    on_harness = measure.measure(int_model, on_firmware.features[:, None], kernels_sets=(kernels,))[kernels]
    assert abs(on_harness.instructions - int(on_firmware.model_instructions[0])) <= 40
    np.testing.assert_allclose(on_harness.layer_instructions, on_firmware.layer_instructions[0], atol=40, rtol=0)
    assert on_harness.instructions > 40 * len(on_firmware.layer_names)      # the counts are not all zero


def test_missing_toolchain_names_the_install_command(monkeypatch, tmp_path):
    from tinyml_utils import emulator

    monkeypatch.setattr(emulator.shutil, "which", lambda tool: None)
    with pytest.raises(emulator.ToolchainMissing, match="apt-get install .*gcc-arm-none-eabi"):
        build.build([], "nrf52840", tmp_path)
