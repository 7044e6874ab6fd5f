"""Linear (affine) quantization: real = scale * (q - zero_point).

Rounding follows PyTorch's `fake_quantize_per_tensor_affine` exactly: the float32 value is
multiplied by the float32 reciprocal of the scale and rounded half to even (`std::nearbyint`),
then the zero point is added and the result clamped to [quant_min, quant_max].
"""
from __future__ import annotations

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
WEIGHT_MAX = 127  # weights use [-127, 127] so that -w is always representable (symmetric)


def _broadcastable(scale, zero_point, ndim: int, axis: int | None):
    """scale (float32) and zero point (int64) shaped to broadcast along `axis` of an ndim-array."""
    scale = np.asarray(scale, dtype=np.float32)
    zero_point = np.asarray(zero_point, dtype=np.int64)
    if axis is not None:
        shape = [1] * ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return scale, zero_point


def quantize(x, scale, zero_point, quant_min: int = INT8_MIN, quant_max: int = INT8_MAX,
             axis: int | None = None) -> np.ndarray:
    """Real values -> integers (int64 array). Per-channel when `axis` is given (scale/zero_point (C,))."""
    x = np.asarray(x, dtype=np.float32)
    scale, zero_point = _broadcastable(scale, zero_point, x.ndim, axis)
    inv_scale = (np.float32(1.0) / scale).astype(np.float32)
    q = np.rint(x * inv_scale).astype(np.int64) + zero_point
    return np.clip(q, quant_min, quant_max)


def dequantize(q, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """Integers -> real values (float32). Per-channel when `axis` is given."""
    q = np.asarray(q, dtype=np.int64)
    scale, zero_point = _broadcastable(scale, zero_point, q.ndim, axis)
    return ((q - zero_point).astype(np.float32) * scale).astype(np.float32)


def asymmetric_qparams(x_min: float, x_max: float, quant_min: int = INT8_MIN,
                       quant_max: int = INT8_MAX) -> tuple[float, int]:
    """(scale, zero_point) mapping [x_min, x_max] onto [quant_min, quant_max].

    The range is widened to include 0 so that real zero (padding, ReLU's floor) is exact.
    """
    x_min, x_max = min(float(x_min), 0.0), max(float(x_max), 0.0)
    if x_max == x_min:
        return 1.0, 0
    scale = (x_max - x_min) / (quant_max - quant_min)
    zero_point = int(np.clip(round(quant_min - x_min / scale), quant_min, quant_max))
    return float(np.float32(scale)), zero_point


def symmetric_scales(weight, axis: int = 0, qmax: int = WEIGHT_MAX) -> np.ndarray:
    """Per-channel symmetric scales max|w| / qmax along `axis`, float32 (C,); an all-zero channel gets 1."""
    w = np.moveaxis(np.asarray(weight, dtype=np.float32), axis, 0)
    max_abs = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    return np.where(max_abs > 0, max_abs / qmax, 1.0).astype(np.float32)


def quantize_weights(weight, axis: int = 0, qmax: int = WEIGHT_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8 weights: (q int8 same shape, scale float32 (C,))."""
    scale = symmetric_scales(weight, axis, qmax)
    q = quantize(weight, scale, np.zeros_like(scale, dtype=np.int64), -qmax, qmax, axis=axis)
    return q.astype(np.int8), scale


def quantize_bias(bias, input_scale: float, weight_scale) -> np.ndarray:
    """int32 bias with scale input_scale * weight_scale[c] and zero point 0, (C,).

    A bias too large for int32 at that scale is an error, not a silent clip: it means the input
    range is tiny compared with the bias (e.g. calibration data that does not excite the layer).
    """
    bias_scale = np.float64(input_scale) * np.asarray(weight_scale, dtype=np.float64)
    q = np.rint(np.asarray(bias, dtype=np.float64) / bias_scale)
    if np.any(np.abs(q) > 2**31 - 1):
        worst = int(np.argmax(np.abs(q)))
        raise OverflowError(f"bias {float(np.ravel(bias)[worst]):.4g} of channel {worst} is {abs(q[worst]):.3g} steps "
                            f"of s_in * s_w = {float(np.ravel(bias_scale)[worst]):.3g}: it does not fit in int32. "
                            "Calibrate with data that reaches this layer's input range (or check the model's "
                            "batch-norm statistics).")
    return q.astype(np.int32)
