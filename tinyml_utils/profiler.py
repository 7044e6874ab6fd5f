"""Measure a model the way a microcontroller sees it: parameters, MACs, activations, bytes, latency.

The profiler runs one forward pass with hooks on every leaf module and records each layer's
input and output shapes. From those it derives, per layer:

* parameters: the module's own weights;
* MACs (multiply-accumulates) per inference, by the course's one formula (`tinyml_utils.macs`):
  for a convolution each output element needs (C_in / groups) * kH * kW of them; for a linear
  layer, in_features; other layers count 0;
* activation elements of its input and output.

Peak activation memory assumes sequential execution of a chain model (`liveness.chain_step_bytes`):
a layer that makes a new tensor needs its input and output alive together, and nothing else;
batch norm, ReLU and reshapes work in place (after deployment, batch norm is folded into the
convolution and ReLU is a clamp in its store). Models with skip connections need the full
liveness rule: `activation_memory`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from . import macs
from .liveness import chain_step_bytes
from .models import AddChannel

# Layers that do not need a buffer of their own on a microcontroller.
IN_PLACE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Flatten, nn.Dropout, nn.Identity, AddChannel)


@dataclass
class LayerProfile:
    """One leaf layer: shapes exclude the batch dimension; MACs are per inference."""
    name: str
    kind: str
    input_shape: tuple
    output_shape: tuple
    params: int
    macs: int
    in_place: bool

    @property
    def input_elements(self) -> int:
        return _numel(self.input_shape)

    @property
    def output_elements(self) -> int:
        return _numel(self.output_shape)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def layer_macs(module: nn.Module, output_shape: tuple) -> int:
    """MACs of one layer for one input, given its output shape (without batch)."""
    if isinstance(module, nn.Conv2d):
        return macs.conv2d(_numel(output_shape), module.in_channels, module.kernel_size, module.groups)
    if isinstance(module, nn.Linear):
        return macs.linear(_numel(output_shape), module.in_features)
    return 0


@torch.no_grad()
def profile(model: nn.Module, input_shape=(49, 10)) -> list[LayerProfile]:
    """Profile every leaf layer of `model` on one input of `input_shape` (no batch dimension)."""
    records, hooks = [], []
    for name, module in model.named_modules():
        if len(list(module.children())) > 0:
            continue

        def hook(mod, inputs, output, name=name):
            out_shape = tuple(output.shape[1:])
            records.append(LayerProfile(name, type(mod).__name__, tuple(inputs[0].shape[1:]), out_shape,
                                        sum(p.numel() for p in mod.parameters(recurse=False)),
                                        layer_macs(mod, out_shape), isinstance(mod, IN_PLACE)))
        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return records


def count_params(model: nn.Module) -> int:
    """All parameters of the model (including batch norm's)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape=(49, 10)) -> int:
    """MACs per inference."""
    return sum(r.macs for r in profile(model, input_shape))


def peak_activation_bytes(model: nn.Module, input_shape=(49, 10), bytes_per_element: int = 1) -> int:
    """Peak activation memory of sequential execution: max over layers of (input + output) bytes."""
    return max(_step_bytes(r, bytes_per_element) for r in profile(model, input_shape) if not r.in_place)


def _step_bytes(record: LayerProfile, bytes_per_element: int) -> int:
    """Activation bytes while one layer of the chain runs: its input and its output."""
    return chain_step_bytes(record.input_elements * bytes_per_element, record.output_elements * bytes_per_element)


def param_bytes(model: nn.Module, bits: int = 32) -> int:
    """Bytes to store every parameter at `bits` bits (the naive size of the model)."""
    return count_params(model) * bits // 8


def deployed_bytes(model: nn.Module, weight_bits: int = 8, bias_bits: int = 32) -> int:
    """Flash for the weights after batch norm is folded: each conv/linear keeps its weights at
    `weight_bits` and one bias per output channel at `bias_bits` (batch norm's scale and shift
    disappear into them)."""
    total_bits = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out_channels = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            total_bits += m.weight.numel() * weight_bits + out_channels * bias_bits
    return (total_bits + 7) // 8


@torch.no_grad()
def latency_ms(model: nn.Module, input_shape=(49, 10), repeats: int = 50, threads: int = 1) -> float:
    """Median host latency of one inference (batch 1) in milliseconds, on `threads` CPU threads."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    model.eval()
    x = torch.zeros(1, *input_shape)
    try:
        for _ in range(5):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old_threads)
    return 1000 * sorted(times)[len(times) // 2]


def summary(model: nn.Module, input_shape=(49, 10), bytes_per_element: int = 1):
    """A table (pandas DataFrame) of every layer: shapes, parameters, MACs, activation bytes."""
    import pandas as pd

    rows = [{"layer": r.name, "kind": r.kind, "input": r.input_shape, "output": r.output_shape,
             "params": r.params, "MACs": r.macs,
             "activation bytes": 0 if r.in_place else _step_bytes(r, bytes_per_element)}
            for r in profile(model, input_shape)]
    return pd.DataFrame(rows).set_index("layer")
