"""Debugging across the gap: compare the device's layer outputs with the integer reference.

The debug build of the firmware (`build_kws(..., dump_layers=True)`) writes every layer's int8
output, in the device's HWC order, to the host file layers.bin. `read_layer_dumps` reads it back;
`compare_layers` runs the Python integer interpreter on the same input and reports, layer by
layer, how many values differ, so the first layer that diverges points at the bug: everything
before it is right, so the bug is in that layer's kernel or in the constants generated for it.
`inject_wrong_shift` makes such a bug on purpose, to see what it looks like.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..quant import interpreter
from ..quant.intmodel import IntModel


def read_layer_dumps(path: str | Path, num_layers: int) -> list[list[np.ndarray]]:
    """Per clip, the list of its `num_layers` layer outputs (int8, flat, device order)."""
    raw = Path(path).read_bytes()
    clips, current, pos = [], [], 0
    while pos < len(raw):
        layer, size = np.frombuffer(raw, dtype="<i4", count=2, offset=pos)
        pos += 8
        if layer != len(current):
            raise ValueError(f"{path}: expected a dump of layer {len(current)}, found layer {layer}")
        current.append(np.frombuffer(raw, dtype=np.int8, count=int(size), offset=pos).copy())
        pos += int(size)
        if len(current) == num_layers:
            clips.append(current)
            current = []
    if current:
        raise ValueError(f"{path}: truncated, the last clip has {len(current)} of {num_layers} layer dumps")
    return clips


def to_device_order(values: np.ndarray) -> np.ndarray:
    """A tensor without batch, (C, H, W) in PyTorch's order -> flat HWC (the device's); (C,) as is."""
    values = np.asarray(values)
    return values.transpose(1, 2, 0).ravel() if values.ndim == 3 else values.ravel()


@dataclass
class LayerDiff:
    """How one layer's device output compares with the reference."""
    layer: str
    values: int
    mismatches: int
    max_abs_diff: int
    first_index: int   # flat device index of the first mismatch, -1 if none


def compare_layers(model: IntModel, x_q: np.ndarray, device_layers: list[np.ndarray],
                   layer_names: list[str]) -> list[LayerDiff]:
    """Per device layer, the mismatches against the integer interpreter on the same int8 input.

    `x_q` is one int8 input (49, 10) (or the model's input shape); `layer_names` are the
    device's names (the IntModel's layer names).
    """
    reference = interpreter.run(model, np.asarray(x_q, dtype=np.int8)[None], return_all=True)
    by_name = {layer.name: layer for layer in model.layers}
    out = []
    for name, device in zip(layer_names, device_layers):
        if name not in by_name:
            raise KeyError(f"the device's layer {name!r} is not a layer of the model ({', '.join(by_name)})")
        expected = to_device_order(reference[by_name[name].output][0])
        if expected.size != device.size:
            raise ValueError(f"layer {name}: the device dumped {device.size} values, the reference has {expected.size}")
        diff = device.astype(np.int32) - expected.astype(np.int32)
        bad = np.flatnonzero(diff)
        out.append(LayerDiff(name, int(diff.size), int(bad.size), int(np.abs(diff).max()),
                             int(bad[0]) if bad.size else -1))
    return out


def first_divergence(diffs: list[LayerDiff]) -> str | None:
    """Name of the first layer whose output differs from the reference (None: all agree)."""
    return next((d.layer for d in diffs if d.mismatches), None)


def inject_wrong_shift(model: IntModel, layer: str, delta: int = 1) -> IntModel:
    """A copy of `model` whose layer `layer` requantizes with shift + `delta`: a code generator
    that wrote the wrong shift. Its outputs come out 2^delta times too large (then saturate)."""
    bad = copy.deepcopy(model)
    target = next((l for l in bad.layers if l.name == layer), None)
    if target is None or "shift" not in target.arrays:
        raise ValueError(f"{layer!r} is not a layer with a requantization shift")
    target.arrays["shift"] = (target.arrays["shift"] + delta).astype(np.int32)
    return bad
