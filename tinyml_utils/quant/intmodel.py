"""The integer model: a small, plain, serialisable description of an int8 network.

It is what `convert` produces and what the reference interpreter, the C code generator and the
firmware consume. A model is a list of layers in execution order; each layer names its input and
output tensors, carries integer arrays (weights, biases, multipliers, shifts) and plain integer
attributes. Tensors carry their shape (C, H, W) or (C,), without batch, in PyTorch's NCHW order,
and their quantization parameters (real = scale * (q - zero_point)).

Operators (attributes in brackets):

* ``conv2d`` [stride (sh, sw), padding (ph, pw), groups, act_min, act_max]: weight int8
  (C_out, C_in/groups, kH, kW), bias int32 (C_out,), multiplier int32 (C_out,), shift int32 (C_out,).
  Depthwise is groups == C_in == C_out; pointwise is a 1x1 kernel.
* ``linear`` [act_min, act_max]: weight int8 (C_out, C_in), bias, multiplier, shift as above.
* ``avgpool`` [kernel (kh, kw), stride (sh, sw)]: input and output share scale and zero point.
* ``maxpool`` [kernel, stride]: input and output share scale and zero point.
* ``add`` [left_shift, multiplier_a, shift_a, multiplier_b, shift_b, multiplier_out, shift_out,
  act_min, act_max]: two inputs with their own scales (TFLite's int8 add).
* ``flatten``: (C, H, W) -> (C*H*W,) in NCHW order.

Saved as one `.npz` file: a JSON description plus the arrays, loaded without pickle.

This is the specification; the C engine works on a second IR derived from it,
`engine.ir.Graph` (`engine.ir.from_intmodel`): the same layers and tensors, plus what only a
device needs (HWC shapes and byte sizes for the memory planner, the kind of each convolution for
choosing a kernel). Both count MACs with the one formula of `tinyml_utils.macs`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

OPS = ("conv2d", "linear", "avgpool", "maxpool", "add", "flatten")


@dataclass
class TensorSpec:
    """A tensor's shape (no batch) and quantization: real = scale * (q - zero_point), q int8."""
    name: str
    shape: tuple
    scale: float
    zero_point: int


@dataclass
class Layer:
    """One operator: inputs/output by tensor name, integer attributes and integer arrays."""
    op: str
    name: str
    inputs: list
    output: str
    attrs: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


@dataclass
class IntModel:
    """An int8 network: tensors by name, layers in execution order, model input and output names."""
    tensors: dict
    layers: list
    input: str = "input"
    output: str = "output"
    meta: dict = field(default_factory=dict)

    def tensor(self, name: str) -> TensorSpec:
        return self.tensors[name]

    @property
    def input_spec(self) -> TensorSpec:
        return self.tensors[self.input]

    @property
    def output_spec(self) -> TensorSpec:
        return self.tensors[self.output]

    def validate(self) -> None:
        """Check that tensors exist, ops are known and array dtypes match the specification."""
        known = {self.input}
        for layer in self.layers:
            if layer.op not in OPS:
                raise ValueError(f"layer {layer.name}: unknown op {layer.op!r}; the specification has {OPS}")
            for name in layer.inputs:
                if name not in known:
                    raise ValueError(f"layer {layer.name}: input {name!r} is not produced by an earlier layer")
            if layer.output not in self.tensors:
                raise ValueError(f"layer {layer.name}: output {layer.output!r} has no TensorSpec")
            known.add(layer.output)
            expected = {"weight": np.int8, "bias": np.int32, "multiplier": np.int32, "shift": np.int32}
            for key, dtype in expected.items():
                if key in layer.arrays and layer.arrays[key].dtype != dtype:
                    raise ValueError(f"layer {layer.name}: {key} must be {np.dtype(dtype)}, got {layer.arrays[key].dtype}")
        if self.output not in known:
            raise ValueError(f"model output {self.output!r} is not produced by any layer")

    def weight_bytes(self) -> int:
        """Bytes of the arrays the device stores (weights, biases, multipliers, shifts): the model's flash."""
        return int(sum(a.nbytes for layer in self.layers for k, a in layer.arrays.items()
                       if k in ("weight", "bias", "multiplier", "shift")))

    def save(self, path: str | Path) -> None:
        """Write the model to one .npz file (JSON description + arrays; no pickle)."""
        description = {
            "input": self.input, "output": self.output, "meta": self.meta,
            "tensors": [{"name": t.name, "shape": list(t.shape), "scale": float(t.scale),
                         "zero_point": int(t.zero_point)} for t in self.tensors.values()],
            "layers": [{"op": l.op, "name": l.name, "inputs": list(l.inputs), "output": l.output,
                        "attrs": _plain(l.attrs), "arrays": sorted(l.arrays)} for l in self.layers],
        }
        arrays = {f"{l.name}/{k}": v for l in self.layers for k, v in l.arrays.items()}
        arrays["__description__"] = np.frombuffer(json.dumps(description).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "IntModel":
        """Read a model written by `save`."""
        with np.load(path, allow_pickle=False) as z:
            d = json.loads(bytes(z["__description__"]).decode())
            tensors = {t["name"]: TensorSpec(t["name"], tuple(t["shape"]), t["scale"], t["zero_point"])
                       for t in d["tensors"]}
            layers = [Layer(l["op"], l["name"], l["inputs"], l["output"], _tuples(l["attrs"]),
                            {k: z[f"{l['name']}/{k}"] for k in l["arrays"]}) for l in d["layers"]]
        model = cls(tensors, layers, d["input"], d["output"], d["meta"])
        model.validate()
        return model


def _plain(attrs: dict) -> dict:
    """Attributes as JSON-friendly Python ints and lists."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, (tuple, list, np.ndarray)):
            out[k] = [int(x) for x in v]
        elif isinstance(v, (bool, np.bool_)):
            out[k] = bool(v)
        else:
            out[k] = int(v)
    return out


def _tuples(attrs: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
