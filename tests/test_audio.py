import numpy as np
import pytest

from tinyml_utils.audio import (AudioFileError, mix_at_snr, pad_or_crop, parse_wav_bytes, read_wav, rms,
                                to_int16, trim_silence, write_wav)


def test_wav_round_trip(tmp_path):
    x = np.arange(-500, 500, dtype=np.int16)
    write_wav(tmp_path / "a.wav", x)
    np.testing.assert_array_equal(read_wav(tmp_path / "a.wav"), x)


def test_corrupt_and_truncated_files_raise_clear_errors(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"this is not audio")
    with pytest.raises(AudioFileError, match="not a readable WAV"):
        read_wav(tmp_path / "junk.wav")
    write_wav(tmp_path / "t.wav", np.zeros(1000, np.int16))
    data = (tmp_path / "t.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(data[:-500])
    with pytest.raises(AudioFileError, match="truncated"):
        read_wav(tmp_path / "t.wav")


def test_wrong_format_is_rejected_with_a_fix(tmp_path):
    import wave
    with wave.open(str(tmp_path / "s.wav"), "wb") as f:
        f.setnchannels(2); f.setsampwidth(2); f.setframerate(44100); f.writeframes(b"\0" * 400)
    with pytest.raises(AudioFileError, match="sox"):
        read_wav(tmp_path / "s.wav")


def test_parse_wav_bytes_ignores_bogus_sizes():
    header = b"RIFF" + b"\xff\xff\xff\x7f" + b"WAVEfmt " + (16).to_bytes(4, "little") + \
        (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (22050).to_bytes(4, "little") + \
        (44100).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little") + \
        b"data" + b"\xff\xff\xff\x7f"
    samples, rate = parse_wav_bytes(header + np.array([1, -2, 3], "<i2").tobytes())
    assert rate == 22050 and samples.tolist() == [1, -2, 3]


def test_pad_or_crop():
    x = np.arange(1, 6)
    assert pad_or_crop(x, 8).tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    assert pad_or_crop(x, 8, offset=2).tolist() == [0, 0, 1, 2, 3, 4, 5, 0]
    assert pad_or_crop(x, 3, offset=-1).tolist() == [2, 3, 4]
    assert pad_or_crop(x, 3, offset=5).tolist() == [0, 0, 0]


def test_mix_at_snr_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    speech, noise = rng.standard_normal(16000), rng.standard_normal(16000) * 7
    mixed = mix_at_snr(speech, noise, 10.0)
    assert 20 * np.log10(rms(speech) / rms(mixed - speech)) == pytest.approx(10.0, abs=1e-9)


def test_to_int16_saturates_and_trim():
    assert to_int16(np.array([40000.0, -40000.0, 1.4])).tolist() == [32767, -32768, 1]
    assert trim_silence(np.array([0, 0, 5, 100, 3, 0])).tolist() == [5, 100, 3]
