"""The MFCC front end of MLPerf Tiny keyword spotting, from scratch in NumPy.

One second of 16 kHz audio becomes a 49 x 10 feature map:

1. frames: 30 ms windows (480 samples) every 20 ms (320 samples) -> 49 frames;
2. a periodic Hann window, then a 512-point real FFT -> magnitude of 257 bins;
3. 40 triangular mel filters between 20 and 4000 Hz (HTK mel scale) -> 40 energies;
4. natural log (plus a small floor) -> log-mel spectrogram;
5. an orthonormal DCT-II over the 40 log energies, keeping the first 10 -> MFCCs.

Every constant is a plain value so the same steps can be written in C on the device.
(`torch.stft` centres its frames and would give 47 or 51 frames, not 49: we frame ourselves.)
"""
from __future__ import annotations

import numpy as np

from .audio import CLIP_SAMPLES, SAMPLE_RATE, require_int16

FRAME_LENGTH = 480   # samples (30 ms)
FRAME_STEP = 320     # samples (20 ms)
FFT_SIZE = 512
NUM_MEL_BINS = 40
MEL_LOW_HZ = 20.0
MEL_HIGH_HZ = 4000.0
NUM_MFCC = 10
LOG_FLOOR = 1e-6     # keeps log() finite on digital silence
FRONT_END_VERSION = 1  # bump when the features change: cached features are keyed by it
NUM_FRAMES = 1 + (CLIP_SAMPLES - FRAME_LENGTH) // FRAME_STEP  # 49
MAX_CHANNELS = 8     # a last axis this short beside a longer one is a channel axis, not a clip


def frame_signal(samples: np.ndarray) -> np.ndarray:
    """Cut (..., num_samples) into overlapping frames, (..., num_frames, FRAME_LENGTH)."""
    num_frames = 1 + (samples.shape[-1] - FRAME_LENGTH) // FRAME_STEP
    starts = FRAME_STEP * np.arange(num_frames)
    return samples[..., starts[:, None] + np.arange(FRAME_LENGTH)]


def hann_window(length: int = FRAME_LENGTH) -> np.ndarray:
    """Periodic Hann window (the one spectral analysis uses), (length,)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)


def hz_to_mel(hz):
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_filterbank(num_bins: int = NUM_MEL_BINS, fft_size: int = FFT_SIZE, low_hz: float = MEL_LOW_HZ,
                   high_hz: float = MEL_HIGH_HZ, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters, equally spaced in mel, as a matrix (fft_size // 2 + 1, num_bins).

    Filter m rises linearly (in mel) from edge m to edge m+1 and falls to edge m+2. The DC bin is
    excluded, as in TensorFlow's `linear_to_mel_weight_matrix`.
    """
    bin_mel = hz_to_mel(np.linspace(0, sample_rate / 2, fft_size // 2 + 1))  # (257,)
    edges = np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), num_bins + 2)  # (42,)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # each (40,)
    rising = (bin_mel[:, None] - lower) / (center - lower)
    falling = (upper - bin_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def dct_matrix(num_in: int = NUM_MEL_BINS, num_out: int = NUM_MFCC) -> np.ndarray:
    """Orthonormal DCT-II as a matrix (num_in, num_out): mfcc = log_mel @ D."""
    n = np.arange(num_in)[:, None]
    k = np.arange(num_out)[None, :]
    d = np.cos(np.pi * k * (2 * n + 1) / (2 * num_in)) * np.sqrt(2.0 / num_in)
    d[:, 0] /= np.sqrt(2.0)
    return d


def as_clips(samples, pad_or_crop: bool = False) -> np.ndarray:
    """Check that `samples` are int16 mono clips (..., 16000) and return them as an array.

    Float audio, a channel axis and other lengths are errors that say how to fix them: each would
    otherwise give features that look fine and are wrong. With `pad_or_crop` a shorter clip is
    zero-padded at the end and a longer one keeps its first second (what real clips need).
    """
    samples = require_int16(samples, "mfcc")
    if samples.ndim == 0:
        raise ValueError(f"mfcc takes clips shaped (..., {CLIP_SAMPLES}), got a single number")
    if samples.ndim >= 2 and samples.shape[-1] <= MAX_CHANNELS < samples.shape[-2]:
        raise ValueError(f"mfcc takes mono clips shaped (..., {CLIP_SAMPLES}), got shape {samples.shape}: "
                         f"its last axis looks like {samples.shape[-1]} audio channel(s). Take one channel, "
                         "x[..., 0], or mix them, audio.to_int16(x.mean(axis=-1)).")
    length = samples.shape[-1]
    if length == CLIP_SAMPLES:
        return samples
    if not pad_or_crop:
        raise ValueError(f"mfcc takes clips of exactly {CLIP_SAMPLES} samples (1 s at 16 kHz), got {length} "
                         f"(shape {samples.shape}). Cut out the second you mean with audio.pad_or_crop(x, "
                         "offset=...), or pass pad_or_crop=True to zero-pad a shorter clip at the end and keep "
                         "the first second of a longer one.")
    if length < CLIP_SAMPLES:
        pad = [(0, 0)] * (samples.ndim - 1) + [(0, CLIP_SAMPLES - length)]
        samples = np.pad(samples, pad)
    return samples[..., :CLIP_SAMPLES]


def log_mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Log mel energies of (..., 16000) int16 audio, (..., 49, 40) float32."""
    x = as_clips(samples).astype(np.float64) / 32768.0  # int16 full scale -> [-1, 1)
    frames = frame_signal(x) * hann_window()
    magnitude = np.abs(np.fft.rfft(frames, n=FFT_SIZE, axis=-1))  # (..., 49, 257)
    mel = magnitude @ mel_filterbank()
    return np.log(mel + LOG_FLOOR).astype(np.float32)


def mfcc(samples: np.ndarray, pad_or_crop: bool = False) -> np.ndarray:
    """MFCC features of (..., 16000) int16 audio, (..., 49, 10) float32.

    Other lengths are an error unless `pad_or_crop=True` (zero-pad at the end / keep the first second).
    """
    samples = as_clips(samples, pad_or_crop)
    return (log_mel_spectrogram(samples).astype(np.float64) @ dct_matrix()).astype(np.float32)


def mfcc_batched(waves: np.ndarray, batch_size: int = 512, progress: bool = False) -> np.ndarray:
    """MFCC of many clips (N, 16000) in batches to bound memory, (N, 49, 10) float32."""
    from tqdm.auto import tqdm

    out = np.empty((len(waves), NUM_FRAMES, NUM_MFCC), dtype=np.float32)
    for start in tqdm(range(0, len(waves), batch_size), desc="MFCC", disable=not progress):
        out[start:start + batch_size] = mfcc(waves[start:start + batch_size])
    return out
