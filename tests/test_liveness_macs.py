"""The one liveness rule and the one MAC formula, and that every counter in the course uses them alike."""
import numpy as np
import pytest
import torch
from torch import nn

from tinyml_utils import activation_memory, liveness, macs, patch, profiler
from tinyml_utils.engine import ir, planner
from tinyml_utils.quant.convert import convert


def test_a_chain_keeps_only_input_and_output():
    sizes = {"x": 10, "a": 40, "b": 25, "y": 3}
    steps = [(["x"], "a"), (["a"], "b"), (["b"], "y")]
    ranges = liveness.lifetimes(steps, initial=["x"], born=0, keep=["y"], kept_until=2)
    assert ranges == {"x": (0, 0), "a": (0, 1), "b": (1, 2), "y": (2, 2)}
    assert liveness.bytes_alive(ranges, sizes, 3) == [liveness.chain_step_bytes(10, 40),
                                                     liveness.chain_step_bytes(40, 25),
                                                     liveness.chain_step_bytes(25, 3)] == [50, 65, 28]


def test_a_skip_connection_stays_alive_until_the_add():
    sizes = {"x": 8, "e": 48, "d": 48, "p": 8, "y": 8}
    steps = [(["x"], "e"), (["e"], "d"), (["d"], "p"), (["x", "p"], "y")]
    ranges = liveness.lifetimes(steps, initial=["x"], born=-1)
    assert ranges["x"] == (-1, 3) and liveness.alive(ranges, 2) == ["x", "d", "p"]
    assert liveness.bytes_alive(ranges, sizes, 4) == [8 + 48, 8 + 48 + 48, 8 + 48 + 8, 8 + 8 + 8]


def test_unread_buffers_die_where_they_are_born_and_kept_ones_live_on():
    ranges = liveness.lifetimes([([], "a"), ([], "b")], keep=["a"], kept_until=float("inf"))
    assert ranges == {"a": (0, float("inf")), "b": (1, 1)}


@pytest.mark.parametrize("c_in, c_out, kernel, groups, out_hw", [
    (8, 16, (3, 3), 1, (5, 4)), (12, 12, (3, 5), 12, (6, 6)), (12, 6, (1, 1), 1, (7, 3)), (12, 8, (2, 3), 4, (4, 4))])
def test_conv_macs_match_a_direct_count(c_in, c_out, kernel, groups, out_hw):
    outputs = c_out * out_hw[0] * out_hw[1]
    # count products one output element at a time: C_in / groups input channels times the kernel
    products_per_output = sum(1 for _ in range(c_in // groups) for _ in range(kernel[0]) for _ in range(kernel[1]))
    assert macs.conv2d(outputs, c_in, kernel, groups) == outputs * products_per_output
    if groups == c_in == c_out:
        assert macs.depthwise(outputs, kernel) == macs.conv2d(outputs, c_in, kernel, groups)
    if kernel == (1, 1) and groups == 1:
        assert macs.pointwise(outputs, c_in) == macs.conv2d(outputs, c_in, kernel)
    assert macs.linear(10, 64) == 640


def test_profiler_ir_and_patch_cost_count_the_same_macs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.Conv2d(8, 16, 1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(16, 5)).eval()
    calibration = np.random.default_rng(0).normal(0, 1, (8, 3, 8, 8)).astype(np.float32)
    int_model = convert(model, calibration)
    graph = ir.from_intmodel(int_model)
    by_layer = [patch.cost.layer_macs(int_model, layer) for layer in int_model.layers]
    assert [op.macs for op in graph.ops] == by_layer
    assert graph.macs == sum(by_layer) == profiler.count_macs(model, (3, 8, 8)) == 3 * 9 * 8 * 16 + 9 * 8 * 16 + 8 * 16 * 16 + 16 * 5


def test_every_liveness_counter_agrees_on_a_residual_block():
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.expand, self.dw = nn.Conv2d(4, 24, 1), nn.Conv2d(24, 24, 3, padding=1, groups=24)
            self.project = nn.Conv2d(24, 4, 1)

        def forward(self, x):
            return x + self.project(self.dw(self.expand(x)))

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Block()).eval()
    int_model = convert(model, np.random.default_rng(0).normal(0, 1, (8, 3, 6, 6)).astype(np.float32))
    graph = ir.from_intmodel(int_model)
    fx_steps = [s.live_bytes for s in activation_memory.schedule(model, (3, 6, 6))]
    int_steps = [s.live_bytes for s in patch.cost.layerwise_schedule(int_model)]
    plan = planner.plan_memory(graph, "naive")
    assert fx_steps == int_steps == plan.live_bytes()
    assert max(int_steps) == 4 * 36 + 24 * 36 * 2        # block input kept + expansion in + depthwise out
