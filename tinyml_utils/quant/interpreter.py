"""The integer reference interpreter: runs an `IntModel` on int8 inputs with integer arithmetic only.

This is the course's specification in executable form; the generated C code and the firmware
must match it bit for bit. Per operator (x, y int8; z zero points; acc int32):

* conv2d / linear: acc[c] = bias[c] + sum (x - z_x) * w[c]    (padding contributes x = z_x, i.e. 0)
  y[c] = clamp(z_y + MBQM(acc[c], M0[c], shift[c]), act_min, act_max)
  where MBQM is `fixedpoint.multiply_by_quantized_multiplier` and the clamp is the fused
  ReLU (act_min = z_y) or ReLU6 (act_max = z_y + round(6 / s_y)), else [-128, 127].
* avgpool: s = sum of x over the window (int32), y = s / n rounded half away from zero
  (TFLite's (s +/- n/2) / n with C division); input and output share scale and zero point.
* maxpool: the largest x in the window.
* add: TFLite's int8 add: both inputs (x - z) << 20 are rescaled to a common scale by their own
  multipliers, summed, rescaled to the output, + z_y, clamped.
* flatten: NCHW order.

Batched and vectorised with NumPy: accumulators are checked to fit in
int32 (an overflow would be a bug in the model, so it raises instead of wrapping). Dot
products run in int32 when they provably cannot overflow (terms * 255 * 128 < 2^31), else int64.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .fixedpoint import INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier, requantize
from .intmodel import IntModel, Layer
from .linear import quantize


def _check_int32(acc: np.ndarray, layer: Layer) -> np.ndarray:
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise OverflowError(f"layer {layer.name}: int32 accumulator overflow (range {acc.min()}..{acc.max()})")
    return acc


def _windows(x: np.ndarray, kernel, stride) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H_out, W_out, kh, kw) views of every window."""
    win = sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return win[:, :, ::stride[0], ::stride[1]]


def _dot_dtype(terms: int):
    """int32 sums are exact while terms * 255 * 128 < 2^31: |x - z| <= 255 and |w| <= 128 (a
    hand-built model may hold -128 weights even though the converter never makes them)."""
    return np.int32 if terms * 255 * 128 < 2**31 else np.int64


def conv2d_acc(x_q: np.ndarray, layer: Layer, input_zero_point: int) -> np.ndarray:
    """int64 accumulators (N, C_out, H_out, W_out) of an int8 convolution, bias included."""
    w = layer.arrays["weight"]                                       # (C_out, C_in/g, kh, kw)
    c_out, c_in_g, kh, kw = w.shape
    ph, pw = layer.attrs["padding"]
    dtype = _dot_dtype(c_in_g * kh * kw)
    x = x_q.astype(dtype) - dtype(input_zero_point)                  # (N, C_in, H, W), real zero is 0
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = _windows(x, (kh, kw), layer.attrs["stride"])               # (N, C_in, Ho, Wo, kh, kw)
    n, c_in, ho, wo = win.shape[:4]
    groups = layer.attrs["groups"]
    if groups == c_in == c_out:                                      # depthwise: one filter per channel
        acc = np.einsum("nchwij,cij->nchw", win, w[:, 0].astype(dtype))
    else:                                                            # im2col, then one matmul per group
        c_out_g = c_out // groups
        parts = []
        for g in range(groups):
            cols = win[:, g * c_in_g:(g + 1) * c_in_g].transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)
            w_g = w[g * c_out_g:(g + 1) * c_out_g].reshape(c_out_g, -1).astype(dtype)
            parts.append((cols @ w_g.T).reshape(n, ho, wo, c_out_g).transpose(0, 3, 1, 2))
        acc = np.concatenate(parts, axis=1)
    return acc.astype(np.int64) + layer.arrays["bias"].astype(np.int64)[None, :, None, None]


def _requantize_layer(acc, layer: Layer, output_zero_point: int, channel_axis_shape) -> np.ndarray:
    m0 = layer.arrays["multiplier"].reshape(channel_axis_shape)
    shift = layer.arrays["shift"].reshape(channel_axis_shape)
    return requantize(acc, m0, shift, output_zero_point, layer.attrs["act_min"], layer.attrs["act_max"])


