"""Patch-based inference (MCUNetV2), part 2: run a stage patch by patch, bit for bit.

Each patch of the stage's output is computed from the regions `regions.required_regions` gives:
the layer reads its input's region (own share plus halo) and is run with the integer interpreter
(`quant.interpreter.run_layer`) on an explicitly padded slice and zero padding of its own.
Zero-point padding is added only where the region leaves the image, exactly where whole-tensor
execution pads, so the arithmetic per output element is the specification's and the result is bit
for bit that of whole-tensor execution. Only one patch's intermediate tensors are alive at a time;
the stage's output is assembled in one full buffer, and the rest of the model runs layer by layer.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..quant import interpreter
from ..quant.intmodel import IntModel
from .regions import check_cut, clip, input_region, patch_grid, required_regions


def _sub(array: np.ndarray, region, origin) -> np.ndarray:
    """The part `region` of an (N, C, h, w) array that holds `origin` (a region) of its tensor."""
    y0, y1, x0, x1 = region
    return array[:, :, y0 - origin[0]:y1 - origin[0], x0 - origin[2]:x1 - origin[2]]


def run_patch(model: IntModel, cut: int, x_q: np.ndarray, out_region) -> np.ndarray:
    """One patch of the stage output, int8 (N, C, h, w), computed from the needed input region only."""
    regions = required_regions(model, cut, out_region)
    patches = {model.input: _sub(x_q, regions[model.input], (0, 0, 0, 0))}
    for layer in model.layers[:cut]:
        want = regions[layer.output]
        if layer.op == "add":  # elementwise: both inputs cut to the output region
            ins = [_sub(patches[n], want, regions[n]) for n in layer.inputs]
            patches[layer.output] = interpreter.run_layer(layer, ins, model)
            continue
        name = layer.inputs[0]
        shape = model.tensor(name).shape
        need = input_region(layer, want)              # may reach into the padding
        have = clip(need, shape)                      # real pixels: own share + halo
        src = _sub(patches[name], have, regions[name])
        pad = ((0, 0), (0, 0), (have[0] - need[0], need[1] - have[1]), (have[2] - need[2], need[3] - have[3]))
        if layer.op == "conv2d":                      # zero point = real 0, only at the image border
            src = np.pad(src, pad, constant_values=model.tensor(name).zero_point)
            layer = dataclasses.replace(layer, attrs={**layer.attrs, "padding": (0, 0)})
        elif any(p for pair in pad for p in pair):
            raise AssertionError(f"layer {layer.name}: pooling without padding cannot read outside its input")
        out = interpreter.run_layer(layer, [src], model)
        assert out.shape[2:] == (want[1] - want[0], want[3] - want[2]), (layer.name, out.shape, want)
        patches[layer.output] = out
    return patches[model.layers[cut - 1].output]


def run_stage(model: IntModel, cut: int, x_q: np.ndarray, rows: int, cols: int, progress=None) -> np.ndarray:
    """The stage's output, int8 (N, C, H, W), assembled patch by patch over a rows x cols grid.

    `progress` (e.g. `tqdm.auto.tqdm`) wraps the loop over patches.
    """
    x_q = _check_input(model, x_q)
    output = check_cut(model, cut)
    out = np.empty((len(x_q), *model.tensor(output).shape), dtype=np.int8)
    grid = patch_grid(model.tensor(output).shape, rows, cols)
    for region in (progress(grid) if progress else grid):
        y0, y1, x0, x1 = region
        out[:, :, y0:y1, x0:x1] = run_patch(model, cut, x_q, region)
    return out


def run_patched(model: IntModel, cut: int, x_q: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The model's output, int8 (N, *output shape): stage patch by patch, the rest layer by layer."""
    x_q = _check_input(model, x_q)
    values = {model.layers[cut - 1].output: run_stage(model, cut, x_q, rows, cols)}
    for layer in model.layers[cut:]:
        values[layer.output] = interpreter.run_layer(layer, [values[n] for n in layer.inputs], model)
    return values[model.output]


def _check_input(model: IntModel, x_q: np.ndarray) -> np.ndarray:
    x_q = np.asarray(x_q)
    if x_q.dtype != np.int8:
        raise TypeError(f"patch execution takes int8 inputs, got {x_q.dtype}; use quantize_input() first")
    shape = tuple(model.input_spec.shape)
    if len(shape) != 3:
        raise ValueError(f"patch-based inference needs a (C, H, W) model input, got shape {shape}")
    if x_q.shape[1:] != shape:
        if int(np.prod(x_q.shape[1:])) != int(np.prod(shape)):
            raise ValueError(f"input shape {x_q.shape[1:]} does not match the model's {shape}")
        x_q = x_q.reshape(len(x_q), *shape)  # e.g. (N, 49, 10) features for a (1, 49, 10) input
    return x_q
