"""Range selection: min/max, percentile and MSE clipping; SQNR; calibration over a model."""
import numpy as np
import pytest
import torch

from tinyml_utils.models import ds_cnn_s
from tinyml_utils.quant.convert import calibrate, trace_and_fold
from tinyml_utils.quant.ranges import (calibrate_ranges, choose_range, fake_quantize_range, mse_range,
                                       percentile_range, sqnr_db, symmetric_mse_scales)


def heavy_tailed(n=20000, seed=0):
    return np.random.default_rng(seed).standard_t(3, n).astype(np.float32)


def test_minmax_never_clips_and_percentile_drops_tails():
    x = heavy_tailed()
    lo, hi = choose_range(x, "minmax")
    assert (lo, hi) == (x.min(), x.max())
    p_lo, p_hi = percentile_range(x, 99.0)
    assert lo < p_lo < 0 < p_hi < hi
    assert np.mean((x < p_lo) | (x > p_hi)) == pytest.approx(0.02, abs=0.002)


def test_mse_range_beats_minmax_on_heavy_tails_and_is_optimal_on_its_grid():
    x = heavy_tailed()
    (lo, hi), (alphas, mse) = mse_range(x, bits=4, return_curve=True)
    err = lambda r: np.mean((fake_quantize_range(x, *r, bits=4) - x) ** 2)  # noqa: E731
    assert err((lo, hi)) == pytest.approx(mse.min(), rel=1e-6)
    assert err((lo, hi)) < 0.7 * err(choose_range(x, "minmax"))
    assert hi < x.max() and alphas[-1] == 1.0


def test_symmetric_mse_scales_per_channel():
    rng = np.random.default_rng(0)
    w = rng.standard_t(4, (6, 50)).astype(np.float32)
    scales = symmetric_mse_scales(w, bits=4)
    max_scales = np.abs(w).max(1) / 7
    assert scales.shape == (6,) and np.all(scales <= max_scales + 1e-7)
    for c in range(6):                                   # no candidate beats the chosen scale
        def err(s):
            return np.mean((np.clip(np.rint(w[c] / s), -7, 7) * s - w[c]) ** 2)
        assert err(scales[c]) <= min(err(a * max_scales[c]) for a in np.linspace(0.01, 1, 100)) * (1 + 1e-5)
    assert symmetric_mse_scales(np.zeros((2, 3)), 8).tolist() == [1.0, 1.0]


def test_sqnr_grows_about_6_db_per_bit():
    x = np.random.default_rng(1).uniform(-1, 1, 100_000).astype(np.float32)
    s = [sqnr_db(x, fake_quantize_range(x, -1, 1, b)) for b in (4, 6, 8)]
    assert s[1] - s[0] == pytest.approx(12.04, abs=0.5) and s[2] - s[1] == pytest.approx(12.04, abs=0.5)
    assert sqnr_db(x, x) == float("inf")


def test_calibrate_ranges_agrees_with_the_converter():
    torch.manual_seed(0)
    model = ds_cnn_s().eval()
    X = np.random.default_rng(0).normal(0, 3, (40, 49, 10)).astype(np.float32)
    ours = calibrate_ranges(model, X, "minmax")
    ref = calibrate(trace_and_fold(model), X)
    assert ours.keys() == ref.keys()
    for k in ref:
        assert ours[k] == pytest.approx(ref[k])
    assert calibrate_ranges(model, X, "minmax", names=["conv1_relu"]).keys() == {"conv1_relu"}
    for method in ("percentile", "mse"):
        r = calibrate_ranges(model, X, method)
        assert all(ref[k][0] - 1e-6 <= r[k][0] and r[k][1] <= ref[k][1] + 1e-6 for k in ref)


def test_bad_method_is_explained():
    with pytest.raises(ValueError, match="choose one of"):
        choose_range(np.ones(3), "kl")
    with pytest.raises(ValueError, match="percentile"):
        percentile_range(np.ones(3), 30)


def test_convert_uses_given_weight_scales():
    from tinyml_utils.quant.convert import convert
    from tinyml_utils.quant.linear import quantize

    torch.manual_seed(0)
    model = ds_cnn_s().eval()
    X = np.random.default_rng(0).normal(0, 3, (16, 49, 10)).astype(np.float32)
    folded = trace_and_fold(model)
    w = folded.pw1.weight.detach().numpy()
    scales = symmetric_mse_scales(w, bits=4)
    int_model = convert(model, X, weight_bits=4, weight_scales={"pw1": scales})
    pw1 = next(l for l in int_model.layers if l.name == "pw1")
    np.testing.assert_array_equal(pw1.arrays["weight_scale"], scales)
    np.testing.assert_array_equal(pw1.arrays["weight"], quantize(w, scales, np.zeros(64, np.int64), -7, 7, axis=0))
    with pytest.raises(ValueError, match="not a Conv2d/Linear"):
        convert(model, X, weight_scales={"pw9": scales})
