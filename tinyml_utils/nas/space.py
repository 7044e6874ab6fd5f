"""The search space: a family of DS-CNN keyword spotters described by a few genes.

An architecture (`Arch`) is a plain, hashable value: the feature resolution it reads, the width
of every layer, the first convolution's kernel and stride and the depthwise kernel. `build()`
turns it into the course's `models.DSCNN`, so the profiler, the trainer and later the quantizer
and code generator see an ordinary model.

A design space (`DesignSpace`) fixes the feature resolution and a width multiplier and lists the
choices for the other genes. TinyNAS first picks the best design space, then searches inside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..mfcc import NUM_FRAMES, NUM_MFCC
from ..models import DSCNN

FULL_RESOLUTION = (NUM_FRAMES, NUM_MFCC)  # (49 frames, 10 coefficients): what the front end computes


def time_step_for(frames: int) -> int:
    """The frame subsampling step that turns 49 frames into `frames` (1 -> 49, 2 -> 25, 3 -> 17)."""
    for step in range(1, NUM_FRAMES + 1):
        if len(range(0, NUM_FRAMES, step)) == frames:
            return step
    raise ValueError(f"{frames} frames cannot be made by keeping every k-th of {NUM_FRAMES} frames; "
                     f"use one of {sorted({len(range(0, NUM_FRAMES, s)) for s in range(1, 6)}, reverse=True)}")


def feature_view(X: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """Features (N, 49, 10) -> (N, frames, coeffs): every k-th frame, the first `coeffs` MFCCs.

    Keeping every second frame is the same as a front end with a 40 ms instead of a 20 ms hop, and
    the first coefficients are the ones a front end with fewer DCT outputs would compute.
    """
    frames, coeffs = resolution
    if X.ndim != 3 or X.shape[1:] != FULL_RESOLUTION:
        raise ValueError(f"expected features shaped (N, {NUM_FRAMES}, {NUM_MFCC}) from kws_features, got {X.shape}")
    if not 1 <= coeffs <= NUM_MFCC:
        raise ValueError(f"coeffs must be between 1 and {NUM_MFCC}, got {coeffs}")
    return np.ascontiguousarray(X[:, ::time_step_for(frames), :coeffs])


@dataclass(frozen=True)
class Arch:
    """One DS-CNN: `channels[0]` is the first convolution's width, each further entry one block."""
    resolution: tuple[int, int]     # (frames, coeffs) of the input features
    channels: tuple[int, ...]       # (C_conv1, C_block1, ..., C_blockD)
    first_kernel: tuple[int, int]   # (k_time, k_freq) of the first convolution
    first_stride: tuple[int, int]   # (s_time, s_freq) of the first convolution
    dw_kernel: int                  # k of every k x k depthwise convolution

    def __post_init__(self):
        if len(self.channels) < 1 or self.dw_kernel % 2 != 1:
            raise ValueError(f"an Arch needs at least one width and an odd depthwise kernel (the map size "
                             f"must not change), got channels={self.channels}, dw_kernel={self.dw_kernel}")

    @property
    def depth(self) -> int:
        """Number of depthwise-separable blocks."""
        return len(self.channels) - 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) = (1, frames, coeffs), as `models.DSCNN` expects."""
        return (1, *self.resolution)

    def build(self) -> DSCNN:
        """The architecture as an untrained `models.DSCNN`."""
        return DSCNN(channels=self.channels, first_kernel=self.first_kernel, first_stride=self.first_stride,
                     dw_kernel=self.dw_kernel, input_shape=self.input_shape)

    def short(self) -> str:
        """A compact one-line label, e.g. '49x10 k10x4 s2x2 dw3 [64,64,64,64,64]'."""
        f, c = self.resolution
        return (f"{f}x{c} k{self.first_kernel[0]}x{self.first_kernel[1]} s{self.first_stride[0]}x"
                f"{self.first_stride[1]} dw{self.dw_kernel} [{','.join(map(str, self.channels))}]")


def ds_cnn_s_arch() -> Arch:
    """DS-CNN-S of MLPerf Tiny as an `Arch` (full resolution, 64 channels, four blocks)."""
    return Arch(FULL_RESOLUTION, (64,) * 5, (10, 4), (2, 2), 3)


def round_width(width: float, divisor: int = 8) -> int:
    """Round a width to a multiple of `divisor` (at least `divisor`): SIMD kernels like multiples of 4 or 8."""
    return max(divisor, int(round(width / divisor)) * divisor)


@dataclass(frozen=True)
class DesignSpace:
    """A design space: a feature resolution, a width multiplier and the choices of every other gene."""
    resolution: tuple[int, int] = FULL_RESOLUTION
    width_mult: float = 1.0
    base_widths: tuple[int, ...] = (16, 32, 48, 64)
    depths: tuple[int, ...] = (2, 3, 4, 5)
    first_kernels: tuple[tuple[int, int], ...] = ((10, 4), (6, 4), (3, 3))
    first_strides: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (2, 1), (2, 2))
    dw_kernels: tuple[int, ...] = (3, 5)
    name: str = field(default="", compare=False)

    def __post_init__(self):
        time_step_for(self.resolution[0])  # fails early on a resolution the front end cannot give
        if not self.name:
            object.__setattr__(self, "name", f"r{self.resolution[0]}x{self.resolution[1]}-w{self.width_mult:g}")

    @property
    def widths(self) -> tuple[int, ...]:
        """The width choices of every layer: the base widths times the multiplier, rounded to 8."""
        return tuple(sorted({round_width(self.width_mult * w) for w in self.base_widths}))

    @property
    def max_kernel(self) -> tuple[int, int]:
        """The smallest kernel that contains every first-kernel choice (the supernet's kernel)."""
        return (max(k[0] for k in self.first_kernels), max(k[1] for k in self.first_kernels))

    def size(self) -> int:
        """Number of distinct architectures in the space."""
        widths = sum(len(self.widths) ** (d + 1) for d in self.depths)
        return widths * len(self.first_kernels) * len(self.first_strides) * len(self.dw_kernels)

    def sample(self, rng: np.random.Generator) -> Arch:
        """One architecture drawn uniformly gene by gene (depth first, then one width per layer)."""
        depth = int(rng.choice(self.depths))
        return Arch(self.resolution,
                    tuple(int(w) for w in rng.choice(self.widths, size=depth + 1)),
                    self.first_kernels[rng.integers(len(self.first_kernels))],
                    self.first_strides[rng.integers(len(self.first_strides))],
                    int(rng.choice(self.dw_kernels)))

    def __contains__(self, arch: Arch) -> bool:
        return (arch.resolution == self.resolution and arch.depth in self.depths
                and all(c in self.widths for c in arch.channels) and arch.first_kernel in self.first_kernels
                and arch.first_stride in self.first_strides and arch.dw_kernel in self.dw_kernels)

    def largest(self) -> Arch:
        """The architecture with every gene at its largest (widest, deepest, biggest kernels, stride 1)."""
        return Arch(self.resolution, (max(self.widths),) * (max(self.depths) + 1),
                    max(self.first_kernels, key=lambda k: k[0] * k[1]),
                    min(self.first_strides, key=lambda s: s[0] * s[1]), max(self.dw_kernels))


def design_space_grid(resolutions=((49, 10), (25, 10), (49, 6), (25, 6)),
                      width_mults=(0.5, 1.0, 1.5, 2.0)) -> list[DesignSpace]:
    """The candidate design spaces TinyNAS chooses from: every resolution with every width multiplier."""
    return [DesignSpace(resolution=tuple(r), width_mult=float(w)) for r in resolutions for w in width_mults]
