"""The deployment firmware, with a hand-written stand-in model (tests/mcu_standin): build, memory
checks, faults, the on-device front end against the Python one, batch and streaming runs."""
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_arm
from tinyml_utils import emulator, mfcc
from tinyml_utils.mcu import boards, build, debug, kws, run, streaming
from tinyml_utils.mcu.frontend import stream_features, tables
from tinyml_utils.quant.linear import quantize

STANDIN = Path(__file__).parent / "mcu_standin"
INPUT_SCALE, INPUT_ZERO_POINT = np.float32(0.4010465741157532), 90   # as in the stand-in's model.h
OUTPUT_SCALE = np.float32(0.1)                                         # MODEL_OUTPUT_SCALE there


def standin_code():
    return kws.ModelCode([STANDIN / "model.c"], [STANDIN])


def standin_reference(features, mean_bias=0):
    """NumPy mirror of tests/mcu_standin/model.c: layer outputs (mean (N, 10), logits (N, 12))."""
    total = (features.astype(np.int64) - INPUT_ZERO_POINT).sum(axis=1)       # (N, 10)
    mean = np.clip(np.sign(total) * (np.abs(total) // 49) + mean_bias, -128, 127)  # C division truncates
    weight = (7 * np.arange(12)[:, None] + 3 * np.arange(10)[None, :]) % 11 - 5
    logits = np.clip((mean @ weight.T) >> 3, -128, 127)
    return mean.astype(np.int8), logits.astype(np.int8)


def make_clips(n=6, seed=0):
    """Clips from near-silence to full scale: noise, tones and chirps."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    clips = [rng.standard_normal(16000) * 10 ** rng.uniform(-4, -0.5) * 32767 for _ in range(n - 2)]
    clips.append(8000 * np.sin(2 * np.pi * (200 + 1500 * t) * t))
    clips.append(np.zeros(16000))
    return np.clip(np.round(clips), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def clips_firmware(tmp_path_factory):
    return kws.build_kws(standin_code(), "nrf52840", tmp_path_factory.mktemp("clips"))


def test_linker_script_has_the_parts_memory():
    script = boards.linker_script("stm32l432kc", stack_reserve=1024)
    assert "LENGTH = 262144" in script and "LENGTH = 65536" in script and ". += 1024;" in script
    with pytest.raises(ValueError, match="known boards: nrf52840"):
        boards.get_board("arduino")
    assert boards.BOARDS["corstone300"].instructions_per_tick == 31.25
    assert boards.BOARDS["nrf52840"].instructions_per_tick == 40


def test_frontend_tables_match_python():
    t = tables()
    fb = mfcc.mel_filterbank()
    dense = np.zeros_like(fb)
    pos = 0
    for m, (first, count) in enumerate(zip(t["mel_first_bin"], t["mel_num_bins"])):
        dense[first:first + count, m] = t["mel_weights"][pos:pos + count]
        pos += count
    np.testing.assert_array_equal(dense, fb)           # sparse storage loses nothing
    assert t["first_bin"] == 1 and t["last_bin"] == 127  # 31.25 Hz .. 3968.75 Hz


@needs_arm
def test_device_features_and_logits(clips_firmware, tmp_path):
    waves = make_clips()
    result = kws.run_clips(clips_firmware, waves, tmp_path, write_features=True)
    expected = quantize(mfcc.mfcc(waves), INPUT_SCALE, INPUT_ZERO_POINT).astype(np.int8)
    diff = np.abs(result.features.astype(int) - expected)
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.99
    _, logits = standin_reference(result.features)
    np.testing.assert_array_equal(result.logits, logits)        # the device ran the model on its features
    np.testing.assert_array_equal(result.predictions, logits.argmax(1))
    assert result.layer_names == ["mean", "fc"]
    # deterministic instruction counts: the same run gives the same counts (a different program or
    # input may shift SysTick's phase by a tick, the +/- 40 instructions of a measurement)
    again = kws.run_clips(clips_firmware, waves, tmp_path / "again", write_features=True)
    np.testing.assert_array_equal(again.model_ticks, result.model_ticks)
    np.testing.assert_array_equal(again.frontend_ticks, result.frontend_ticks)
    assert 0 < result.stack_peak_bytes < 2048
    assert 20_000 * 49 < result.frontend_instructions.min() < 80_000 * 49   # tens of thousands per frame


@needs_arm
def test_too_big_for_the_board_says_by_how_much(clips_firmware, tmp_path):
    need_ram = clips_firmware.static_ram_bytes + 2048
    tight = boards.Board("tiny", "test part", "Cortex-M4F", "mps2-an386", boards.CORTEX_M4F,
                         0, 64 * 1024, 0x2000_0000, 4096, 64_000_000)
    with pytest.raises(build.DoesNotFit, match=r"does not fit tiny .*SRAM .*overflowed by [\d,]+ bytes") as err:
        kws.build_kws(standin_code(), tight, tmp_path)
    assert abs(err.value.overflow["RAM"] - (need_ram - 4096)) <= 8       # alignment padding only
    small_flash = boards.Board("tinyflash", "test part", "Cortex-M4F", "mps2-an386", boards.CORTEX_M4F,
                               0, 4096, 0x2000_0000, 64 * 1024, 64_000_000)
    with pytest.raises(build.DoesNotFit) as err:
        kws.build_kws(standin_code(), small_flash, tmp_path / "f")
    assert abs(err.value.overflow["FLASH"] - (clips_firmware.flash_bytes - 4096)) <= 64


@pytest.mark.slow
@needs_arm
def test_bad_inputs_and_faults_are_clear_errors(clips_firmware, tmp_path):
    with pytest.raises(run.DeviceError, match="could not open an input file"):
        run.run(clips_firmware, tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "clips.bin").write_bytes(b"RIFF" + bytes(12))
    with pytest.raises(run.DeviceError, match="(?s)wrong format.*bad header"):
        run.run(clips_firmware, tmp_path / "bad")
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "clips.bin").write_bytes(b"KWSC" + struct.pack("<III", 2, 16000, 0) + bytes(20000))
    with pytest.raises(run.DeviceError, match="truncated"):
        run.run(clips_firmware, tmp_path / "short")
    src = tmp_path / "crash.c"
    src.write_text("#include <stdint.h>\n__attribute__((noinline)) int crash(void) "
                   "{ return *(volatile int32_t *)0xF0000000u; }\nint main(void) { return crash(); }\n")
    fw = build.build([src], "nrf52840", tmp_path / "crash")
    with pytest.raises(run.DeviceFault, match=r"faulted in crash \(crash.c:2\)"):
        run.run(fw, tmp_path / "crash")
    src.write_text("int main(void) { for (;;) {} }\n")
    with pytest.raises(emulator.EmulatorTimeout, match="did not finish.*nrf52840"):
        run.run(build.build([src], "nrf52840", tmp_path / "hang"), tmp_path, timeout=2)


@needs_arm
def test_every_board_runs_the_same_program(tmp_path):
    waves = make_clips(2, seed=3)
    results = {}
    for name in ("stm32f746ng", "corstone300"):
        fw = kws.build_kws(standin_code(), name, tmp_path / name)
        results[name] = kws.run_clips(fw, waves, tmp_path / f"run_{name}", write_features=True)
    expected = quantize(mfcc.mfcc(waves), INPUT_SCALE, INPUT_ZERO_POINT).astype(np.int8)
    for r in results.values():
        assert np.abs(r.features.astype(int) - expected).max() <= 1
        assert r.frontend_instructions.min() > 0


@needs_arm
def test_layer_dumps_point_at_the_bad_layer(tmp_path):
    waves = make_clips(2, seed=4)
    fw = kws.build_kws(standin_code(), "nrf52840", tmp_path, dump_layers=True, defines={"STANDIN_MEAN_BIAS": 1})
    result = kws.run_clips(fw, waves, tmp_path / "run", write_features=True)
    dumps = debug.read_layer_dumps(tmp_path / "run" / "layers.bin", 2)
    assert len(dumps) == 2
    good_mean, good_logits = standin_reference(result.features)
    bad_mean, bad_logits = standin_reference(result.features, mean_bias=1)
    for clip, (mean, logits) in enumerate(dumps):
        np.testing.assert_array_equal(mean, bad_mean[clip])
        np.testing.assert_array_equal(logits, bad_logits[clip])
        assert (mean != good_mean[clip]).any()


@needs_arm
def test_streaming_device_matches_host_detector(tmp_path):
    rng = np.random.default_rng(5)
    samples = np.clip(rng.standard_normal(4 * 16000) * 2000, -32768, 32767).astype(np.int16)
    samples[16000:40000] += (6000 * np.sin(2 * np.pi * 440 * np.arange(24000) / 16000)).astype(np.int16)
    fw = kws.build_kws(standin_code(), "nrf52840", tmp_path, app="stream")
    config = streaming.DetectorConfig(infer_every=4, average_window=3, threshold=0.2, suppression_hops=20)
    result = streaming.run_stream(fw, samples, config, tmp_path / "run", write_features=True)
    expected = quantize(stream_features(samples), INPUT_SCALE, INPUT_ZERO_POINT).astype(np.int8)
    assert result.features.shape == expected.shape == (len(samples) // 320 - 1, 10)
    assert np.abs(result.features.astype(int) - expected).max() <= 1
    hops, windows = streaming.windows(result.features, config)
    np.testing.assert_array_equal(result.inference_hops, hops)
    np.testing.assert_array_equal(result.logits, standin_reference(windows.reshape(len(hops), 49, 10))[1])
    host = streaming.smooth_and_detect(hops, result.logits, OUTPUT_SCALE, config)
    assert [(h, c) for h, c, _ in host] == [(h, c) for h, c, _ in result.detections] and host
    assert all(abs(a[2] - b[2]) <= 0.001 for a, b in zip(host, result.detections))
    assert result.ticks["worst_hop"] >= result.ticks["fe"] / result.hops


def test_score_counts_hits_misses_and_false_alarms():
    events = [streaming.Event("yes", 2, 1.0, 1.5), streaming.Event("no", 3, 3.0, 3.4),
              streaming.Event("cat", 1, 5.0, 5.3)]
    hop_at = lambda t: int(round((t * 16000 - 160) / 320))  # noqa: E731
    detections = [(hop_at(1.8), 2, 0.9), (hop_at(3.2), 4, 0.8), (hop_at(5.5), 2, 0.7)]
    s = streaming.score(detections, events)
    assert (s["keywords"], s["hits"], s["misses"], s["false_alarms"]) == (2, 1, 1, 2)


@pytest.mark.skipif(__import__("shutil").which("gcc") is None, reason="no host C compiler")
def test_log_and_exp_from_scratch_are_accurate(tmp_path):
    """firmware/mathf.h, compiled for the host, against NumPy in float64."""
    import subprocess

    src = tmp_path / "m.c"
    src.write_text('#include <stdio.h>\n#include "mathf.h"\nint main(void) { float x;\n'
                   '  while (scanf("%f", &x) == 1) printf("%.9g %.9g\\n", log_f32(x), exp_f32(x));\n  return 0; }\n')
    subprocess.run(["gcc", "-O2", f"-I{build.FIRMWARE}", str(src), "-o", str(tmp_path / "m")], check=True)
    rng = np.random.default_rng(0)
    x = np.concatenate([10 ** rng.uniform(-7, 6, 5000), rng.uniform(-80, 80, 5000)]).astype(np.float32)
    out = subprocess.run([str(tmp_path / "m")], input="\n".join(f"{v:.9g}" for v in x), capture_output=True,
                         text=True, check=True).stdout.split()
    log, exp = np.array(out[0::2], dtype=np.float64), np.array(out[1::2], dtype=np.float64)
    positive = x > 0
    assert np.abs(log[positive] - np.log(x[positive].astype(np.float64))).max() < 2e-6
    small = slice(5000, None)                                          # exp on [-80, 80]
    reference = np.exp(x[small].astype(np.float64))
    assert (np.abs(exp[small] - reference) / reference).max() < 5e-7
