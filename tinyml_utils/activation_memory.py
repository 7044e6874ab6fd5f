"""Activation memory of a network with skip connections: which tensors are alive at each step.

`profiler.peak_activation_bytes` assumes a chain: a layer needs only its input and its output. In
a residual block (MobileNetV2's inverted residual, ResNet's basic block) the block's input must
also stay in memory until the `add` at the end of the block reads it, while every layer inside the
block runs. This module traces the model into a graph with `torch.fx`, runs the layers one at a time
in the graph's order, and at each step counts every tensor that is alive:

* a tensor is born at the step that writes it (the input at step 0) and dies after the last step
  that reads it (the model's outputs live to the end);
* layers in `profiler.IN_PLACE` (batch norm folded into the conv, ReLU, ReLU6 as a clamp, flatten,
  dropout) and reshapes write into their input's buffer, as on a microcontroller;
* every other step (convolutions, linear layers, pooling, `add`) writes a new tensor.

The lifetimes and the bytes alive are the course's one liveness rule (`tinyml_utils.liveness`).
For a chain the result equals the chain profiler's. Bytes are at `bytes_per_element` per value
(1 for int8); shapes exclude the batch dimension.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from . import liveness
from .profiler import IN_PLACE, layer_macs

# Functions and tensor methods that only relabel or clamp their input: no new buffer.
ALIAS_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.relu,
                   nn.functional.relu, nn.functional.relu6, nn.functional.dropout, nn.functional.hardtanh}
ALIAS_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "relu", "relu_", "clamp", "contiguous"}


@dataclass
class Step:
    """One executed layer and the activation memory while it runs (bytes, batch 1)."""
    name: str           # the module's path (e.g. 'features.3.conv.1.0') or the function node's name ('add_1')
    scope: str          # the innermost module it runs in ('features.3' for a block's add)
    kind: str           # 'Conv2d', 'Linear', 'add', ...
    output_shape: tuple
    output_bytes: int
    live_bytes: int     # everything alive during the step: inputs, output, tensors kept for later steps
    kept_bytes: int     # the part that is neither read nor written by this step (e.g. a skip connection)
    params: int
    macs: int


class _LeafTracer(fx.Tracer):
    """Trace down to modules without children, so custom leaf modules (AddChannel) stay one step."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return len(list(m.children())) == 0 or super().is_leaf_module(m, qualname)


def trace(model: nn.Module, input_shape=(49, 10)) -> fx.GraphModule:
    """The model as an fx graph whose nodes carry their output shapes (node.meta['tensor_meta'])."""
    try:
        graph_module = fx.GraphModule(model, _LeafTracer().trace(model))
    except Exception as e:  # data-dependent Python control flow cannot be traced
        raise ValueError(f"torch.fx could not trace {type(model).__name__} ({e}); models with data-dependent "
                         "control flow need that part wrapped in a leaf module") from e
    was_training = model.training
    graph_module.eval()
    try:
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    return graph_module


def _is_alias(node: fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], IN_PLACE)
    if node.op == "call_function":
        return node.target in ALIAS_FUNCTIONS
    if node.op == "call_method":
        return node.target in ALIAS_METHODS
    return False


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _buffers(gm: fx.GraphModule, bytes_per_element: int):
    """Walk the graph once: which buffer each node writes or shares, and the steps that write one.

    Returns (steps [(node, buffers it reads)], {buffer: bytes}, model inputs, model outputs); a
    buffer is named by the node that allocated it.
    """
    modules = dict(gm.named_modules())
    buffer_of, size, inputs, outputs, steps = {}, {}, [], [], []
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if node.op == "output":
            outputs += [buffer_of[arg] for arg in node.all_input_nodes if arg in buffer_of]
            continue
        if not isinstance(meta, TensorMetadata) or node.op == "get_attr":
            continue                                  # parameters and non-tensor values are not activations
        reads = [buffer_of[a] for a in node.all_input_nodes if a in buffer_of]
        if _is_alias(node, modules) and reads:
            buffer_of[node] = reads[0]                # written in place: same buffer, same bytes
            continue
        buffer_of[node], size[node] = node, _numel(meta.shape[1:]) * bytes_per_element
        if node.op == "placeholder":
            inputs.append(node)
        else:
            steps.append((node, reads))
    return steps, size, inputs, outputs


def schedule(model: nn.Module, input_shape=(49, 10), bytes_per_element: int = 1) -> list[Step]:
    """Run the graph step by step; for each step that writes a new tensor, the bytes alive while it runs."""
    gm = trace(model, input_shape)
    modules = dict(gm.named_modules())
    step_nodes, size, inputs, outputs = _buffers(gm, bytes_per_element)
    # The input exists from the first step; the result lives to the end.
    ranges = liveness.lifetimes([(reads, node) for node, reads in step_nodes], initial=inputs, born=0,
                                keep=outputs, kept_until=float("inf"))
    steps = []
    for index, (node, reads) in enumerate(step_nodes):
        live = liveness.alive(ranges, index)
        touched = set(reads) | {node}
        module = modules.get(node.target) if node.op == "call_module" else None
        shape = tuple(node.meta["tensor_meta"].shape[1:])
        stack = node.meta.get("nn_module_stack") or {}
        scope = node.target if module is not None else (list(stack)[-1] if stack else node.name)
        kind = type(module).__name__ if module is not None else getattr(node.target, "__name__", str(node.target))
        steps.append(Step(node.target if module is not None else node.name, scope, kind, shape, size[node],
                          sum(size[b] for b in live), sum(size[b] for b in live if b not in touched),
                          sum(p.numel() for p in module.parameters(recurse=False)) if module is not None else 0,
                          layer_macs(module, shape) if module is not None else 0))
    return steps


def peak_activation_bytes(model: nn.Module, input_shape=(49, 10), bytes_per_element: int = 1) -> int:
    """Peak activation memory over the steps of `schedule`, skip connections included."""
    return max(s.live_bytes for s in schedule(model, input_shape, bytes_per_element))


def schedule_table(model: nn.Module, input_shape=(49, 10), bytes_per_element: int = 1):
    """`schedule` as a pandas DataFrame indexed by step name."""
    import pandas as pd

    return pd.DataFrame([vars(s) for s in schedule(model, input_shape, bytes_per_element)]).set_index("name")


def block_of(scope: str, depth: int = 2) -> str:
    """The first `depth` parts of a module path: 'features.3.conv.1.0' -> 'features.3'."""
    return ".".join(scope.split(".")[:depth])
