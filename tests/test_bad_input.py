"""Issue 13, data / front end / quantization rows: a bad input never gives a silent wrong answer.

Each test feeds one bad input a student could plausibly pass and asserts the error type and that
its message names what was wrong (or, for damaged caches, that the file is named and rebuilt).
Every test runs in its own TINYML_CACHE.
"""
import hashlib
import io
import socket
import tarfile
import threading
import zlib
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from tinyml_utils import audio, kws_data, kws_synth, mfcc
from tinyml_utils.cache import CacheRebuiltWarning, load_npz, load_or_build, save_npz
from tinyml_utils.checks import CheckFailed, expect_close
from tinyml_utils.standins import random_dscnn, toy_kws_data

NAN = float("nan")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private TINYML_CACHE for every test: the real one (~/.cache/tinyml-from-scratch) is never touched."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TINYML_CACHE", str(root))
    return root


def int16_clip(n=16000, seed=0):
    return np.random.default_rng(seed).integers(-3000, 3000, n).astype(np.int16)


# --- 1. a lab check answer that is NaN ----------------------------------------------------------

def test_expect_close_fails_on_nan_and_inf():
    with pytest.raises(CheckFailed, match="got NaN"):
        expect_close("x", NAN, 1.0, rel=1e-6)
    with pytest.raises(CheckFailed, match="got NaN"):
        expect_close("x", np.float32("nan"), 0.0, abs_=1e-9)
    with pytest.raises(CheckFailed, match=r"got -inf \(infinite\)"):
        expect_close("x", -np.inf, 2.0, rel=1.0)
    expect_close("x", 1.0 + 1e-9, 1.0, rel=1e-6)  # a close answer still passes


def test_nan_answers_fail_the_lab_checks_that_passed_them():
    from tinyml_utils import prune
    from tinyml_utils.checks import lab02, lab06, lab07, lab12

    with pytest.raises(CheckFailed, match="model_sparsity.*got NaN"):
        lab02.check_model_sparsity(lambda model: NAN)

    def nan_scan(model, X, y, sparsities):
        names = prune.sensitivity_scan(model, X, y, sparsities, progress=False).index
        return {name: [NAN] * len(sparsities) for name in names}
    with pytest.raises(CheckFailed, match="sensitivity_scan.*got NaN"):
        lab02.check_sensitivity_scan(nan_scan)
    with pytest.raises(CheckFailed, match="distillation_loss.*got NaN"):
        lab06.check_loss(lambda s, t, y, T, alpha: torch.tensor(NAN))
    with pytest.raises(CheckFailed, match="loss_fn.*got NaN"):
        lab06.check_loss_fn(lambda table, labels, T, alpha: lambda logits, rows, X: logits.sum() * NAN)
    with pytest.raises(CheckFailed, match="cost_ratio.*got NaN"):
        lab07.check_cost_ratio(lambda c_out, k: NAN)
    with pytest.raises(CheckFailed, match="ticks_to_instructions.*got NaN"):
        lab12.check_ticks_to_instructions(lambda ticks, board: NAN)


# --- 2-4. the MFCC front end: float audio, stereo, wrong lengths --------------------------------

def test_mfcc_refuses_float_audio_and_says_how_to_convert():
    x = int16_clip()
    for bad in (x / 32768.0, (x / 32768.0).astype(np.float32), x.astype(np.float64)):
        with pytest.raises(TypeError, match=rf"mfcc takes int16 samples.*got {bad.dtype}.*to_int16\(x \* 32767\)"):
            mfcc.mfcc(bad)
    with pytest.raises(TypeError, match="got int64.*astype"):
        mfcc.mfcc(x.astype(np.int64))
    # The documented conversion gives back the features of the int16 clip.
    converted = audio.to_int16(x / 32768.0 * 32767)
    np.testing.assert_allclose(mfcc.mfcc(converted), mfcc.mfcc(x), atol=0.05)


def test_mfcc_refuses_stereo():
    stereo = np.stack([int16_clip(), int16_clip(seed=1)], axis=1)  # (16000, 2)
    with pytest.raises(ValueError, match=r"mono clips.*\(16000, 2\).*2 audio channel"):
        mfcc.mfcc(stereo)
    with pytest.raises(ValueError, match="channel"):
        mfcc.mfcc(stereo, pad_or_crop=True)  # padding must not turn channels into a clip either
    assert mfcc.mfcc(stereo[:, 0]).shape == (49, 10)


