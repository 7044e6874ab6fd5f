"""Random small integer models for differential testing against the interpreter (test and demo support).

`random_intmodel(rng)` draws a valid `IntModel` straight from the specification, without
PyTorch: a chain of 1-6 layers over a small map with random shapes, kernels, strides, paddings,
groups, per-tensor scales and zero points, fused clamps, residual adds (two inputs with their own
scales), pooling, flatten and linear layers. Requantization multipliers are chosen so outputs
spread over the int8 range instead of saturating, with some >= 0.5 (the left-shift path) and some
biases large enough that the optimised kernels must decline the layer.

Used by the engine's tests, lab 9's checks and chapters 9 and 11, which show differential testing.
"""
from __future__ import annotations

import numpy as np

from ..quant.fixedpoint import quantize_multiplier
from ..quant.intmodel import IntModel, Layer, TensorSpec


def _scale(rng) -> float:
    return float(np.float32(2.0 ** rng.uniform(-8, 1)))


class _Builder:
    def __init__(self, rng, name):
        self.rng, self.name = rng, name
        self.tensors, self.layers = {}, []

    def tensor(self, shape, like: TensorSpec | None = None) -> str:
        name = f"t{len(self.tensors)}"
        scale, zp = (like.scale, like.zero_point) if like else (_scale(self.rng), int(self.rng.integers(-128, 128)))
        self.tensors[name] = TensorSpec(name, tuple(int(s) for s in shape), scale, zp)
        return name

    def clamp(self, out: str) -> tuple[int, int]:
        zp, r = self.tensors[out].zero_point, self.rng.random()
        if r < 0.4:
            return -128, 127
        if r < 0.8:
            return max(-128, zp), 127                             # ReLU
        return max(-128, zp), int(self.rng.integers(max(-128, zp), 128))  # ReLU6-like upper bound

    def requant(self, k: int, x: str, c_out: int):
        """Per-channel (m0, shift) that map accumulators of K terms onto about +-64 output steps."""
        rng, spread = self.rng, 64.0 / (np.sqrt(k) * 60.0 * 60.0 + 1.0)
        m = spread * 2.0 ** rng.uniform(-2, 2, c_out)
        if rng.random() < 0.1:
            m = 2.0 ** rng.uniform(-1, 2, c_out)                  # multipliers >= 0.5: left shifts
        pairs = [quantize_multiplier(float(v)) for v in m]
        return (np.array([p[0] for p in pairs], np.int32), np.array([p[1] for p in pairs], np.int32))

    def weights(self, shape, k: int, c_out: int, x: str):
        rng = self.rng
        w = rng.integers(-128 if rng.random() < 0.3 else -127, 128, shape).astype(np.int8)
        bias = rng.integers(-2**12, 2**12, c_out)
        if rng.random() < 0.05:       # near 2^30: too large for the optimised kernels' proof
            bias = rng.choice([-1, 1], c_out) * rng.integers(2**30 - 2**22, 2**30, c_out)
        bias = bias.astype(np.int32)
        m0, shift = self.requant(k, x, c_out)
        return {"weight": w, "bias": bias, "multiplier": m0, "shift": shift}

    def conv(self, x: str) -> str:
        rng = self.rng
        c, h, w = self.tensors[x].shape
        kind = rng.choice(["full", "depthwise", "pointwise", "grouped"], p=[0.35, 0.3, 0.25, 0.1])
        if kind == "pointwise":
            kh = kw = 1
            (sh, sw), (ph, pw) = (1, 1), (0, 0)
        else:
            ph, pw = int(rng.integers(0, 3)), int(rng.integers(0, 3))
            kh, kw = int(rng.integers(1, min(5, h + 2 * ph) + 1)), int(rng.integers(1, min(5, w + 2 * pw) + 1))
            sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            if kind == "depthwise" and rng.random() < 0.5:        # the shape-keeping case (in place)
                kh = kw = 3
                sh = sw = ph = pw = 1
        groups, c_out = 1, int(rng.integers(1, 10))
        if kind == "depthwise":
            groups = c_out = c
        elif kind == "grouped":
            groups = int(rng.choice([g for g in range(1, c + 1) if c % g == 0]))
            c_out = groups * int(rng.integers(1, 4))
        if kind == "pointwise" and rng.random() < 0.5:
            c_out = c                                             # C_in == C_out: in-place pointwise
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        out = self.tensor((c_out, ho, wo))
        act_min, act_max = self.clamp(out)
        arrays = self.weights((c_out, c // groups, kh, kw), c // groups * kh * kw, c_out, x)
        attrs = {"stride": (sh, sw), "padding": (ph, pw), "groups": groups, "act_min": act_min, "act_max": act_max}
        self.layers.append(Layer("conv2d", f"conv{len(self.layers)}", [x], out, attrs, arrays))
        return out

    def pool(self, x: str) -> str:
        rng = self.rng
        c, h, w = self.tensors[x].shape
        op = "avgpool" if rng.random() < 0.6 else "maxpool"
        if rng.random() < 0.4:
            (kh, kw), (sh, sw) = (h, w), (1, 1)                   # global pooling
        else:
            kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
            sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        out = self.tensor((c, (h - kh) // sh + 1, (w - kw) // sw + 1), like=self.tensors[x])
        self.layers.append(Layer(op, f"pool{len(self.layers)}", [x], out, {"kernel": (kh, kw), "stride": (sh, sw)}))
        return out

    def add(self, a: str, b: str) -> str:
        out = self.tensor(self.tensors[a].shape)
        s_a, s_b, s_out = (self.tensors[t].scale for t in (a, b, out))
        twice_max, left_shift = 2 * max(s_a, s_b), 20             # TFLite's int8 add, as quant.convert
        m_a, sh_a = quantize_multiplier(s_a / twice_max)
        m_b, sh_b = quantize_multiplier(s_b / twice_max)
        m_out, sh_out = quantize_multiplier(twice_max / ((1 << left_shift) * s_out))
        act_min, act_max = self.clamp(out)
        attrs = dict(left_shift=left_shift, multiplier_a=m_a, shift_a=sh_a, multiplier_b=m_b, shift_b=sh_b,
                     multiplier_out=m_out, shift_out=sh_out, act_min=act_min, act_max=act_max)
        self.layers.append(Layer("add", f"add{len(self.layers)}", [a, b], out, attrs))
        return out

    def residual(self, x: str) -> str:
        """x + conv(x) with a shape-keeping convolution (a skip connection)."""
        rng = self.rng
        c, h, w = self.tensors[x].shape
        k = int(rng.choice([1, 3]))
        groups = c if rng.random() < 0.5 else 1
        branch = self.tensor((c, h, w))
        act_min, act_max = self.clamp(branch)
        arrays = self.weights((c, c // groups, k, k), c // groups * k * k, c, x)
        attrs = {"stride": (1, 1), "padding": (k // 2, k // 2), "groups": groups, "act_min": act_min, "act_max": act_max}
        self.layers.append(Layer("conv2d", f"branch{len(self.layers)}", [x], branch, attrs, arrays))
        return self.add(x, branch) if rng.random() < 0.5 else self.add(branch, x)

    def linear(self, x: str) -> str:
        (c_in,), c_out = self.tensors[x].shape, int(self.rng.integers(1, 13))
        out = self.tensor((c_out,))
        act_min, act_max = self.clamp(out)
        arrays = self.weights((c_out, c_in), c_in, c_out, x)
        self.layers.append(Layer("linear", f"fc{len(self.layers)}", [x], out,
                                 {"act_min": act_min, "act_max": act_max}, arrays))
        return out

    def flatten(self, x: str) -> str:
        out = self.tensor((int(np.prod(self.tensors[x].shape)),), like=self.tensors[x])
        self.layers.append(Layer("flatten", f"flatten{len(self.layers)}", [x], out))
        return out


def random_intmodel(rng: np.random.Generator, name: str = "random") -> IntModel:
    """A random valid IntModel: input (C, H, W) with C <= 8, H, W <= 9 (or a vector), 1-6 layers."""
    b = _Builder(rng, name)
    if rng.random() < 0.1:
        x = b.tensor((int(rng.integers(1, 40)),))
    else:
        x = b.tensor((int(rng.integers(1, 9)), int(rng.integers(1, 10)), int(rng.integers(1, 10))))
    first = x
    for _ in range(int(rng.integers(1, 7))):
        if len(b.tensors[x].shape) == 1:
            x = b.linear(x)
            continue
        r = rng.random()
        x = (b.conv(x) if r < 0.55 else b.residual(x) if r < 0.7 else b.pool(x) if r < 0.85 else b.flatten(x))
    if rng.random() < 0.3 and len(b.tensors[x].shape) == 3:
        x = b.linear(b.flatten(x))
    if not b.layers:
        x = b.linear(x) if len(b.tensors[x].shape) == 1 else b.conv(x)
    model = IntModel(b.tensors, b.layers, first, x, {"name": name})
    model.validate()
    return model


def random_inputs(model: IntModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random int8 inputs (n, *input shape) in NCHW, as the interpreter takes them."""
    return rng.integers(-128, 128, (n, *model.input_spec.shape)).astype(np.int8)
