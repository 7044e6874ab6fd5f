"""Moved to `tinyml_utils.testing.random_graphs` (test and demo support, not part of the engine).

This alias only keeps existing imports working; delete it once they import the new path.
"""
from ..testing.random_graphs import random_inputs, random_intmodel  # noqa: F401
