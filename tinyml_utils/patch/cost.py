"""Peak SRAM and MACs of layer-by-layer and patch-based execution of an `IntModel`.

Peak memory here counts activation tensors only (int8: one byte per value), as a microcontroller
holds them; no kernel scratch buffers (im2col), no fragmentation. It is what an ideal arena
planner without in-place tricks would need:

* **Layer by layer.** Layers run in order; a tensor is alive from the step that writes it (the
  input: from the start) to the last step that reads it (the model output: to the end). While a
  layer runs, every alive tensor counts: its inputs, its output, and tensors kept for later layers
  such as a residual block's input. `flatten` relabels its input (no new buffer).
* **Patch based.** While the stage runs, SRAM holds the stage's full output buffer (patches are
  written into it), the model input if it is resident (a camera frame in SRAM; with
  `input_resident=False` it is streamed and only the patch's input region counts), and one
  patch's working set: the patch-sized parts of the stage tensors alive at that step, by the same
  liveness rule. Patches run one after another and reuse the same working memory, so the stage
  needs the largest working set over patches and steps. After the stage the rest of the model runs
  layer by layer, starting with only the stage output alive. The peak is the larger of the two phases.

Both phases use the course's one liveness rule (`tinyml_utils.liveness`), and MACs its one formula
(`tinyml_utils.macs`): a convolution's output element costs (C_in / groups) * kh * kw
multiply-accumulates, a linear output C_in; pooling and add count 0. In patch-based
execution a stage layer computes every pixel of its patch region, halo included, once per patch:
halo pixels are computed again by every patch that needs them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import liveness, macs
from ..quant.intmodel import IntModel, Layer
from .regions import area, check_cut, patch_grid, required_regions


def tensor_bytes(model: IntModel, name: str) -> int:
    """Bytes of one int8 tensor (batch 1)."""
    n = 1
    for s in model.tensor(name).shape:
        n *= int(s)
    return n


def macs_per_output(layer: Layer) -> int:
    """MACs per output element: (C_in / groups) * kh * kw for conv2d, C_in for linear, 0 otherwise."""
    return macs.per_output_of(layer)


def layer_macs(model: IntModel, layer: Layer) -> int:
    """MACs of one layer on its whole output (batch 1)."""
    return macs_per_output(layer) * tensor_bytes(model, layer.output)


@dataclass
class Step:
    """One layer of a layer-by-layer schedule and the bytes alive while it runs."""
    layer: str
    op: str
    live_bytes: int
    live: tuple          # names of the buffers alive at this step


def layerwise_schedule(model: IntModel, start: int = 0) -> list[Step]:
    """Layer-by-layer schedule of layers[start:], with bytes alive per step.

    At `start` > 0 the tensors produced before it and read from it on are alive from the start.
    """
    layers = model.layers[start:]
    read_here = {name for layer in layers for name in layer.inputs}
    produced_before = [model.input] + [layer.output for layer in model.layers[:start]]
    initial = [name for name in produced_before if name in read_here]
    buffer = {name: name for name in initial}     # tensor name -> the tensor whose buffer holds it
    steps = []
    for layer in layers:
        reads = [buffer[name] for name in layer.inputs]
        relabel = layer.op == "flatten"           # a relabel: same bytes, same buffer
        buffer[layer.output] = reads[0] if relabel else layer.output
        steps.append((reads, None if relabel else layer.output))
    result = [buffer[model.output]] if model.output in buffer else []   # the result lives to the end
    ranges = liveness.lifetimes(steps, initial, born=-1, keep=result, kept_until=len(layers))
    schedule = []
    for step, layer in enumerate(layers):
        live = tuple(liveness.alive(ranges, step))
        schedule.append(Step(layer.name, layer.op, sum(tensor_bytes(model, b) for b in live), live))
    return schedule


def layerwise_peak(model: IntModel, start: int = 0) -> int:
    """Peak bytes of the layer-by-layer schedule of layers[start:]."""
    return max(s.live_bytes for s in layerwise_schedule(model, start))


def stage_liveness(model: IntModel, cut: int) -> list[tuple]:
    """For each stage step, the stage tensors alive (input included, output excluded): [(layer, names)]."""
    stage = model.layers[:cut]
    output = stage[-1].output
    ranges = liveness.lifetimes([(layer.inputs, layer.output) for layer in stage], initial=[model.input], born=-1)
    return [(layer, tuple(n for n in liveness.alive(ranges, i) if n != output)) for i, layer in enumerate(stage)]


@dataclass
class PatchPlan:
    """A patch schedule: stage = the first `cut` layers, its output split into rows x cols patches."""
    cut: int
    rows: int
    cols: int
    stage_output: str
    input_resident: bool
    layerwise_peak: int      # bytes, the whole model layer by layer
    stage_peak: int          # bytes while the stage runs: output buffer + (input) + largest patch working set
    rest_peak: int           # bytes of the layers after the stage, layer by layer
    working_sets: list       # per patch, its largest working set (bytes)
    layerwise_macs: int      # MACs of the whole model layer by layer
    patched_macs: int        # MACs of the whole model with the stage run patch by patch
    stage_macs: int          # MACs of the stage layer by layer
    regions: list = field(repr=False, default_factory=list)   # per patch, {tensor: region}

    @property
    def peak(self) -> int:
        """Peak bytes of patch-based execution."""
        return max(self.stage_peak, self.rest_peak)

    @property
    def saved_bytes(self) -> int:
        """Layer-by-layer peak minus patch-based peak (negative when patches raise the peak)."""
        return self.layerwise_peak - self.peak

    @property
    def mac_overhead(self) -> float:
        """Extra MACs of patch-based execution as a fraction of the model's layer-by-layer MACs."""
        return self.patched_macs / self.layerwise_macs - 1


