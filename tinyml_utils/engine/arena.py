"""Run a planned graph inside one byte arena, in Python: a plan checked by executing it.

Every tensor is read from and written to `arena[offset : offset + bytes]` in the device's HWC
order, exactly where the plan puts it, so a plan that lets two live tensors overlap gives a wrong
answer here, before any C is generated. The arithmetic of each layer is the integer
interpreter's (`quant.interpreter.run_layer`); the in-place operators really run in place:

* in-place depthwise, channel by channel: copy input channel c into the one-channel scratch
  buffer (in the arena), compute output channel c from it, write it over channel c;
* in-place pointwise, pixel by pixel: compute the pixel's outputs into the scratch buffer, then
  copy them over the pixel's inputs.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..quant import interpreter
from .ir import Graph, from_device_layout, to_device_layout
from .planner import Plan


def _read(arena: np.ndarray, graph: Graph, plan: Plan, name: str) -> np.ndarray:
    t = graph.tensors[name]
    start = plan.offset(name)
    return from_device_layout(arena[None, start:start + t.nbytes], t.nchw_shape)   # (1, *NCHW shape)


def _write(arena: np.ndarray, graph: Graph, plan: Plan, name: str, value: np.ndarray) -> None:
    t = graph.tensors[name]
    start = plan.offset(name)
    arena[start:start + t.nbytes] = to_device_layout(value, t.nchw_shape)[0]


def _one_channel_layer(layer, c: int):
    """The depthwise layer restricted to channel c (a 1-channel convolution)."""
    arrays = {k: v[c:c + 1] for k, v in layer.arrays.items()}
    return dataclasses.replace(layer, arrays=arrays, attrs={**layer.attrs, "groups": 1})


def _inplace_depthwise(arena, graph, plan, op, layer, model) -> None:
    h, w, c = graph.tensors[op.inputs[0]].shape
    base, scratch = plan.offset(op.inputs[0]), plan.scratch[op.name].offset
    for ch in range(c):
        channel = arena[base + ch:base + h * w * c:c]                # stride C: channel ch of every pixel
        arena[scratch:scratch + h * w] = channel                     # copy the channel aside...
        x = arena[scratch:scratch + h * w].reshape(1, 1, h, w)
        y = interpreter.run_layer(_one_channel_layer(layer, ch), [x], model)
        arena[base + ch:base + h * w * c:c] = y.reshape(-1)          # ...and write the result over it


def _inplace_pointwise(arena, graph, plan, op, layer, model) -> None:
    h, w, c = graph.tensors[op.inputs[0]].shape
    base, scratch = plan.offset(op.inputs[0]), plan.scratch[op.name].offset
    for pixel in range(h * w):
        start = base + pixel * c
        x = arena[start:start + c].reshape(1, c, 1, 1)
        arena[scratch:scratch + c] = interpreter.run_layer(layer, [x], model).reshape(-1)
        arena[start:start + c] = arena[scratch:scratch + c]


def run_in_arena(graph: Graph, plan: Plan, x_q: np.ndarray, fill: int = 0x55, return_all: bool = False):
    """Run one int8 input (NCHW, with or without batch axis) through `graph` in a `plan.arena_bytes`
    arena (filled with `fill` first, so reads of unwritten bytes show); returns the output (1, ...).

    With `return_all`, a dict of every tensor (1, NCHW...) as it was right after the op that wrote it.
    Each op reads its inputs before writing its output, so an overlap *within* one op's input and
    output is not caught here (the planner's `check` catches it); overlaps across steps are.
    """
    model = graph.source
    if model is None:
        raise ValueError("run_in_arena needs a graph lifted from an IntModel (graph.source)")
    layers = {layer.name: layer for layer in model.layers}
    arena = np.full(plan.arena_bytes, fill, dtype=np.uint8).view(np.int8)
    _write(arena, graph, plan, graph.input, np.asarray(x_q, dtype=np.int8).reshape(1, *graph.tensors[graph.input].nchw_shape))
    seen = {graph.input: _read(arena, graph, plan, graph.input)}
    for op in graph.ops:
        layer = layers[op.name]
        kind = plan.inplace.get(op.name)
        if kind == "depthwise":
            _inplace_depthwise(arena, graph, plan, op, layer, model)
        elif kind == "pointwise":
            _inplace_pointwise(arena, graph, plan, op, layer, model)
        else:
            inputs = [_read(arena, graph, plan, name) for name in op.inputs]
            _write(arena, graph, plan, op.output, interpreter.run_layer(layer, inputs, model))
        seen[op.output] = _read(arena, graph, plan, op.output)
    return seen if return_all else seen[graph.output]