def run_layer(layer: Layer, inputs: list, model: IntModel) -> np.ndarray:
    """Execute one layer on int8 batch arrays; returns the int8 output (N, *shape)."""
    z_in = model.tensor(layer.inputs[0]).zero_point
    z_out = model.tensor(layer.output).zero_point
    x = inputs[0]
    if layer.op == "conv2d":
        acc = _check_int32(conv2d_acc(x, layer, z_in), layer)
        return _requantize_layer(acc, layer, z_out, (1, -1, 1, 1))
    if layer.op == "linear":
        dtype = _dot_dtype(x.shape[1])
        acc = (x.astype(dtype) - dtype(z_in)) @ layer.arrays["weight"].astype(dtype).T
        acc = _check_int32(acc.astype(np.int64) + layer.arrays["bias"].astype(np.int64), layer)
        return _requantize_layer(acc, layer, z_out, (1, -1))
    if layer.op == "avgpool":
        win = _windows(x.astype(np.int64), layer.attrs["kernel"], layer.attrs["stride"])
        total = win.sum(axis=(-2, -1))
        count = win.shape[-1] * win.shape[-2]
        nudged = total + np.where(total > 0, count // 2, -(count // 2))
        rounded = np.where(nudged >= 0, nudged // count, -((-nudged) // count))  # C division truncates
        return np.clip(rounded, -128, 127).astype(np.int8)
    if layer.op == "maxpool":
        return _windows(x, layer.attrs["kernel"], layer.attrs["stride"]).max(axis=(-2, -1)).astype(np.int8)
    if layer.op == "add":
        a = layer.attrs
        z_b = model.tensor(layer.inputs[1]).zero_point
        shifted_a = (x.astype(np.int64) - z_in) << a["left_shift"]
        shifted_b = (inputs[1].astype(np.int64) - z_b) << a["left_shift"]
        total = (multiply_by_quantized_multiplier(shifted_a, a["multiplier_a"], a["shift_a"]).astype(np.int64)
                 + multiply_by_quantized_multiplier(shifted_b, a["multiplier_b"], a["shift_b"]))
        return requantize(total, a["multiplier_out"], a["shift_out"], z_out, a["act_min"], a["act_max"])
    if layer.op == "flatten":
        return x.reshape(len(x), -1)
    raise ValueError(f"layer {layer.name}: the interpreter has no op {layer.op!r}")


def run(model: IntModel, x_q: np.ndarray, return_all: bool = False):
    """Run the model on int8 inputs (N, *input shape); returns int8 outputs (N, *output shape).

    With `return_all`, returns a dict of every tensor by name (for layer-by-layer debugging).
    """
    x_q = np.asarray(x_q)
    if x_q.dtype != np.int8:
        raise TypeError(f"the interpreter takes int8 inputs, got {x_q.dtype}; use quantize_input() first")
    expected = tuple(model.input_spec.shape)
    if tuple(x_q.shape[1:]) != expected:
        # The one shape accepted besides (N, *input shape): features without the model's channel
        # axis, (N, 49, 10) for a (1, 49, 10) input. Any other reshape (of a transposed (N, 10, 49),
        # say) would run and return confident nonsense.
        if expected[:1] == (1,) and tuple(x_q.shape[1:]) == expected[1:]:
            x_q = x_q[:, None]
        else:
            also = f" or (N, {', '.join(map(str, expected[1:]))})" if expected[:1] == (1,) else ""
            name = model.meta.get("name", "model")
            raise ValueError(f"{name}: the interpreter takes inputs shaped (N, "
                             f"{', '.join(map(str, expected))}){also}, got {x_q.shape}. A transposed "
                             "or flattened input must be put back in that order, not reshaped.")
    values = {model.input: x_q}
    for layer in model.layers:
        values[layer.output] = run_layer(layer, [values[n] for n in layer.inputs], model)
    return values if return_all else values[model.output]


def run_batched(model: IntModel, x_q: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """`run` in batches to bound memory; int8 outputs (N, *output shape)."""
    return np.concatenate([run(model, x_q[i:i + batch_size]) for i in range(0, len(x_q), batch_size)])


def quantize_input(model: IntModel, x: np.ndarray) -> np.ndarray:
    """Float inputs (e.g. MFCC features) -> int8 with the model's input scale and zero point."""
    spec = model.input_spec
    return quantize(x, spec.scale, spec.zero_point).astype(np.int8)


def predict(model: IntModel, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class predictions (N,) from float features: quantize, run in integers, argmax of int8 logits."""
    return run_batched(model, quantize_input(model, features), batch_size).argmax(axis=1)
