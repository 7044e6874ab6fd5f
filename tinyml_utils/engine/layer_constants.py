"""One layer's constants in C: its arrays (weights, bias, multipliers, shifts) and parameter record.

The chosen kernel's spec says what it reads: the record type (`KernelSpec.record`), the weight
layout and whether the bias is folded; a specialised kernel's arrays come from `specialise.py`.
"""
from __future__ import annotations

import numpy as np

from . import kernels as K
from . import specialise
from .ctext import c_array, c_comment
from .ir import Graph, Op


def conv_params(graph: Graph, op: Op, ident: str, choice: K.KernelChoice) -> str:
    """The tm_conv_params record of a convolution or fully connected layer (a 1x1 convolution on a 1x1 map)."""
    if op.kind == "fully_connected":
        (h, w, c_in), (oh, ow, c_out) = (1, 1, *graph.tensors[op.inputs[0]].shape), (1, 1, *graph.tensors[op.output].shape)
        (kh, kw), (sh, sw), (ph, pw), groups = (1, 1), (1, 1), (0, 0), 1
    else:
        (h, w, c_in), (oh, ow, c_out) = graph.tensors[op.inputs[0]].shape, graph.tensors[op.output].shape
        (kh, kw), (sh, sw), (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
        groups = op.attrs["groups"]
    z_in, z_out = graph.tensors[op.inputs[0]].zero_point, graph.tensors[op.output].zero_point
    bias = f"{ident}_bias_folded" if choice.fold_bias else f"{ident}_bias"
    return (f"static const tm_conv_params {ident}_params = {{\n"
            f"  .in_h = {h}, .in_w = {w}, .in_c = {c_in}, .out_h = {oh}, .out_w = {ow}, .out_c = {c_out},\n"
            f"  .kernel_h = {kh}, .kernel_w = {kw}, .stride_h = {sh}, .stride_w = {sw}, "
            f".pad_h = {ph}, .pad_w = {pw}, .groups = {groups},\n"
            f"  .in_zero_point = {z_in}, .out_zero_point = {z_out}, "
            f".act_min = {op.attrs['act_min']}, .act_max = {op.attrs['act_max']},\n"
            f"  .weight = {ident}_weight, .bias = {bias}, .multiplier = {ident}_multiplier, "
            f".shift = {ident}_shift,\n}};\n")


def _conv_constants(graph: Graph, op: Op, ident: str, choice: K.KernelChoice) -> tuple[str, int]:
    weight = K.weight_array(op, choice.weights)
    bias = (K.folded_bias(op, graph.tensors[op.inputs[0]].zero_point) if choice.fold_bias
            else op.arrays["bias"]).astype(np.int64)
    text = (c_array("int8_t", f"{ident}_weight", weight) +
            c_array("int32_t", f"{ident}_bias_folded" if choice.fold_bias else f"{ident}_bias", bias, 8) +
            c_array("int32_t", f"{ident}_multiplier", op.arrays["multiplier"], 8) +
            c_array("int32_t", f"{ident}_shift", op.arrays["shift"], 20) +
            conv_params(graph, op, ident, choice))
    return text, weight.size + 4 * 3 * bias.size


def _pool_params(graph: Graph, op: Op, ident: str) -> str:
    (h, w, c), (oh, ow, _) = graph.tensors[op.inputs[0]].shape, graph.tensors[op.output].shape
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["stride"]
    return (f"static const tm_pool_params {ident}_params = {{ .in_h = {h}, .in_w = {w}, .channels = {c}, "
            f".out_h = {oh}, .out_w = {ow}, .kernel_h = {kh}, .kernel_w = {kw}, "
            f".stride_h = {sh}, .stride_w = {sw} }};\n")


def _add_params(graph: Graph, op: Op, ident: str) -> str:
    a = op.attrs
    za, zb = (graph.tensors[t].zero_point for t in op.inputs)
    return (f"static const tm_add_params {ident}_params = {{\n"
            f"  .size = {graph.tensors[op.output].nbytes}, .a_zero_point = {za}, .b_zero_point = {zb}, "
            f".out_zero_point = {graph.tensors[op.output].zero_point}, .left_shift = {a['left_shift']},\n"
            f"  .a_multiplier = {a['multiplier_a']}, .a_shift = {a['shift_a']}, "
            f".b_multiplier = {a['multiplier_b']}, .b_shift = {a['shift_b']},\n"
            f"  .out_multiplier = {a['multiplier_out']}, .out_shift = {a['shift_out']}, "
            f".act_min = {a['act_min']}, .act_max = {a['act_max']},\n}};\n")


def layer_constants(graph: Graph, op: Op, ident: str, choice: K.KernelChoice) -> tuple[str, int]:
    """C text of one layer's constant arrays and parameter record, and the arrays' bytes."""
    spec = choice.spec
    if spec.specialised:
        return specialise.constants(graph, op, ident, choice, c_array)
    if spec.record == "tm_conv_params":
        return _conv_constants(graph, op, ident, choice)
    if spec.record == "tm_pool_params":
        return _pool_params(graph, op, ident), 0
    if spec.record == "tm_add_params":
        return _add_params(graph, op, ident), 0
    if spec.record == "tm_flatten_params":
        h, w, c = graph.tensors[op.inputs[0]].shape
        return f"static const tm_flatten_params {ident}_params = {{ .h = {h}, .w = {w}, .c = {c} }};\n", 0
    if spec.record:
        raise AssertionError(f"{spec.function}: no writer for parameter record {spec.record}")
    return "", 0                                   # a view: nothing to store


def describe(graph: Graph, op: Op) -> str:
    """One line about a layer for the comment above its constants."""
    ins = " + ".join(str(graph.tensors[t].shape) for t in op.inputs)
    extra = ""
    if "kernel" in op.attrs:
        extra = f" {op.attrs['kernel'][0]}x{op.attrs['kernel'][1]} stride {op.attrs['stride']}"
        if "padding" in op.attrs:
            extra += f" padding {op.attrs['padding']}"
    return f"{c_comment(op.name)}: {op.kind}{extra}, {ins} -> {graph.tensors[op.output].shape}, {op.macs:,} MACs"
