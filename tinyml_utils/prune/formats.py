"""What a sparse weight tensor costs in flash: dense int8, CSR and bitmask storage.

Every tensor is stored as a matrix of `rows` = output channels by `cols` = the rest
(C_in/groups * kH * kW for a convolution, in_features for a linear layer), with `nnz` nonzero
int8 values. The formats:

* dense:   rows * cols values;
* CSR:     nnz values, nnz column indices (1 byte when cols <= 256, else 2) and rows + 1 row
           pointers (2 bytes when nnz < 65536, else 4);
* bitmask: one bit per position (ceil(rows * cols / 8) bytes) and nnz values.

Byte counts depend only on (rows, cols, nnz), not on where the zeros are. The encoders below
build the arrays a C runtime would read, so the counts can be checked against real buffers.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

FORMATS = ("dense", "csr", "bitmask")


def matrix_shape(weight) -> tuple[int, int]:
    """(rows, cols) of a weight stored as a matrix: output channels by everything else."""
    shape = tuple(weight.shape)
    return shape[0], int(np.prod(shape[1:])) if len(shape) > 1 else 1


def index_bytes(cols: int) -> int:
    """Bytes of one CSR column index: uint8 addresses 256 columns, uint16 65,536."""
    return 1 if cols <= 256 else 2


def pointer_bytes(nnz: int) -> int:
    """Bytes of one CSR row pointer: uint16 while the pointers (0..nnz) fit, else uint32."""
    return 2 if nnz < 65536 else 4


def format_bytes(fmt: str, rows: int, cols: int, nnz: int, value_bits: int = 8) -> int:
    """Bytes to store a rows x cols matrix with nnz nonzeros of `value_bits` bits in format `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if not 0 <= nnz <= rows * cols:
        raise ValueError(f"nnz must be between 0 and rows * cols = {rows * cols}, got {nnz}")
    if fmt == "dense":
        return math.ceil(rows * cols * value_bits / 8)
    values = math.ceil(nnz * value_bits / 8)
    if fmt == "csr":
        return values + nnz * index_bytes(cols) + (rows + 1) * pointer_bytes(nnz)
    return math.ceil(rows * cols / 8) + values


def tensor_bytes(weight, fmt: str, value_bits: int = 8) -> int:
    """Bytes of one weight tensor in format `fmt` (its zeros are the pruned weights)."""
    rows, cols = matrix_shape(weight)
    return format_bytes(fmt, rows, cols, int((torch.as_tensor(weight) != 0).sum()), value_bits)


def model_weight_bytes(model: nn.Module, fmt: str, value_bits: int = 8, bias_bits: int = 32,
                       fmt_for=None) -> int:
    """Flash of every Conv2d/Linear: weights in `fmt` plus one `bias_bits` bias per output channel.

    With fmt 'dense' this equals `profiler.deployed_bytes(model, value_bits, bias_bits)`.
    `fmt_for(name, weight)`, if given, picks the format per layer (e.g. the cheapest).
    """
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            layer_fmt = fmt_for(name, m.weight) if fmt_for else fmt
            total += tensor_bytes(m.weight.detach(), layer_fmt, value_bits) + math.ceil(m.weight.shape[0] * bias_bits / 8)
    return total


def cheapest_format(weight, value_bits: int = 8) -> str:
    """The format that stores this tensor in the fewest bytes (dense on ties)."""
    return min(FORMATS, key=lambda f: (tensor_bytes(weight, f, value_bits), FORMATS.index(f)))


def break_even_sparsity(fmt: str, rows: int, cols: int, value_bits: int = 8) -> float:
    """The smallest sparsity (nnz stepping down from rows * cols) at which `fmt` is smaller than dense."""
    n, dense = rows * cols, format_bytes("dense", rows, cols, rows * cols, value_bits)
    for nnz in range(n, -1, -1):
        if format_bytes(fmt, rows, cols, nnz, value_bits) < dense:
            return 1 - nnz / n
    return float("nan")  # never (cannot happen for csr or bitmask with nnz = 0)


def to_csr(weight) -> dict[str, np.ndarray]:
    """CSR arrays of a tensor (values kept as given): values, col_index, row_ptr, in the dtypes counted."""
    matrix = np.asarray(torch.as_tensor(weight).detach().reshape(matrix_shape(weight)))
    rows, cols = matrix.nonzero()
    nnz = len(rows)
    row_ptr = np.zeros(matrix.shape[0] + 1, dtype=np.uint16 if pointer_bytes(nnz) == 2 else np.uint32)
    row_ptr[1:] = np.cumsum(np.bincount(rows, minlength=matrix.shape[0]))
    return {"values": matrix[rows, cols], "col_index": cols.astype(np.uint8 if index_bytes(matrix.shape[1]) == 1 else np.uint16),
            "row_ptr": row_ptr, "shape": np.array(matrix.shape)}


def from_csr(csr: dict[str, np.ndarray]) -> np.ndarray:
    """The dense matrix back from `to_csr`'s arrays."""
    rows, cols = (int(s) for s in csr["shape"])
    matrix = np.zeros((rows, cols), dtype=csr["values"].dtype)
    for r in range(rows):
        start, end = int(csr["row_ptr"][r]), int(csr["row_ptr"][r + 1])
        matrix[r, csr["col_index"][start:end]] = csr["values"][start:end]
    return matrix


def to_bitmask(weight) -> dict[str, np.ndarray]:
    """Bitmask arrays of a tensor: bits (uint8, one bit per position, little-endian in a byte) and values."""
    flat = np.asarray(torch.as_tensor(weight).detach().flatten())
    nonzero = flat != 0
    return {"bits": np.packbits(nonzero, bitorder="little"), "values": flat[nonzero], "shape": np.array(weight.shape)}


def from_bitmask(packed: dict[str, np.ndarray]) -> np.ndarray:
    """The tensor back from `to_bitmask`'s arrays."""
    n = int(np.prod(packed["shape"]))
    nonzero = np.unpackbits(packed["bits"], count=n, bitorder="little").astype(bool)
    flat = np.zeros(n, dtype=packed["values"].dtype)
    flat[nonzero] = packed["values"]
    return flat.reshape(tuple(int(s) for s in packed["shape"]))


def encoded_bytes(arrays: dict[str, np.ndarray], value_bits: int = 8) -> int:
    """Bytes of an encoding's buffers, with values counted at `value_bits` (shape is metadata, not counted)."""
    values = math.ceil(arrays["values"].size * value_bits / 8)
    return values + sum(a.nbytes for k, a in arrays.items() if k not in ("values", "shape"))
