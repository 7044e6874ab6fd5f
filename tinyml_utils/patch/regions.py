"""Patch-based inference (MCUNetV2), part 1: which region of every tensor one output patch needs.

The first layers of a vision network work on the largest feature maps, so they set the peak SRAM.
Their outputs, though, depend only on a window of the input (the receptive field). Cut the model
after layer `cut` (the *stage*), split the stage's output map into a grid of patches, and compute
each patch from just the part of every stage tensor it needs: its share plus a *halo* of
neighbouring pixels.

Regions are half-open rectangles ``(y0, y1, x0, x1)`` in a tensor's own (H, W) coordinates.
For a convolution or pooling layer with kernel k, stride s and padding p (per axis), output rows
[a, b) read input rows

    [a * s - p,  (b - 1) * s - p + k)

Rows below 0 or at/after H are padding: the only places where zero-point padding is used. Every
other row, even one outside the patch's own share, is a real neighbour pixel (the halo).
Running the patches is `execute.py`; their memory and MACs, `cost.py`.
"""
from __future__ import annotations

from ..quant.intmodel import IntModel, Layer

#: Operators a stage may contain: they map a spatial window of their input to each output pixel.
SPATIAL_OPS = ("conv2d", "avgpool", "maxpool", "add")


def geometry(layer: Layer) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel (kh, kw), stride (sh, sw), padding (ph, pw)) of a spatial layer; add is 1x1, stride 1."""
    if layer.op == "conv2d":
        kh, kw = layer.arrays["weight"].shape[2:]
        return (int(kh), int(kw)), tuple(layer.attrs["stride"]), tuple(layer.attrs["padding"])
    if layer.op in ("avgpool", "maxpool"):
        return tuple(layer.attrs["kernel"]), tuple(layer.attrs["stride"]), (0, 0)
    if layer.op == "add":
        return (1, 1), (1, 1), (0, 0)
    raise ValueError(f"layer {layer.name}: op {layer.op!r} has no spatial window; a patch stage may hold "
                     f"only {SPATIAL_OPS}")


def input_rows(lo: int, hi: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """Input rows [lo', hi') that output rows [lo, hi) read, before clipping (may be < 0 or > H: padding)."""
    if hi <= lo:
        raise ValueError(f"empty output range [{lo}, {hi})")
    return lo * stride - padding, (hi - 1) * stride - padding + kernel


def input_region(layer: Layer, region) -> tuple[int, int, int, int]:
    """Unclipped input region (y0, y1, x0, x1) that one layer reads to produce output `region`."""
    (kh, kw), (sh, sw), (ph, pw) = geometry(layer)
    y0, y1, x0, x1 = region
    return (*input_rows(y0, y1, kh, sh, ph), *input_rows(x0, x1, kw, sw, pw))


def clip(region, shape) -> tuple[int, int, int, int]:
    """`region` cut to a tensor of shape (C, H, W): what exists; the rest is padding."""
    y0, y1, x0, x1 = region
    h, w = shape[-2:]
    return max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)


def union(a, b) -> tuple[int, int, int, int]:
    """Smallest rectangle holding both regions (a tensor read by two layers, e.g. a skip connection)."""
    if a is None:
        return tuple(b)
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def area(region) -> int:
    """Pixels in a region (0 if empty)."""
    y0, y1, x0, x1 = region
    return max(y1 - y0, 0) * max(x1 - x0, 0)


def stage_cuts(model: IntModel) -> list[int]:
    """Every valid `cut` (number of leading layers in the stage), in increasing order.

    Valid: the first `cut` layers are spatial ops on (C, H, W) tensors, and the only stage tensor
    that later layers read is the stage's output (no skip connection crosses the cut).
    """
    cuts = []
    for cut in range(1, len(model.layers) + 1):
        stage = model.layers[:cut]
        if stage[-1].op not in SPATIAL_OPS or len(model.tensor(stage[-1].output).shape) != 3:
            break
        produced = {model.input} | {layer.output for layer in stage}
        read_later = {name for layer in model.layers[cut:] for name in layer.inputs}
        crossing = (produced & read_later) - {stage[-1].output}
        if not crossing and (cut == len(model.layers) or model.output not in produced - {stage[-1].output}):
            cuts.append(cut)
    return cuts


def check_cut(model: IntModel, cut: int) -> str:
    """Raise a clear error if `cut` is not a valid stage cut; return the stage's output tensor name."""
    valid = stage_cuts(model)
    if cut not in valid:
        raise ValueError(f"cut={cut} is not a valid patch stage for {model.meta.get('name', 'this model')}: "
                         f"the stage must hold only {SPATIAL_OPS} and no skip connection may cross the cut. "
                         f"Valid cuts: {valid}")
    return model.layers[cut - 1].output


def required_regions(model: IntModel, cut: int, out_region, clip_to_tensors: bool = True) -> dict:
    """Region of every stage tensor (input included) that producing `out_region` of the stage output needs.

    Walks the stage backwards: each layer maps its output region to an input region; a tensor read
    by several layers needs the union. With `clip_to_tensors=False` regions are not cut to the
    tensors' bounds (the pure receptive field, padding included).
    """
    output = check_cut(model, cut)
    regions = {output: tuple(out_region)}
    for layer in reversed(model.layers[:cut]):
        for name in layer.inputs:
            need = input_region(layer, regions[layer.output])
            if clip_to_tensors:
                need = clip(need, model.tensor(name).shape)
            regions[name] = union(regions.get(name), need)
    return regions


def receptive_field(model: IntModel, cut: int) -> dict:
    """Receptive field of one stage-output pixel in the model input: size (rows, cols) and jump (stride product)."""
    one = required_regions(model, cut, (0, 1, 0, 1), clip_to_tensors=False)[model.input]
    two = required_regions(model, cut, (1, 2, 1, 2), clip_to_tensors=False)[model.input]
    return {"size": (one[1] - one[0], one[3] - one[2]), "jump": (two[0] - one[0], two[2] - one[2])}


def split(n: int, parts: int) -> list[int]:
    """Boundaries of `parts` near-equal ranges covering [0, n): [0, ..., n]."""
    if not 1 <= parts <= n:
        raise ValueError(f"cannot split {n} rows or columns into {parts} non-empty patches")
    return [i * n // parts for i in range(parts + 1)]


def patch_grid(shape, rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """Regions of a rows x cols grid of patches over a (C, H, W) map, row-major."""
    ys, xs = split(shape[-2], rows), split(shape[-1], cols)
    return [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(rows) for j in range(cols)]
