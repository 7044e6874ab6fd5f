import numpy as np
import pytest

from conftest import needs_espeak
from tinyml_utils import kws_data, kws_synth
from tinyml_utils.audio import AudioFileError, write_wav
from tinyml_utils.kws_data import CLASSES, read_layout


def fake_layout(root, rng):
    for word, n in [("yes", 4), ("no", 4), ("cat", 6), ("dog", 6)]:
        (root / word).mkdir(parents=True)
        for i in range(n):
            write_wav(root / word / f"spk{i}_nohash_0.wav", rng.integers(-100, 100, 16000 - 100 * i).astype(np.int16))
    (root / "_background_noise_").mkdir()
    write_wav(root / "_background_noise_" / "white.wav", rng.integers(-1000, 1000, 48000).astype(np.int16))
    (root / "validation_list.txt").write_text("yes/spk0_nohash_0.wav\ncat/spk0_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/spk1_nohash_0.wav\ndog/spk1_nohash_0.wav\n")


def test_read_layout_labels_splits_silence_and_unknown(tmp_path):
    fake_layout(tmp_path, np.random.default_rng(0))
    splits = read_layout(tmp_path, unknown_fraction=None, silence_fraction=0.5)
    train = splits["train"]
    assert train.waves.shape[1] == 16000 and train.waves.dtype == np.int16  # short clips padded
    names = [CLASSES[i] for i in train.labels]
    assert names.count("yes") == 3 and names.count("no") == 3 and names.count("_unknown_") == 10
    assert names.count("_silence_") == int(0.5 * 16)
    assert sorted(CLASSES[i] for i in splits["val"].labels) == ["_silence_", "_unknown_", "yes"]
    subsampled = read_layout(tmp_path, unknown_fraction=0.5, silence_fraction=0.0)["train"]
    assert [CLASSES[i] for i in subsampled.labels].count("_unknown_") == 3  # 0.5 x 6 keyword clips


def test_corrupt_clip_names_the_file(tmp_path):
    fake_layout(tmp_path, np.random.default_rng(0))
    (tmp_path / "yes" / "spk2_nohash_0.wav").write_bytes(b"RIFF0000garbage")
    with pytest.raises(AudioFileError, match="spk2_nohash_0.wav"):
        read_layout(tmp_path, None, 0.0)


def test_offline_download_fails_clearly(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(kws_data.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="source='synthetic'"):
        kws_data.download_speech_commands(tmp_path / "sc")


def test_unknown_source_is_an_error():
    with pytest.raises(ValueError, match="synthetic"):
        kws_data.dataset_root("librispeech")


def test_plan_is_deterministic_and_splits_by_voice():
    variants = [f"v{i}" for i in range(40)]
    specs, split_of = kws_synth.plan_clips(kws_synth.SynthConfig(), variants)
    again, _ = kws_synth.plan_clips(kws_synth.SynthConfig(), variants)
    assert specs == again
    voices = {s: {c.voice.split("+")[1] for c in specs if c.split == s and c.voice} for s in ("training", "validation", "testing")}
    assert not (voices["training"] & voices["testing"]) and not (voices["training"] & voices["validation"])
    assert all(c.split == split_of[c.voice.split("+")[1]] for c in specs if c.voice)
    assert {c.word for c in specs} >= set(kws_synth.KEYWORDS) | {"_silence_"}


@needs_espeak
def test_rendering_is_deterministic_and_fails_loudly_on_bad_voices():
    rng = np.random.default_rng(0)
    noises = {k: kws_synth.make_noise(k, 32000, rng) for k in kws_synth.NOISE_KINDS if k != "babble"}
    noises["babble"] = noises["pink"]
    spec = kws_synth.ClipSpec("yes", "en-us+f3", "yes/x.wav", "training", 1234)
    a, b = kws_synth.render_clip(spec, noises), kws_synth.render_clip(spec, noises)
    assert a.shape == (16000,) and a.dtype == np.int16 and np.array_equal(a, b) and np.abs(a).max() > 100
    with pytest.raises(RuntimeError, match="espeak-ng failed"):
        kws_synth.espeak("yes", "xx-no-such-voice")


@needs_espeak
def test_voice_variants_really_differ():
    variants = kws_synth.voice_variants()
    assert len(variants) >= 20
    prints = {kws_synth.espeak("no", f"en+{v}").tobytes() for v in variants[:10]}
    assert len(prints) == 10
