"""Engine IR and memory planner: device shapes, lifetimes, plans that never overlap, in-place rules."""
import numpy as np
import pytest
import torch
from torch import nn

from tinyml_utils.engine import arena, ir, planner
from tinyml_utils.testing.random_graphs import random_inputs, random_intmodel
from tinyml_utils.models import ds_cnn_s
from tinyml_utils.quant.convert import convert
from tinyml_utils.quant import interpreter
from tinyml_utils.quant.intmodel import IntModel, Layer, TensorSpec


def features(n=16, seed=0):
    return np.random.default_rng(seed).normal(0, 3, (n, 49, 10)).astype(np.float32)


@pytest.fixture(scope="module")
def ds_cnn_graph():
    torch.manual_seed(0)
    return ir.from_intmodel(convert(ds_cnn_s().eval(), features()))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand (x6), 3x3 depthwise, 1x1 project, skip connection."""

    def __init__(self, c=8, expand=6):
        super().__init__()
        e = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, e, 1), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(e, e, 3, padding=1, groups=e), nn.ReLU6())
        self.project = nn.Conv2d(e, c, 1)

    def forward(self, x):
        return x + self.project(self.dw(self.expand(x)))


def mbv2_graph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU6(), InvertedResidual(), InvertedResidual())
    calib = np.random.default_rng(0).normal(0, 1, (8, 3, 32, 32)).astype(np.float32)
    return ir.from_intmodel(convert(model.eval(), calib))


def test_ds_cnn_lifts_to_device_shapes(ds_cnn_graph):
    g = ds_cnn_graph
    assert [op.kind for op in g.ops] == (["conv2d"] + ["depthwise", "pointwise"] * 4 +
                                         ["avgpool", "flatten", "fully_connected"])
    assert g.tensors[g.input].shape == (49, 10, 1) and g.tensors[g.ops[0].output].shape == (25, 5, 64)
    assert g.macs == 2_656_768
    assert g.is_view(g.ops[10])          # flatten of a 1x1x64 map moves nothing


def test_layout_round_trip():
    x = np.random.default_rng(0).integers(-128, 128, (3, 4, 5, 6)).astype(np.int8)
    dev = ir.to_device_layout(x, (4, 5, 6))
    assert dev.shape == (3, 120) and dev[1, 7] == x[1, 7 % 4, 0, 7 // 4 % 6]   # pixel (0, 1), channel 3
    np.testing.assert_array_equal(ir.from_device_layout(dev, (4, 5, 6)), x)


def test_unsupported_operator_names_it_and_lists_the_supported():
    model = IntModel({"x": TensorSpec("x", (4,), 1.0, 0), "y": TensorSpec("y", (4,), 1.0, 0)},
                     [Layer("softmax", "probabilities", ["x"], "y")], "x", "y")
    with pytest.raises(ir.UnsupportedOperator, match=r"probabilities.*'softmax'.*Supported: conv2d"):
        ir.from_intmodel(model)


def test_lifetimes_of_a_chain(ds_cnn_graph):
    life = planner.lifetimes(ds_cnn_graph)
    assert life[ds_cnn_graph.input] == (0, 0)
    assert life["conv1_relu"] == (0, 1) and life["fc"] == (11, 11)


def test_ds_cnn_plans(ds_cnn_graph):
    g = ds_cnn_graph
    naive = planner.plan_memory(g, "naive")
    fit = planner.plan_memory(g, "first_fit")
    dw = planner.plan_memory(g, "first_fit", inplace_depthwise=True)
    both = planner.plan_memory(g, "first_fit", inplace_depthwise=True, inplace_pointwise=True)
    assert naive.arena_bytes == sum(planner._aligned(t.nbytes) for n, t in g.tensors.items() if n != "flatten")
    assert fit.arena_bytes == fit.lower_bound == 16_000          # two 8,000-byte maps
    # In-place depthwise alone does not lower DS-CNN's peak: the pointwise layers still need in + out.
    assert dw.arena_bytes == 16_000 and len(dw.inplace) == 4
    # With in-place pointwise too, the peak is the first layer's input + output (+ no scratch then).
    assert both.lower_bound == 490 + 8000 and both.arena_bytes <= both.lower_bound + planner.ALIGN
    assert naive.arena_bytes > fit.arena_bytes > both.arena_bytes


def test_inplace_depthwise_lowers_the_peak_of_an_inverted_residual():
    g = mbv2_graph()
    fit = planner.plan_memory(g, "first_fit")
    dw = planner.plan_memory(g, "first_fit", inplace_depthwise=True)
    assert dw.inplace and set(dw.inplace.values()) == {"depthwise"}
    assert dw.arena_bytes < fit.arena_bytes and dw.lower_bound < fit.lower_bound
    assert any(op.kind == "add" for op in g.ops)
    orders = {o: planner.plan_memory(g, "first_fit", inplace_depthwise=True, order=o).arena_bytes
              for o in ("size", "time", "best")}
    assert orders["best"] == min(orders["size"], orders["time"]) >= dw.lower_bound


@pytest.mark.parametrize("seed", range(5))
def test_random_plans_are_valid_and_no_larger_than_naive(seed):
    rng = np.random.default_rng(seed)
    for _ in range(100):
        g = ir.from_intmodel(random_intmodel(rng))
        naive = planner.plan_memory(g, "naive")
        for dw in (False, True):
            for pw in (False, True):
                plan = planner.plan_memory(g, "first_fit", dw, pw)   # plan.check() runs inside
                assert plan.lower_bound <= plan.arena_bytes <= naive.arena_bytes
                for name, kind in plan.inplace.items():
                    op = next(o for o in g.ops if o.name == name)
                    assert plan.offset(op.inputs[0]) == plan.offset(op.output) and op.kind == kind


def test_overlapping_plan_is_caught(ds_cnn_graph):
    plan = planner.plan_memory(ds_cnn_graph, "first_fit")
    plan.buffer_of("dw1_relu").offset = plan.offset("conv1_relu")
    with pytest.raises(AssertionError, match="overlap"):
        plan.check()


def test_plans_run_in_an_arena_bit_exact():
    rng = np.random.default_rng(7)
    for _ in range(150):
        model = random_intmodel(rng)
        g, x = ir.from_intmodel(model), random_inputs(model, 1, rng)
        expected = interpreter.run(model, x)
        for strategy, dw, pw in [("naive", False, False), ("first_fit", False, False), ("first_fit", True, True)]:
            got = arena.run_in_arena(g, planner.plan_memory(g, strategy, dw, pw), x)
            assert np.array_equal(got, expected), (strategy, dw, pw, [op.kind for op in g.ops])


def test_an_overlapping_plan_gives_wrong_answers(ds_cnn_graph):
    g = ds_cnn_graph
    x = np.random.default_rng(0).integers(-128, 128, (1, 1, 49, 10)).astype(np.int8)
    good = planner.plan_memory(g, "first_fit", inplace_depthwise=True, inplace_pointwise=True)
    assert np.array_equal(arena.run_in_arena(g, good, x), interpreter.run(g.source, x))
    bad = planner.plan_memory(g, "first_fit", inplace_depthwise=True, inplace_pointwise=True)
    bad.scratch["dw2"].offset = bad.offset("dw2_relu") + 64      # scratch on top of live channels
    got = arena.run_in_arena(g, bad, x, return_all=True)["dw2_relu"]
    assert not np.array_equal(got, interpreter.run(g.source, x, return_all=True)["dw2_relu"])