def plan(model: IntModel, cut: int, rows: int, cols: int | None = None, input_resident: bool = True) -> PatchPlan:
    """Memory and MACs of running layers[:cut] patch by patch on a rows x cols grid (cols defaults to rows)."""
    cols = rows if cols is None else cols
    output = check_cut(model, cut)
    stage = model.layers[:cut]
    steps = stage_liveness(model, cut)
    fixed = tensor_bytes(model, output) + (tensor_bytes(model, model.input) if input_resident else 0)
    working_sets, all_regions, patched_stage_macs = [], [], 0
    for region in patch_grid(model.tensor(output).shape, rows, cols):
        regions = required_regions(model, cut, region)
        part = {n: model.tensor(n).shape[0] * area(r) for n, r in regions.items()}  # bytes of each patch tensor
        if input_resident:
            part[model.input] = 0                 # a view into the resident frame
        working_sets.append(max(sum(part[n] for n in live) for _, live in steps))
        patched_stage_macs += sum(macs_per_output(l) * model.tensor(l.output).shape[0] * area(regions[l.output])
                                  for l in stage)
        all_regions.append(regions)
    layerwise_macs = sum(layer_macs(model, l) for l in model.layers)
    stage_macs = sum(layer_macs(model, l) for l in stage)
    rest_peak = layerwise_peak(model, cut) if cut < len(model.layers) else tensor_bytes(model, output)
    return PatchPlan(cut, rows, cols, output, input_resident, layerwise_peak(model), fixed + max(working_sets),
                     rest_peak, working_sets, layerwise_macs, layerwise_macs - stage_macs + patched_stage_macs,
                     stage_macs, all_regions)


def sweep(model: IntModel, cuts, grids, input_resident: bool = True) -> list[PatchPlan]:
    """`plan` for every cut in `cuts` and every grid size n (n x n patches) that fits the stage output."""
    plans = []
    for cut in cuts:
        h, w = model.tensor(check_cut(model, cut)).shape[-2:]
        plans += [plan(model, cut, n, n, input_resident) for n in grids if n <= min(h, w)]
    return plans
