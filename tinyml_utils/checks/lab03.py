"""Checks for lab 3, quantization. Each compares the student's function with PyTorch or the course package."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import CheckFailed, expect_equal, passed
from ..quant import fixedpoint, interpreter, linear
from ..quant.intmodel import IntModel, Layer, TensorSpec
from ..quant.kmeans import kmeans_1d

RANGES = [(-1.0, 1.0), (0.0, 6.0), (-3.7, 0.2), (0.5, 2.0), (-2.0, -0.5), (-87.3, 16.7), (0.0, 1e-3), (-5e-4, 3e4)]


def _array(what: str, got, shape=None, dtype_kind=None) -> np.ndarray:
    try:
        arr = np.asarray(got)
    except Exception:  # noqa: BLE001 (anything the student returned)
        raise CheckFailed(f"{what}: expected an array, got {type(got).__name__}") from None
    if shape is not None and arr.shape != tuple(shape):
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got {arr.shape}")
    if dtype_kind is not None and arr.dtype.kind not in dtype_kind:
        raise CheckFailed(f"{what}: expected an integer array, got dtype {arr.dtype}")
    return arr


def check_qparams(qparams) -> None:
    """qparams(r_min, r_max) -> (scale, zero_point) of the asymmetric int8 grid over [r_min, r_max] widened to 0."""
    for r_min, r_max in RANGES:
        got = qparams(r_min, r_max)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(f"qparams({r_min}, {r_max}): expected a tuple (scale, zero_point), got {got!r}")
        scale, zero_point = linear.asymmetric_qparams(r_min, r_max)
        if not np.isclose(float(got[0]), scale, rtol=1e-6, atol=0):
            raise CheckFailed(f"qparams({r_min}, {r_max}): expected scale {scale:.8g}, got {float(got[0]):.8g}. "
                              "Hint: widen the range to include 0, then divide it by 255")
        expect_equal(f"qparams({r_min}, {r_max}) zero point", int(got[1]), zero_point)
    passed("qparams matches linear.asymmetric_qparams (range widened to contain 0, zero point in [-128, 127])")


def check_fake_quant(fake_quant) -> None:
    """fake_quant(x float32 array, scale, zero_point) -> quantize-dequantize (float32), as PyTorch rounds."""
    rng = np.random.default_rng(3)
    for trial in range(20):
        x = (rng.standard_t(3, 2000) * rng.uniform(0.1, 10)).astype(np.float32)
        x[:4] = [0.5, 1.5, 2.5, -0.5]                       # ties: round half to even
        scale, zero_point = float(np.float32(rng.uniform(0.01, 0.5))), int(rng.integers(-60, 60))
        x[4:8] = (np.array([0.5, 1.5, -2.5, 3.5]) * scale).astype(np.float32)
        expected = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), scale, zero_point, -128, 127).numpy()
        got = _array("fake_quant", fake_quant(x, scale, zero_point), x.shape).astype(np.float32)
        bad = np.flatnonzero(got != expected)
        if bad.size:
            i = bad[0]
            raise CheckFailed(f"fake_quant(x, scale={scale:.6g}, zero_point={zero_point}): at x = {x[i]!r} expected "
                              f"{expected[i]!r}, got {got[i]!r} ({bad.size} of {x.size} values differ). Hint: "
                              "x * float32(1 / scale), np.rint (half to even), + zero point, clip to [-128, 127]")
    passed("fake_quant equals torch.fake_quantize_per_tensor_affine exactly, ties and clipping included")


def check_weights_per_channel(quantize_weights_per_channel) -> None:
    """quantize_weights_per_channel(w, bits) -> (q int (C_out, ...), scale float32 (C_out,)), symmetric."""
    rng = np.random.default_rng(4)
    for shape in [(8, 3, 3, 3), (16, 1, 3, 3), (12, 64), (4, 4, 1, 1)]:
        w = (rng.normal(0, 1, shape) * rng.uniform(0.01, 3, (shape[0],) + (1,) * (len(shape) - 1))).astype(np.float32)
        w[-1] = 0.0                                          # an all-zero channel gets scale 1
        for bits in (8, 4, 2):
            qmax = 2 ** (bits - 1) - 1
            exp_q, exp_s = linear.quantize_weights(w, axis=0, qmax=qmax)
            got = quantize_weights_per_channel(w, bits)
            if not (isinstance(got, tuple) and len(got) == 2):
                raise CheckFailed("quantize_weights_per_channel must return (q, scale)")
            q = _array(f"q for shape {shape}, {bits} bits", got[0], shape, "iu")
            s = _array(f"scale for shape {shape}, {bits} bits", got[1], (shape[0],))
            if not np.allclose(s, exp_s, rtol=1e-6):
                raise CheckFailed(f"scale for shape {shape}, {bits} bits: expected max|w_c| / {qmax} per output "
                                  f"channel (1 for an all-zero channel), e.g. {exp_s[:3]}, got {s[:3]}")
            if not np.array_equal(q, exp_q):
                raise CheckFailed(f"q for shape {shape}, {bits} bits: {np.sum(q != exp_q)} codes differ; expected "
                                  f"round(w / scale) clipped to [-{qmax}, {qmax}]")
    passed("quantize_weights_per_channel matches linear.quantize_weights at 8, 4 and 2 bits")


def check_quantize_multiplier(quantize_multiplier) -> None:
    """quantize_multiplier(m) -> (m0, shift) with m = m0 * 2^(shift - 31), m0 in [2^30, 2^31)."""
    rng = np.random.default_rng(5)
    values = [0.5, 0.25, 1.0, 0.75, 1 - 2**-40, 0.0040228479, 1.9] + list(2.0 ** rng.uniform(-25, 1, 200))
    for m in values:
        got = quantize_multiplier(float(m))
        expected = fixedpoint.quantize_multiplier(float(m))
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(f"quantize_multiplier({m}) must return (m0, shift), got {got!r}")
        if (int(got[0]), int(got[1])) != expected:
            raise CheckFailed(f"quantize_multiplier({m!r}): expected (m0, shift) = {expected}, got {got}. Hint: "
                              "math.frexp, m0 = round(q * 2**31), and if m0 reaches 2**31 halve it and add 1 to shift")
    passed("quantize_multiplier matches the package, including mantissas that round up to 2^31")


def check_requantize(requantize) -> None:
    """requantize(acc int32 (N, C), m0 (C,), shift (C,), z_out, act_min, act_max) -> int8 (N, C)."""
    rng = np.random.default_rng(6)
    for act_min, act_max in [(-128, 127), (-20, 127), (-128, 50)]:
        mult = 2.0 ** rng.uniform(-16, 0.9, 16)
        m0, shift = fixedpoint.quantize_multipliers(mult)
        acc = rng.integers(-(2**22), 2**22, (64, 16)).astype(np.int32)
        acc[0, :4] = [fixedpoint.INT32_MAX, fixedpoint.INT32_MIN, 0, -1]
        z_out = int(rng.integers(-20, 20))
        expected = fixedpoint.requantize(acc, m0, shift, z_out, act_min, act_max)
        got = _array("requantize", requantize(acc, m0, shift, z_out, act_min, act_max), acc.shape, "iu")
        bad = np.argwhere(got != expected)
        if bad.size:
            n, c = bad[0]
            raise CheckFailed(f"requantize: acc {acc[n, c]}, m0 {m0[c]}, shift {shift[c]}, z_out {z_out}, clamp "
                              f"[{act_min}, {act_max}]: expected {expected[n, c]}, got {got[n, c]} "
                              f"({len(bad)} values differ). Hint: SRDHM ties toward +inf, then RDBPOT ties away from 0")
    passed("requantize equals the specification (fixedpoint.requantize), saturation and clamps included")


def _conv_model(c_in, c_out, groups, kernel, stride, padding, seed):
    rng = np.random.default_rng(seed)
    m0, shift = fixedpoint.quantize_multipliers(2.0 ** rng.uniform(-12, -6, c_out))
    layer = Layer("conv2d", "conv", ["x"], "y",
                  {"stride": stride, "padding": padding, "groups": groups, "act_min": -128, "act_max": 127},
                  {"weight": rng.integers(-127, 128, (c_out, c_in // groups, *kernel)).astype(np.int8),
                   "bias": rng.integers(-3000, 3000, c_out).astype(np.int32), "multiplier": m0, "shift": shift})
    x = rng.integers(-128, 128, (3, c_in, 11, 7)).astype(np.int8)
    return layer, x, int(rng.integers(-128, 0)), int(rng.integers(-10, 10))


def check_int_conv2d(int_conv2d) -> None:
    """int_conv2d(x_q (N, C_in, H, W) int8, layer, z_in, z_out) -> int8 (N, C_out, H_out, W_out)."""
    cases = [(4, 6, 1, (3, 3), (1, 1), (1, 1)), (8, 8, 8, (3, 3), (1, 1), (1, 1)), (8, 5, 1, (1, 1), (1, 1), (0, 0)),
             (1, 4, 1, (10, 4), (2, 2), (5, 1)), (6, 6, 6, (3, 3), (2, 1), (1, 0))]
    for i, (c_in, c_out, groups, kernel, stride, padding) in enumerate(cases):
        layer, x, z_in, z_out = _conv_model(c_in, c_out, groups, kernel, stride, padding, seed=i)
        ho = (11 + 2 * padding[0] - kernel[0]) // stride[0] + 1
        wo = (7 + 2 * padding[1] - kernel[1]) // stride[1] + 1
        model = IntModel({"x": TensorSpec("x", (c_in, 11, 7), 0.1, z_in), "y": TensorSpec("y", (c_out, ho, wo), 0.1, z_out)},
                         [layer], "x", "y")
        expected = interpreter.run(model, x)
        what = f"int_conv2d with {c_in}->{c_out} channels, groups {groups}, kernel {kernel}, stride {stride}, padding {padding}"
        got = _array(what, int_conv2d(x, layer, z_in, z_out), expected.shape, "iu")
        if not np.array_equal(got, expected):
            raise CheckFailed(f"{what}: {np.sum(got != expected)} of {got.size} outputs differ from the interpreter. "
                              "Hint: subtract z_in before padding with zeros; start the sum from the bias")
    passed("int_conv2d equals the integer reference interpreter (standard, depthwise, pointwise, strided)")


def check_fold_bn(fold_bn) -> None:
    """fold_bn(conv, bn) -> (weight, bias) tensors of one convolution equal to conv followed by bn (eval)."""
    torch.manual_seed(0)
    for c_in, c_out, groups, bias in [(3, 8, 1, False), (8, 8, 8, False), (4, 6, 2, True)]:
        conv = nn.Conv2d(c_in, c_out, 3, padding=1, groups=groups, bias=bias)
        bn = nn.BatchNorm2d(c_out).eval()
        with torch.no_grad():
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.2, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.3)
        got = fold_bn(conv, bn)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed("fold_bn must return (weight, bias)")
        weight, b = (torch.as_tensor(t, dtype=torch.float32) for t in got)
        x = torch.randn(2, c_in, 9, 9)
        with torch.no_grad():
            expected = bn(conv(x))
            if tuple(weight.shape) != tuple(conv.weight.shape) or tuple(b.shape) != (c_out,):
                raise CheckFailed(f"fold_bn: expected weight {tuple(conv.weight.shape)} and bias ({c_out},), "
                                  f"got {tuple(weight.shape)} and {tuple(b.shape)}")
            folded = nn.functional.conv2d(x, weight, b, padding=1, groups=groups)
        err = float((folded - expected).abs().max())
        if err > 1e-4:
            raise CheckFailed(f"fold_bn (conv bias={bias}, groups={groups}): the folded convolution differs from "
                              f"conv + batch norm by up to {err:.3g}. Hint: w * gamma / sqrt(var + eps) per output "
                              "channel; b' = (b - mean) * gamma / sqrt(var + eps) + beta")
    passed("fold_bn: one convolution gives the outputs of convolution + batch norm (with and without conv bias)")


def check_kmeans_quantize(kmeans_quantize) -> None:
    """kmeans_quantize(w, bits) -> (codebook (2^bits,), indices same shape as w): a good 1-D k-means."""
    rng = np.random.default_rng(7)
    for shape, bits in [((64, 64, 1, 1), 2), ((64, 1, 3, 3), 3), ((12, 64), 4)]:
        w = rng.laplace(0, 0.1, shape).astype(np.float32)
        got = kmeans_quantize(w, bits)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed("kmeans_quantize must return (codebook, indices)")
        codebook = _array("codebook", got[0], (2**bits,)).astype(np.float64)
        idx = _array("indices", got[1], shape, "iu").astype(np.int64)
        if idx.min() < 0 or idx.max() >= 2**bits:
            raise CheckFailed(f"indices must lie in [0, {2**bits - 1}], got [{idx.min()}, {idx.max()}]")
        mse = float(np.mean((codebook[idx] - w) ** 2))
        ref_c, ref_l = kmeans_1d(w, 2**bits, iters=100)
        ref_mse = float(np.mean((ref_c[ref_l] - w) ** 2))
        if mse > 1.05 * ref_mse:
            raise CheckFailed(f"kmeans_quantize(w {shape}, {bits} bits): mean squared error {mse:.3g}, expected at most "
                              f"{1.05 * ref_mse:.3g} (the package's k-means reaches {ref_mse:.3g}). Hint: start the "
                              "centroids evenly spaced from min to max and iterate assign/update")
        nearest = np.abs(w.ravel()[:, None] - codebook[None, :]).min(1)
        if np.any(np.abs(codebook[idx].ravel() - w.ravel()) > nearest + 1e-6):
            raise CheckFailed("kmeans_quantize: some weights are not assigned to their nearest centroid")
    passed("kmeans_quantize: valid indices, nearest centroids, and an error within 5 % of the package's k-means")
