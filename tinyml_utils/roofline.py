"""A roofline for a Cortex-M4-class microcontroller: is a layer limited by its MACs or by its bytes?

A layer that does `macs` multiply-accumulates and moves `bytes` to or from memory needs at least
max(macs / peak_macs_per_cycle, bytes / bytes_per_cycle) cycles. Its arithmetic intensity
I = macs / bytes (MACs per byte) decides which term wins: below the ridge point
I* = peak_macs_per_cycle / bytes_per_cycle the memory is the limit, above it the multiplier is.

On a microcontroller the activations live in SRAM and the int8 weights (with int32 biases) in flash,
each with its own speed; one load/store unit serves both, so their times add. The traffic counted
here is the compulsory one: every weight, input and output byte moved once (ideal reuse).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from . import profiler


@dataclass(frozen=True)
class MCU:
    """The few numbers a roofline needs: clock, peak int8 MACs per cycle, bytes per cycle from each memory."""
    name: str
    clock_hz: float
    macs_per_cycle: float
    sram_bytes_per_cycle: float
    flash_bytes_per_cycle: float
    assumptions: dict = field(default_factory=dict, compare=False)

    def ridge(self, memory: str = "sram") -> float:
        """MACs per byte above which a layer is compute-bound when all its bytes come from `memory`."""
        return self.macs_per_cycle / self.bytes_per_cycle(memory)

    def bytes_per_cycle(self, memory: str) -> float:
        if memory not in ("sram", "flash"):
            raise ValueError(f"memory must be 'sram' or 'flash', got {memory!r}")
        return self.sram_bytes_per_cycle if memory == "sram" else self.flash_bytes_per_cycle

    def attainable(self, intensity: float, memory: str = "sram") -> float:
        """Roofline: MACs per cycle reachable at `intensity` MACs per byte, min(peak, intensity * bandwidth)."""
        return min(self.macs_per_cycle, intensity * self.bytes_per_cycle(memory))


STM32F411 = MCU(
    name="STM32F411 (Cortex-M4F at 100 MHz)",
    clock_hz=100e6,
    # SMLAD multiplies two pairs of 16-bit values and adds both products in one cycle.
    macs_per_cycle=2.0,
    # A 32-bit bus with zero wait states; back-to-back loads pipeline to one cycle each.
    sram_bytes_per_cycle=4.0,
    # A 128-bit flash line costs 1 + 3 wait-state cycles at 100 MHz; the other three words of the line
    # then come from the D-Code cache in a cycle each: 16 bytes per 7 cycles (our estimate).
    flash_bytes_per_cycle=16 / 7,
    assumptions={
        "peak 2 MACs/cycle": "SMLAD (dual 16x16 multiply-accumulate) takes 1 cycle: Arm Cortex-M4 Technical "
                             "Reference Manual (ARM DDI 0439), 'Cortex-M4 instructions'. int8 values must be "
                             "widened to 16 bits first (SXTB16), so real kernels stay below this roof.",
        "1 MAC/cycle without SIMD": "MLA (32-bit multiply-accumulate) takes 1 cycle: same table.",
        "SRAM 4 B/cycle": "LDR moves 4 bytes; a run of LDRs pipelines to 1 cycle each (ARM DDI 0439, "
                          "'Load/store timings'); STM32F411 SRAM has no wait states (RM0383, section 2).",
        "flash 16 B / 7 cycles": "RM0383 (STM32F411 reference manual), section 3: 128-bit flash lines, 8 D-Code "
                                 "cache lines, 3 wait states at 90-100 MHz (2.7-3.6 V). A miss costs 4 cycles, "
                                 "then 3 hits of 1 cycle: our estimate of a sequential weight stream.",
    })


def layer_traffic(model: nn.Module, input_shape=(49, 10), weight_bits: int = 8, act_bytes: int = 1):
    """Per conv/linear layer (pandas DataFrame): MACs, SRAM bytes (input + output activations), flash bytes
    (weights at `weight_bits` + one int32 bias per output channel) and intensity = MACs / all bytes."""
    import pandas as pd

    modules = dict(model.named_modules())
    rows = []
    for r in profiler.profile(model, input_shape):
        module = modules[r.name]
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        out_channels = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        flash = (module.weight.numel() * weight_bits + 7) // 8 + 4 * out_channels
        sram = (r.input_elements + r.output_elements) * act_bytes
        kind = r.kind
        if isinstance(module, nn.Conv2d):
            kind = ("depthwise" if module.groups == module.in_channels > 1 else
                    "pointwise" if module.kernel_size == (1, 1) else "standard")
        rows.append({"layer": r.name, "kind": kind, "MACs": r.macs, "SRAM bytes": sram, "flash bytes": flash,
                     "intensity": r.macs / (sram + flash)})
    return pd.DataFrame(rows).set_index("layer")


def cycles_lower_bound(macs: float, sram_bytes: float, flash_bytes: float, mcu: MCU = STM32F411) -> float:
    """Fewest cycles a layer can take: max(compute time, memory time), where the memory time adds SRAM and flash."""
    memory = sram_bytes / mcu.sram_bytes_per_cycle + flash_bytes / mcu.flash_bytes_per_cycle
    return max(macs / mcu.macs_per_cycle, memory)
