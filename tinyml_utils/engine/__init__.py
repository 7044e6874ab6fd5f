"""The inference engine: graph IR, memory planner, arena execution and C code generation.

Patch-based inference (chapter 10) is its own package, `tinyml_utils.patch`.
"""
