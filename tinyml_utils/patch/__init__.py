"""Patch-based inference (MCUNetV2, chapter 10): run a model's first stage one spatial patch at a time.

Cut the model after its first `cut` layers (the *stage*), split the stage's output map into a grid
of patches, and compute each patch from just the region of every stage tensor it needs (its share
plus a halo): only one patch's intermediate tensors are alive at a time, at the price of
recomputing the halos. It works on the integer model (`quant.intmodel.IntModel`), with the
integer interpreter's arithmetic, so it is independent of the C engine of chapters 9 and 11.

* `regions`: stage cuts, receptive fields, the region of every tensor one output patch needs;
* `execute`: running a patch, a stage and the whole model patch by patch, bit-exact;
* `cost`: peak SRAM and MACs of layer-by-layer and patch-based execution (`cost.plan`, `cost.sweep`).

The functions of `regions` and `execute` are available here too: `patch.stage_cuts`,
`patch.run_stage`, ...
"""
from . import cost, execute, regions
from .execute import run_patch, run_patched, run_stage
from .regions import (SPATIAL_OPS, area, check_cut, clip, geometry, input_region, input_rows, patch_grid,
                      receptive_field, required_regions, split, stage_cuts, union)

__all__ = ["cost", "execute", "regions", "run_patch", "run_patched", "run_stage", "SPATIAL_OPS", "area",
           "check_cut", "clip", "geometry", "input_region", "input_rows", "patch_grid", "receptive_field",
           "required_regions", "split", "stage_cuts", "union"]
