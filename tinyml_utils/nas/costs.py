"""Analytic cost models of an `Arch`: MACs, peak SRAM and flash at int8, without building a model.

A search evaluates the constraints of tens of thousands of candidates, so the costs come from the
layer formulas of chapter 1 instead of a profiler pass (microseconds instead of milliseconds): the
course's MAC formula (`tinyml_utils.macs`) and liveness rule (`tinyml_utils.liveness`) applied to
the layer list of an `Arch`. They are defined to equal `tinyml_utils.profiler` exactly; the tests
and chapter 8 check that.

SRAM is counted for a streaming keyword spotter: the front end keeps the feature buffer
(frames x coeffs int8 values) alive across inferences and only shifts new frames in, so the buffer
is resident for the whole inference; on top of it, the activation arena holds the largest input +
output pair of the layers that run after the first convolution has read the features.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import liveness
from .. import macs as mac_formula
from ..models import NUM_CLASSES, same_padding
from .space import Arch

BIAS_BYTES = 4  # one int32 bias per output channel after batch norm is folded


@dataclass(frozen=True)
class Layer:
    """One layer that needs its own output buffer: sizes in elements, flash in bytes at int8."""
    name: str
    input_elements: int
    output_elements: int
    macs: int
    flash_bytes: int


def feature_map(arch: Arch) -> tuple[int, int]:
    """(H, W) of every feature map after the first convolution ('same' padding, as `models.DSCNN`)."""
    (frames, coeffs), (k_t, k_f), (s_t, s_f) = arch.resolution, arch.first_kernel, arch.first_stride
    pad_t, pad_f = same_padding(frames, k_t, s_t), same_padding(coeffs, k_f, s_f)
    # Symmetric 'same' padding can give one extra row with an even kernel at stride 1: use the
    # convolution formula itself rather than ceil(size / stride).
    return (frames + 2 * pad_t - k_t) // s_t + 1, (coeffs + 2 * pad_f - k_f) // s_f + 1


def layers(arch: Arch) -> list[Layer]:
    """The layers of `arch` that allocate a new tensor, in execution order (in-place BN/ReLU omitted)."""
    frames, coeffs = arch.resolution
    h, w = feature_map(arch)
    hw, k, c0 = h * w, arch.dw_kernel, arch.channels[0]
    out = [Layer("conv1", frames * coeffs, hw * c0, mac_formula.conv2d(hw * c0, 1, arch.first_kernel),
                 c0 * arch.first_kernel[0] * arch.first_kernel[1] + BIAS_BYTES * c0)]
    for i, (c_in, c_out) in enumerate(zip(arch.channels[:-1], arch.channels[1:]), start=1):
        # depthwise k x k keeps the map size (padding k // 2, odd k); pointwise 1 x 1 changes channels
        out.append(Layer(f"dw{i}", hw * c_in, hw * c_in, mac_formula.depthwise(hw * c_in, (k, k)),
                         c_in * k * k + BIAS_BYTES * c_in))
        out.append(Layer(f"pw{i}", hw * c_in, hw * c_out, mac_formula.pointwise(hw * c_out, c_in),
                         c_out * c_in + BIAS_BYTES * c_out))
    c_last = arch.channels[-1]
    out.append(Layer("pool", hw * c_last, c_last, 0, 0))
    out.append(Layer("fc", c_last, NUM_CLASSES, mac_formula.linear(NUM_CLASSES, c_last),
                     c_last * NUM_CLASSES + BIAS_BYTES * NUM_CLASSES))
    return out


def live_bytes(arch: Arch, features_resident: bool = False) -> list[int]:
    """Bytes alive at int8 while each layer of `layers(arch)` runs (a chain: each layer reads the last one's output).

    With `features_resident` the feature buffer stays alive for the whole inference (streaming).
    """
    return _live_bytes(layers(arch), features_resident)


def _live_bytes(chain: list[Layer], features_resident: bool) -> list[int]:
    names = ["features"] + [layer.name for layer in chain]
    size = {"features": chain[0].input_elements, **{layer.name: layer.output_elements for layer in chain}}
    steps = [((names[i],), names[i + 1]) for i in range(len(chain))]
    ranges = liveness.lifetimes(steps, initial=["features"], born=0,
                                keep=["features"] if features_resident else [], kept_until=len(chain) - 1)
    return liveness.bytes_alive(ranges, size, len(chain))


def macs(arch: Arch) -> int:
    """Multiply-accumulates per inference (the profiler's count)."""
    return sum(layer.macs for layer in layers(arch))


def flash_bytes(arch: Arch) -> int:
    """Bytes of int8 weights plus int32 biases (equals `profiler.deployed_bytes(model, 8)`)."""
    return sum(layer.flash_bytes for layer in layers(arch))


def peak_activation_bytes(arch: Arch) -> int:
    """Peak input + output bytes over layers at int8 (equals `profiler.peak_activation_bytes`)."""
    return max(live_bytes(arch))


def sram_bytes(arch: Arch) -> int:
    """Peak SRAM at int8 with the feature buffer resident: features + the largest arena need.

    The first convolution reads the features and writes its output; every later layer needs its
    input and output while the features stay in their buffer.
    """
    return max(live_bytes(arch, features_resident=True))


@dataclass(frozen=True)
class Costs:
    """The costs of one architecture: MACs per inference; bytes at int8."""
    macs: int
    sram_bytes: int
    flash_bytes: int
    peak_activation_bytes: int


def costs(arch: Arch) -> Costs:
    """All costs of `arch` from one walk over its layers (the same numbers as the functions above)."""
    chain = layers(arch)
    return Costs(sum(layer.macs for layer in chain), max(_live_bytes(chain, features_resident=True)),
                 sum(layer.flash_bytes for layer in chain), max(_live_bytes(chain, features_resident=False)))


@dataclass(frozen=True)
class Constraints:
    """Limits a deployable model must meet: SRAM and flash in bytes, MACs (a latency proxy) or None."""
    sram_bytes: int
    flash_bytes: int
    macs: int | None = None

    def violations(self, arch: Arch) -> dict[str, int]:
        """How far `arch` exceeds each limit it breaks, {cost name: excess}; empty when feasible."""
        c = costs(arch)
        limits = {"sram_bytes": self.sram_bytes, "flash_bytes": self.flash_bytes, "macs": self.macs}
        return {name: getattr(c, name) - limit for name, limit in limits.items()
                if limit is not None and getattr(c, name) > limit}

    def feasible(self, arch: Arch) -> bool:
        """True when `arch` meets every limit."""
        return not self.violations(arch)

    def describe(self) -> str:
        """A one-line description, e.g. 'SRAM <= 32 KB, flash <= 64 KB, MACs <= 2,656,768'."""
        text = f"SRAM <= {self.sram_bytes / 1024:g} KB, flash <= {self.flash_bytes / 1024:g} KB"
        return text + (f", MACs <= {self.macs:,}" if self.macs is not None else "")
