"""Audio plumbing for keyword spotting: WAV files, resampling, 1-second clips and noise mixing.

Everything here works on int16 or float arrays of samples at `SAMPLE_RATE` (16 kHz mono), the
format of Google Speech Commands and of the course's synthetic data.
"""
from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000  # Hz
CLIP_SAMPLES = SAMPLE_RATE  # one second


class AudioFileError(ValueError):
    """A WAV file that cannot be used: corrupt, truncated, or in a format the course does not use."""


# The advice a damaged file's error ends with; a dataset loader replaces it with its own way back.
REPLACE_FILE = "Delete it and regenerate or re-download the dataset."


def read_wav(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """Read a 16 kHz mono 16-bit WAV file into int16 samples, shape (num_samples,).

    With `data`, the file's bytes (a member of an archive, say) are read instead and `path` only
    names them in errors."""
    path = Path(path)
    try:
        with wave.open(str(path) if data is None else io.BytesIO(data), "rb") as f:
            channels, width, rate, frames = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            raw = f.readframes(frames)
    except (wave.Error, EOFError, OSError, RuntimeError) as e:
        # Python's wave module raises a bare RuntimeError when a chunk's size points past the end.
        why = str(e) or ("a chunk's size points past the end of the file" if isinstance(e, RuntimeError)
                         else type(e).__name__)
        raise AudioFileError(f"{path}: not a readable WAV file ({why}). {REPLACE_FILE}") from e
    if (channels, width, rate) != (1, 2, SAMPLE_RATE):
        raise AudioFileError(f"{path}: expected 16 kHz mono 16-bit PCM, found {rate} Hz, {channels} "
                             f"channel(s), {8 * width}-bit. Convert it first, e.g. `sox in.wav -r 16000 "
                             f"-c 1 -b 16 out.wav`.")
    if len(raw) != frames * 2:
        raise AudioFileError(f"{path}: truncated WAV file (header says {frames} samples, found "
                             f"{len(raw) // 2}). {REPLACE_FILE}")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def require_int16(samples, what: str) -> np.ndarray:
    """`samples` as an int16 array, or a TypeError that says how to convert it explicitly.

    The course's audio is int16 (full scale 32767). Guessing the scale of other dtypes would be a
    silent wrong answer: float audio in [-1, 1) read as int16 values is 90 dB too quiet.
    """
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples
    if np.issubdtype(samples.dtype, np.floating):
        how = ("float audio in [-1, 1) converts with `audio.to_int16(x * 32767)`, float audio already "
               "at int16 scale with `audio.to_int16(x)`")
    else:
        how = "convert it with `x.astype(np.int16)` if its values are 16-bit samples, else rescale them first"
    raise TypeError(f"{what} takes int16 samples (full scale 32767), got {samples.dtype}: {how} "
                    "(tinyml_utils.audio.to_int16 rounds and saturates).")


def write_wav(path: str | Path, samples: np.ndarray) -> None:
    """Write int16 samples, shape (num_samples,), as a 16 kHz mono WAV file."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError(f"write_wav expects a 1-D int16 array, got {samples.dtype} of shape {samples.shape}")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(samples.astype("<i2").tobytes())


def parse_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Samples (int16) and sample rate of a mono 16-bit WAV in memory.

    Tolerates the bogus size fields that `espeak-ng --stdout` writes (it cannot seek back to fix
    them): the samples are everything after the 'data' chunk header.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError("not a WAV stream (no RIFF/WAVE header)")
    fmt = data.find(b"fmt ")
    pos = data.find(b"data", fmt)
    if fmt < 0 or pos < 0:
        raise AudioFileError("WAV stream without 'fmt ' or 'data' chunk")
    channels = int.from_bytes(data[fmt + 10:fmt + 12], "little")
    rate = int.from_bytes(data[fmt + 12:fmt + 16], "little")
    bits = int.from_bytes(data[fmt + 22:fmt + 24], "little")
    if channels != 1 or bits != 16:
        raise AudioFileError(f"expected mono 16-bit audio, got {channels} channel(s), {bits}-bit")
    body = data[pos + 8:]
    body = body[: len(body) // 2 * 2]
    return np.frombuffer(body, dtype="<i2").astype(np.int16), rate


def resample(samples: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample float or int samples with a polyphase low-pass filter; returns float64."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(np.asarray(samples, dtype=np.float64), rate_out // g, rate_in // g)


def pad_or_crop(samples: np.ndarray, length: int = CLIP_SAMPLES, offset: int | None = None) -> np.ndarray:
    """Place `samples` in a clip of `length` samples starting at `offset` (may be negative to crop).

    With `offset=None` a shorter clip is padded at the end (how real clips shorter than 1 s are
    handled) and a longer one is cropped at the end.
    """
    samples = np.asarray(samples)
    out = np.zeros(length, dtype=samples.dtype)
    offset = 0 if offset is None else int(offset)
    src_start, dst_start = max(0, -offset), max(0, offset)
    n = min(len(samples) - src_start, length - dst_start)
    if n > 0:
        out[dst_start:dst_start + n] = samples[src_start:src_start + n]
    return out


def rms(x: np.ndarray) -> float:
    """Root-mean-square level of a float signal."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x) + 1e-20))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Add `noise` scaled so that speech power / noise power = `snr_db` (both float, same length)."""
    gain = rms(speech) / (rms(noise) * 10 ** (snr_db / 20))
    return speech + gain * noise


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round and saturate float samples (full scale 32767) to int16."""
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def trim_silence(x: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Cut leading and trailing samples quieter than `threshold` times the peak."""
    x = np.asarray(x)
    loud = np.flatnonzero(np.abs(x) > threshold * (np.abs(x).max() + 1e-12))
    return x[loud[0]:loud[-1] + 1] if len(loud) else x[:0]