def test_mfcc_refuses_other_lengths_unless_asked_to_pad_or_crop():
    long, short = int16_clip(48000), int16_clip(100)
    with pytest.raises(ValueError, match=r"exactly 16000 samples.*got 48000.*pad_or_crop=True"):
        mfcc.mfcc(long)
    with pytest.raises(ValueError, match=r"exactly 16000 samples.*got 100"):
        mfcc.mfcc(short)
    np.testing.assert_array_equal(mfcc.mfcc(long, pad_or_crop=True), mfcc.mfcc(long[:16000]))
    np.testing.assert_array_equal(mfcc.mfcc(short, pad_or_crop=True), mfcc.mfcc(audio.pad_or_crop(short)))
    batch = np.stack([int16_clip(seed=2), int16_clip(seed=3)])
    assert mfcc.mfcc(batch).shape == (2, 49, 10)  # valid input is unchanged


# --- 5. a float recording into the streaming firmware's input file ------------------------------

def test_write_stream_refuses_float_recordings(tmp_path):
    from tinyml_utils.mcu import streaming

    config = streaming.DetectorConfig()
    x = int16_clip(3200)
    with pytest.raises(TypeError, match=r"write_stream takes int16 samples.*got float64.*to_int16\(x \* 32767\)"):
        streaming.write_stream(tmp_path / "s.bin", x / 32768.0, config)
    with pytest.raises(ValueError, match=r"mono recording.*\(3200, 2\)"):
        streaming.write_stream(tmp_path / "s.bin", np.stack([x, x], 1), config)
    path = streaming.write_stream(tmp_path / "s.bin", x, config)
    np.testing.assert_array_equal(np.frombuffer(path.read_bytes()[-2 * len(x):], "<i2"), x)


# --- 6. a transposed input to the integer interpreter -------------------------------------------

@pytest.fixture(scope="module")
def int_model():
    from tinyml_utils.quant.convert import convert

    X, _ = toy_kws_data(32)
    return convert(random_dscnn((8, 8)), X, name="toy_dscnn"), X


def test_interpreter_refuses_a_transposed_input(int_model):
    from tinyml_utils.quant import interpreter

    model, X = int_model
    x_q = interpreter.quantize_input(model, X[:3])                     # (3, 49, 10)
    with pytest.raises(ValueError, match=r"toy_dscnn: .*\(N, 1, 49, 10\) or \(N, 49, 10\), got \(3, 10, 49\)"):
        interpreter.run(model, x_q.transpose(0, 2, 1))
    with pytest.raises(ValueError, match=r"got \(3, 490\)"):
        interpreter.run(model, x_q.reshape(3, -1))
    np.testing.assert_array_equal(interpreter.run(model, x_q), interpreter.run(model, x_q[:, None]))


# --- 7. calibration data with NaN, inf, or nothing ----------------------------------------------

def test_calibration_with_nan_inf_or_nothing_is_refused():
    from tinyml_utils.quant.convert import calibrate, convert, trace_and_fold
    from tinyml_utils.quant.fakequant import FakeQuantModel
    from tinyml_utils.quant.ranges import calibrate_ranges

    model = random_dscnn((8, 8))
    X, _ = toy_kws_data(16)
    nan, inf = X.copy(), X.copy()
    nan[3, 4, 5] = np.nan
    inf[7, 0, 0] = np.inf
    for fn in (lambda c: convert(model, c), lambda c: FakeQuantModel(model).calibrate(c),
               lambda c: calibrate_ranges(model, c, "percentile")):
        with pytest.raises(ValueError, match=r"calibration array \(16, 49, 10\) holds 1 NaN and 0 infinite.*index 3"):
            fn(nan)
        with pytest.raises(ValueError, match=r"calibration array .* 0 NaN and 1 infinite.*index 7"):
            fn(inf)
        with pytest.raises(ValueError, match=r"calibration array is empty \(shape \(0, 49, 10\)\)"):
            fn(X[:0])
    # A range that is not finite (here given through ranges=) is named too, not turned into NaN multipliers.
    name = next(iter(calibrate(trace_and_fold(model), X)))
    with pytest.raises(ValueError, match=rf"tensor '{name}': its calibration range \(nan, 1.0\) is not finite"):
        convert(model, X, ranges={name: (NAN, 1.0)})


# --- 8. damaged cache files are named, deleted and rebuilt --------------------------------------

