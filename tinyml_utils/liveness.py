"""Which tensors are alive at each step of a schedule, and how many bytes that is: the one rule.

Chapters 1, 7, 8, 9 and 10 all count activation memory the same way. A schedule runs its steps
one after another; each step reads some buffers and may write one new buffer. Then

* a buffer is *born* at the step that writes it; buffers that exist before the first step (the
  model's input) are born at a step the caller chooses (0, or -1 for "before everything");
* it *dies* after the last step that reads it; buffers the caller reads after the schedule (the
  model's output, a resident feature buffer) are *kept* up to a step the caller chooses;
* a buffer that nothing reads dies at the step that wrote it;
* while a step runs, every buffer alive at it counts: its inputs, its output, and buffers kept
  for later steps (a residual block's input waiting for the `add`).

A step that writes *no* new buffer (a flatten that relabels, ReLU folded into the store, an
in-place operator) is the caller's business: it maps that tensor to the buffer it shares and
names the buffer in later reads, so sizes and lifetimes stay per buffer.

`chain_step_bytes` is the same rule for a plain chain of layers, where each step's input was
written by the step before and is read by nobody after: alive = input + output, nothing else.
Callers: `profiler`, `activation_memory`, `nas.costs`, `patch.cost`, `engine.planner`.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence


def lifetimes(steps: Sequence[tuple[Iterable[Hashable], Hashable | None]], initial: Iterable[Hashable] = (),
              born: int = 0, keep: Iterable[Hashable] = (), kept_until: float = 0) -> dict[Hashable, tuple[int, float]]:
    """(birth step, last step) of every buffer, in order of birth (initial buffers first).

    `steps[i]` is (buffers step i reads, buffer it writes or None). `initial` buffers exist before
    step 0 and are born at `born`; `keep` buffers live to `kept_until` (e.g. the last step, or
    `float('inf')`) whatever reads them.
    """
    birth, last = {name: born for name in initial}, {}
    for step, (reads, writes) in enumerate(steps):
        for name in reads:
            last[name] = max(last.get(name, step), step)
        if writes is not None:
            birth[writes] = step
    for name in keep:
        last[name] = kept_until
    return {name: (first, last.get(name, first)) for name, first in birth.items()}


def alive(ranges: dict[Hashable, tuple[int, float]], step: int) -> list[Hashable]:
    """Buffers alive while `step` runs, in the order of `ranges`."""
    return [name for name, (first, last) in ranges.items() if first <= step <= last]


def bytes_alive(ranges: dict[Hashable, tuple[int, float]], size: dict[Hashable, int], num_steps: int) -> list[int]:
    """Bytes alive at each of steps 0 .. num_steps - 1: the sum of `size` over the buffers alive."""
    return [sum(size[name] for name in alive(ranges, step)) for step in range(num_steps)]


def chain_step_bytes(input_bytes: int, output_bytes: int) -> int:
    """Bytes alive while one layer of a chain runs: its input (which dies here) and its output."""
    return input_bytes + output_bytes
