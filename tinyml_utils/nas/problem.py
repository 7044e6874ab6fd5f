"""The course's NAS problem, defined once: the limits, the candidate design spaces, the supernet.

Chapter 8 derives each choice and asserts it equals these; lab 8 and `prepare` use them directly,
so all three share one cached supernet instead of training their own.
"""
from __future__ import annotations

from functools import lru_cache

from ..config import at_size
from .costs import Constraints, macs
from .search import select_space
from .space import DesignSpace, design_space_grid, ds_cnn_s_arch

#: A small Cortex-M4 budget: 32 KB of SRAM for the feature buffer and the activation arena, 64 KB
#: of flash for the weights, and no more MACs than DS-CNN-S (a latency budget: no slower than it).
CONSTRAINTS = Constraints(sram_bytes=32 * 1024, flash_bytes=64 * 1024, macs=macs(ds_cnn_s_arch()))
SPACE_SAMPLES = 2000          # architectures drawn per design space for the CDF of MACs
SUPERNET_EPOCHS = (8, 2)      # (student, CI); two sub-networks per step (see estimate.get_supernet)


def candidate_spaces() -> list[DesignSpace]:
    """Four feature resolutions x four width multipliers."""
    return design_space_grid()


@lru_cache(maxsize=1)
def chosen_space() -> DesignSpace:
    """The design space TinyNAS picks for `CONSTRAINTS` (highest median MACs of feasible models).

    Computed once per process (a few seconds: 16 spaces x 2,000 draws)."""
    return select_space(candidate_spaces(), CONSTRAINTS, samples=SPACE_SAMPLES, seed=0)[0]


def kws_supernet(source: str | None = None, progress: bool = True):
    """(space, supernet, info): the chosen space's supernet, trained once at this run size and cached."""
    from .estimate import get_supernet

    space = chosen_space()
    supernet, info = get_supernet(space, CONSTRAINTS, epochs=at_size(*SUPERNET_EPOCHS), source=source,
                                  progress=progress)
    return space, supernet, info