def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_load_or_build_rebuilds_a_damaged_file(tmp_path):
    path, builds = tmp_path / "a.npz", []

    def build(p):
        builds.append(p)
        save_npz(p, {"x": np.arange(1000)})

    assert load_or_build(path, build, load_npz)["x"].sum() == 499500 and len(builds) == 1
    assert load_or_build(path, build, load_npz)["x"].sum() == 499500 and len(builds) == 1   # cached
    for damage in (_truncate, lambda p: p.write_bytes(b"garbage")):
        damage(path)
        with pytest.warns(CacheRebuiltWarning, match=rf"cache file {path} cannot be read.*building it again"):
            assert load_or_build(path, build, load_npz)["x"].sum() == 499500
    # A flipped byte inside the data fails the member's checksum: rebuilt, never loaded as garbage.
    data = bytearray(path.read_bytes())
    data[data.index(np.arange(1000).tobytes()[:8]) + 800] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(CacheRebuiltWarning, match="a.npz"):
        assert load_or_build(path, build, load_npz)["x"].sum() == 499500
    assert len(builds) == 4


def fake_layout(root, rng):
    """A tiny dataset in the Speech Commands layout (with a `_silence_` folder, like the synthetic one)."""
    for word, n in [("yes", 3), ("no", 3), ("cat", 3), ("_silence_", 2)]:
        (root / word).mkdir(parents=True)
        for i in range(n):
            audio.write_wav(root / word / f"spk{i}_nohash_0.wav", rng.integers(-900, 900, 16000).astype(np.int16))
    (root / "_background_noise_").mkdir()
    audio.write_wav(root / "_background_noise_" / "white.wav", rng.integers(-900, 900, 32000).astype(np.int16))
    (root / "validation_list.txt").write_text("yes/spk0_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/spk1_nohash_0.wav\n")
    return root


def test_damaged_waves_and_features_caches_are_rebuilt(cache, tmp_path, monkeypatch):
    root = fake_layout(tmp_path / "synthetic-fake", np.random.default_rng(0))
    monkeypatch.setattr(kws_data, "dataset_root", lambda source: root)
    feats = kws_data.kws_features("synthetic")
    waves = cache / "data" / "synthetic-fake-waves.npz"
    features = cache / "features" / f"synthetic-fake-mfcc-v{mfcc.FRONT_END_VERSION}.npz"
    assert waves.exists() and features.exists()
    _truncate(waves)
    with pytest.warns(CacheRebuiltWarning, match=str(waves)):
        data = kws_data.load_kws("synthetic")
    assert len(data.train) == len(feats["train"][1])
    _truncate(features, 0.9)
    with pytest.warns(CacheRebuiltWarning, match=str(features)):
        again = kws_data.kws_features("synthetic")
    for s in kws_data.SPLITS:
        np.testing.assert_array_equal(again[s][0], feats[s][0])


@pytest.fixture
def toy_baseline(cache, monkeypatch):
    """get_baseline('dnn') trains a 1-epoch DNN on toy features instead of the course data."""
    from tinyml_utils import train

    X, y = toy_kws_data(64)
    monkeypatch.setattr(kws_data, "kws_features", lambda source: {"train": (X, y), "val": (X, y), "test": (X, y)})
    monkeypatch.setitem(train.BASELINE_EPOCHS, "dnn", (1, 1))
    return train


def test_damaged_model_cache_is_named_and_retrained(toy_baseline, cache):
    model, info = toy_baseline.get_baseline("dnn", progress=False)
    [pt] = (cache / "models").glob("dnn-*.pt")
    reference = [p.clone() for p in model.state_dict().values()]
    for damage in (_truncate, lambda p: p.with_suffix(".json").write_text('{"name": "dn'),
                   lambda p: p.with_suffix(".json").unlink()):
        damage(pt)
        with pytest.warns(CacheRebuiltWarning, match=str(pt)):
            again, again_info = toy_baseline.get_baseline("dnn", progress=False)
        assert all(torch.equal(a, b) for a, b in zip(reference, again.state_dict().values()))  # seeded retrain
        assert again_info["epochs"] == info["epochs"]


# --- 9. every model cache key carries the data and front-end versions ---------------------------

def test_data_version_follows_generator_and_front_end(monkeypatch):
    today = kws_data.data_version("synthetic")
    assert today == f"{kws_synth.SynthConfig().key()}-fe{mfcc.FRONT_END_VERSION}"
    monkeypatch.setattr(mfcc, "FRONT_END_VERSION", mfcc.FRONT_END_VERSION + 1)
    new_front_end = kws_data.data_version("synthetic")
    monkeypatch.setattr(kws_synth, "GENERATOR_VERSION", kws_synth.GENERATOR_VERSION + 1)
    new_generator = kws_data.data_version("synthetic")
    assert len({today, new_front_end, new_generator}) == 3
    assert kws_data.data_version("speech_commands").startswith("speech_commands_v0.02-fe")
    with pytest.raises(ValueError, match="unknown data source 'librispeech'"):
        kws_data.data_version("librispeech")


