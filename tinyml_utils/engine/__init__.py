"""The inference engine: graph IR, memory planner, patch-based inference and C code generation."""
