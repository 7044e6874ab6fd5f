"""Fixed-point requantization: the integer arithmetic of the course's int8 specification.

A layer's int32 accumulator `acc` is rescaled to the output's int8 grid by a real multiplier
`M = s_in * s_w / s_out`. Microcontrollers have no fast float, so `M` is stored as a Q31 integer
`M0` in [2^30, 2^31) and a power-of-two exponent `shift`:

    M = M0 * 2^(shift - 31)

and `acc * M` is computed with integers only, exactly as TensorFlow Lite's reference kernels and
CMSIS-NN do it (the "double rounding" form):

    x = acc * 2^max(shift, 0)                        (saturated to int32)
    y = saturating_rounding_doubling_high_mul(x, M0) (round(x * M0 / 2^31), ties toward +infinity)
    out = rounding_divide_by_pot(y, max(-shift, 0))  (round(y / 2^k), half away from zero)

Every function works elementwise on NumPy arrays (or Python ints), uses int64 only inside the
high multiply (the specification's one int64 product) and returns int32 values. The C runtime
implements the same three lines; tests compare both against exact rational arithmetic.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """Split a positive real multiplier into (M0, shift) with M = M0 * 2^(shift - 31), M0 in [2^30, 2^31).

    Zero gives (0, 0). `math.frexp` writes M = q * 2^shift with q in [0.5, 1); M0 = round(q * 2^31),
    and if rounding reaches 2^31 the mantissa is halved and the exponent bumped.
    """
    if real_multiplier < 0 or not math.isfinite(real_multiplier):
        raise ValueError(f"multiplier must be finite and >= 0, got {real_multiplier}")
    if real_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(real_multiplier)
    m0 = round(q * (1 << 31))
    if m0 == 1 << 31:
        m0 //= 2
        shift += 1
    if shift < -31:  # so small that every int32 accumulator rounds to 0
        return 0, 0
    if shift > 30:
        raise ValueError(f"multiplier {real_multiplier} is too large for the int32 fixed-point form")
    return int(m0), int(shift)


def quantize_multipliers(real_multipliers) -> tuple[np.ndarray, np.ndarray]:
    """`quantize_multiplier` per channel: (M0 int32 (C,), shift int32 (C,))."""
    pairs = [quantize_multiplier(float(m)) for m in np.ravel(real_multipliers)]
    return (np.array([p[0] for p in pairs], dtype=np.int32), np.array([p[1] for p in pairs], dtype=np.int32))


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """round(a * b / 2^31) for int32 a, b, ties toward +infinity; INT32_MIN * INT32_MIN saturates.

    gemmlowp (and so TFLite and CMSIS-NN) form the int64 product, add a nudge of 2^30 (or
    1 - 2^30 when negative) and divide by 2^31 truncating toward zero. A positive tie (x.5)
    goes up and a negative tie (-x.5) goes toward zero, so overall ties go toward +infinity:
    floor(ab / 2^31 + 1/2). On the magnitude that is (|ab| + 2^30 - [ab < 0]) >> 31 with the sign
    put back, the form used here (in place, fast).
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = np.asarray(a * b)  # (a 0-d array for scalars, so the in-place steps below work)
    negative = ab < 0
    np.abs(ab, out=ab)
    ab += 1 << 30
    ab -= negative
    ab >>= 31
    np.negative(ab, out=ab, where=negative)
    if np.any(b == INT32_MIN):  # the only product that does not fit: INT32_MIN * INT32_MIN
        ab = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, ab)
    return ab.astype(np.int32)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """round(x / 2^exponent) for int32 x and 0 <= exponent <= 31, rounding half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("rounding_divide_by_pot needs 0 <= exponent <= 31")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    out = np.asarray(x >> exponent)
    out += remainder > threshold
    return out.astype(np.int32)


def multiply_by_quantized_multiplier(acc, m0, shift) -> np.ndarray:
    """acc * M0 * 2^(shift - 31) rounded as the specification says; int32 in, int32 out.

    `m0` and `shift` broadcast against `acc` (per-channel requantization passes (C, 1, 1) arrays).
    """
    acc = np.asarray(acc, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(acc << left, INT32_MIN, INT32_MAX)  # saturating left shift (M >= 1 only)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m0), right)


def requantize(acc, m0, shift, output_zero_point: int, act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """int32 accumulators -> int8 outputs: scale, add the output zero point, clamp (fused ReLU/ReLU6)."""
    out = multiply_by_quantized_multiplier(acc, m0, shift).astype(np.int64) + int(output_zero_point)
    return np.clip(out, act_min, act_max).astype(np.int8)