def test_every_model_cache_key_has_the_data_version(cache, monkeypatch):
    from tinyml_utils import cache as cache_module, config, train
    from tinyml_utils.nas import estimate, retrain
    from tinyml_utils.nas.problem import CONSTRAINTS
    from tinyml_utils.nas.space import design_space_grid, ds_cnn_s_arch
    from tinyml_utils.prune import recipes
    from tinyml_utils.quant import qat

    monkeypatch.setattr(kws_data, "data_version", lambda source: f"DATA[{source}]")
    keys = []

    def capture(path, train_fn, load_fn):
        keys.append(path.name)
        return random_dscnn((8, 8)), {"epochs": 1}
    for module in (train, recipes, retrain, cache_module):  # qat imports it from cache when called
        monkeypatch.setattr(module, "load_or_train", capture)
    real_get_baseline = train.get_baseline
    monkeypatch.setattr(train, "get_baseline", lambda name, source, progress=True: (random_dscnn((8, 8)), {"epochs": 1}))

    real_get_baseline("ds_cnn_s")
    qat.get_qat_model("ds_cnn_s", 8)
    recipes.get_gradual("ds_cnn_s", progress=False)
    recipes.get_channel_pruned("ds_cnn_s", progress=False)
    retrain.train_arch(ds_cnn_s_arch(), epochs=1)
    keys.append(estimate.supernet_key(design_space_grid()[0], CONSTRAINTS, 1, 0, "synthetic"))  # get_supernet's key
    assert len(keys) == 6
    for key in keys:
        assert "DATA[synthetic]" in key and config.run_tag() in key, key


def test_baseline_key_has_the_data_version(toy_baseline, cache):
    toy_baseline.get_baseline("dnn", progress=False)
    [pt] = (cache / "models").glob("dnn-*.pt")
    assert pt.name.startswith(f"dnn-{kws_data.data_version('synthetic')}-e")


# --- 10. a damaged synthetic clip, deleted as the error advises, is spoken again ----------------

@pytest.fixture
def fake_espeak(monkeypatch):
    """espeak-ng stand-in: deterministic noise bursts per (text, voice, speed, pitch); no espeak needed."""
    def speak(text, voice, speed=175, pitch=50, amplitude=100):
        rng = np.random.default_rng(zlib.crc32(f"{text}|{voice}|{speed}|{pitch}".encode()))
        return rng.standard_normal(int(rng.integers(3000, 9000))) * 5000
    monkeypatch.setattr(kws_synth, "espeak", speak)
    monkeypatch.setattr(kws_synth, "voice_variants", lambda: ["f1", "f2", "m1", "m2", "m3", "m4"])


def test_a_deleted_synthetic_clip_is_spoken_again(tmp_path, fake_espeak):
    config = kws_synth.SynthConfig(accents_per_variant=1, takes_per_keyword=1, unknown_per_speaker=1,
                                   noise_seconds=2)
    root = kws_synth.generate(tmp_path / "synthetic-test", config, workers=1, progress=False)
    clip = sorted((root / "yes").glob("*.wav"))[0]
    original = clip.read_bytes()
    before = kws_data.read_layout(root, None, 0.1)
    clip.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(audio.AudioFileError, match=rf"{clip.name}.*Delete it and load the data again: a missing "
                                                   "synthetic clip is spoken again"):
        kws_data._read_source(root, "synthetic")
    clip.unlink()
    (root / "_background_noise_" / "hum.wav").unlink()
    kws_synth.generate(root, config, workers=1, progress=False)
    assert clip.read_bytes() == original and (root / "_background_noise_" / "hum.wav").exists()
    after = kws_data.read_layout(root, None, 0.1)
    assert after["train"].files == before["train"].files
    np.testing.assert_array_equal(after["train"].waves, before["train"].waves)


# --- 11. a WAV file with a bad chunk --------------------------------------------------------------

def test_wav_with_a_bad_chunk_names_the_file(tmp_path):
    audio.write_wav(tmp_path / "ok.wav", int16_clip(100))
    data = (tmp_path / "ok.wav").read_bytes()
    bad = tmp_path / "bad_chunk.wav"
    bad.write_bytes(data[:36] + b"LIST" + (10**6).to_bytes(4, "little") + b"abc" + data[36:])
    with pytest.raises(audio.AudioFileError, match=r"bad_chunk.wav: not a readable WAV file \(a chunk's size "
                                                   "points past the end of the file\)"):
        audio.read_wav(bad)


# --- 12. espeak-ng missing, with a fresh cache ----------------------------------------------------

