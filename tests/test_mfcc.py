import numpy as np
import pytest
import scipy.fft
import scipy.signal
import torch

from tinyml_utils import mfcc as M


def test_shapes_and_frame_count():
    x = np.random.default_rng(0).integers(-3000, 3000, 16000).astype(np.int16)
    assert M.NUM_FRAMES == 49
    assert M.frame_signal(x).shape == (49, 480)
    assert M.mfcc(x).shape == (49, 10)
    assert M.mfcc(np.stack([x, x])).shape == (2, 49, 10)


def test_short_clips_are_padded_when_asked():
    x = np.random.default_rng(1).integers(-3000, 3000, 12000).astype(np.int16)
    np.testing.assert_array_equal(M.mfcc(x, pad_or_crop=True), M.mfcc(np.concatenate([x, np.zeros(4000, np.int16)])))


def test_window_filterbank_and_dct():
    np.testing.assert_allclose(M.hann_window(), scipy.signal.get_window("hann", 480), atol=1e-12)  # periodic
    fb = M.mel_filterbank()
    assert fb.shape == (257, 40) and fb.min() >= 0 and fb.max() <= 1
    freqs = np.linspace(0, 8000, 257)
    assert fb[(freqs < 20) | (freqs > 4000)].sum() == 0          # nothing outside 20-4000 Hz
    assert np.all(fb.argmax(0)[1:] >= fb.argmax(0)[:-1])          # centres rise with frequency
    full = M.dct_matrix(40, 40)
    np.testing.assert_allclose(full.T @ full, np.eye(40), atol=1e-12)  # orthonormal
    logmel = np.random.default_rng(2).standard_normal((5, 40))
    np.testing.assert_allclose(logmel @ M.dct_matrix(), scipy.fft.dct(logmel, type=2, norm="ortho")[:, :10], atol=1e-10)


def test_spectrum_matches_torch_stft():
    # torch.stft puts the 480-sample window in the middle of each 512-sample frame; shifting the
    # signal by 16 samples lines its frames up with ours. |FFT| ignores where the frame sits.
    x = np.random.default_rng(3).standard_normal(16000)
    ours = np.abs(np.fft.rfft(M.frame_signal(x) * M.hann_window(), n=512))
    shifted = torch.from_numpy(np.concatenate([np.zeros(16), x]))
    theirs = torch.stft(shifted, n_fft=512, hop_length=320, win_length=480, center=False,
                        window=torch.hann_window(480, periodic=True, dtype=torch.float64),
                        return_complex=True).abs().numpy().T
    assert theirs.shape == ours.shape == (49, 257)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_silence_is_finite():
    feats = M.mfcc(np.zeros(16000, np.int16))
    assert np.isfinite(feats).all()
    assert feats[0, 0] == pytest.approx(np.log(M.LOG_FLOOR) * np.sqrt(40), rel=1e-5)
