"""Automatic checks for the labs: each lab's exercises are checked by a module here (`lab01`, ...).

A check calls the student's function on cases with known answers (computed by the package or by
PyTorch) and either prints a clear pass line or raises `CheckFailed` saying what was expected.
"""
from __future__ import annotations

import math


class CheckFailed(AssertionError):
    """A lab check that did not pass; the message says what was expected and what came back."""


def passed(message: str) -> None:
    """Print the pass line of a check."""
    print(f"PASSED: {message}")


def expect_equal(what: str, got, expected) -> None:
    """Fail with a readable message unless `got == expected`."""
    if got != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {got!r}")


def expect_close(what: str, got, expected, rel: float = 1e-6, abs_: float = 0.0) -> None:
    """Fail unless `got` is within `rel` (relative) or `abs_` (absolute) of `expected`."""
    try:
        got_f = float(got)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what}: expected a number close to {expected!r}, got {got!r}") from None
    # NaN compares False with everything, so the tolerance test below would let it pass.
    if math.isnan(got_f):
        raise CheckFailed(f"{what}: got NaN, expected a number close to {expected!r}. Look for a 0/0, "
                          "a log or sqrt of a negative number, or an empty mean in your code.")
    if math.isinf(got_f) and got_f != expected:
        raise CheckFailed(f"{what}: got {got_f} (infinite), expected a number close to {expected!r}")
    if abs(got_f - expected) > max(abs_, rel * abs(expected)):
        raise CheckFailed(f"{what}: expected {expected!r} (tolerance rel={rel}, abs={abs_}), got {got!r}")