def test_missing_espeak_gives_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng anywhere on it
    hint = r"espeak-ng is not installed. Install it with: sudo apt-get install -y --no-install-recommends espeak-ng"
    with pytest.raises(RuntimeError, match=hint):
        kws_synth.generate(tmp_path / "synthetic-fresh", progress=False)
    with pytest.raises(RuntimeError, match=hint):
        kws_synth.espeak("yes", "en")


# --- 13. the Speech Commands download -------------------------------------------------------------

def fake_archive(path):
    """A tiny stand-in for speech_commands_v0.02.tar.gz; returns (size, sha256)."""
    buf = io.BytesIO()
    wav = path.with_name("clip.wav")
    audio.write_wav(wav, int16_clip())
    members = {"./validation_list.txt": b"", "./testing_list.txt": b"", "./yes/a_nohash_0.wav": wav.read_bytes()}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue()), hashlib.sha256(buf.getvalue()).hexdigest()


def test_download_is_https_and_checked_against_the_published_checksum():
    assert kws_data.SPEECH_COMMANDS_URL.startswith("https://")
    assert kws_data.SPEECH_COMMANDS_BYTES == 2_428_923_189 and len(kws_data.SPEECH_COMMANDS_SHA256) == 64
    assert 0 < kws_data.DOWNLOAD_TIMEOUT <= 120


def test_download_verifies_then_unpacks_with_a_completion_marker(tmp_path):
    source = tmp_path / "server" / "sc.tar.gz"
    source.parent.mkdir()
    size, sha = fake_archive(source)
    root = tmp_path / "data" / "speech_commands_v0.02"
    root.parent.mkdir()
    kws_data.download_speech_commands(root, source.as_uri(), size, sha)
    assert (root / kws_data.COMPLETE).exists() and audio.read_wav(root / "yes" / "a_nohash_0.wav").shape == (16000,)
    assert (root.parent / "speech_commands_v0.02.tar.gz").exists()
    assert not list(root.parent.glob("*.partial"))
    # Finished: no second download (the URL now points nowhere).
    kws_data.download_speech_commands(root, (tmp_path / "gone.tar.gz").as_uri(), size, sha)

    # An unpacking that stopped half way (files there, no marker) is redone, not trusted.
    (root / kws_data.COMPLETE).unlink()
    (root / "yes" / "a_nohash_0.wav").unlink()
    kws_data.download_speech_commands(root, (tmp_path / "gone.tar.gz").as_uri(), size, sha)
    assert (root / "yes" / "a_nohash_0.wav").exists() and (root / kws_data.COMPLETE).exists()


def test_a_truncated_or_wrong_download_is_not_kept(tmp_path):
    source = tmp_path / "sc.tar.gz"
    size, sha = fake_archive(source)
    root = tmp_path / "data" / "speech_commands_v0.02"
    root.parent.mkdir()
    archive = root.parent / "speech_commands_v0.02.tar.gz"
    short = tmp_path / "short.tar.gz"
    short.write_bytes(source.read_bytes()[: size // 2])
    with pytest.raises(RuntimeError, match=rf"is damaged \({size // 2:,} bytes, expected {size:,}: cut short\?\)"):
        kws_data.download_speech_commands(root, short.as_uri(), size, sha)
    with pytest.raises(RuntimeError, match=rf"is damaged \(SHA-256 {sha}, expected 0+\)"):
        kws_data.download_speech_commands(root, source.as_uri(), size, "0" * 64)
    assert not archive.exists() and not list(root.parent.glob("*.partial")) and not root.exists()
    # A damaged archive left by older code is replaced by a fresh, checked download.
    archive.write_bytes(source.read_bytes()[:100])
    kws_data.download_speech_commands(root, source.as_uri(), size, sha)
    assert archive.read_bytes() == source.read_bytes() and (root / kws_data.COMPLETE).exists()


def test_download_over_http_and_its_timeout(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    size, sha = fake_archive(served / "sc.tar.gz")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        root = tmp_path / "speech_commands_v0.02"
        kws_data.download_speech_commands(root, f"http://127.0.0.1:{server.server_port}/sc.tar.gz", size, sha)
        assert (root / kws_data.COMPLETE).exists()
    finally:
        server.shutdown()
        server.server_close()
    # A server that accepts the connection and never answers: the download gives up, it does not hang.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    monkeypatch.setattr(kws_data, "DOWNLOAD_TIMEOUT", 0.5)
    try:
        with pytest.raises(RuntimeError, match=r"Could not download .*timed out.*source='synthetic'"):
            kws_data.download_speech_commands(tmp_path / "other" / "sc", f"http://127.0.0.1:{silent.getsockname()[1]}/x",
                                              size, sha)
    finally:
        silent.close()

