"""Patch-based inference: halo arithmetic by hand, bit-exactness on random models and grids, memory accounting."""
import numpy as np
import pytest
import torch
from torch import nn

from tinyml_utils import patch
from tinyml_utils.patch import cost
from tinyml_utils.quant import interpreter
from tinyml_utils.quant.convert import convert
from tinyml_utils.quant.fixedpoint import quantize_multiplier, quantize_multipliers
from tinyml_utils.quant.intmodel import IntModel, Layer, TensorSpec


# --- small integer models built by hand ------------------------------------------------------------

class Builder:
    """Appends random but valid int8 layers to an IntModel, tracking shapes.

    Each convolution's requantization multipliers are set from its accumulators on a random sample
    batch, so that every tensor spreads over many int8 values (a collapsed tensor would make a
    bit-exactness test weak).
    """

    def __init__(self, shape, rng):
        self.rng = rng
        self.tensors = {"input": TensorSpec("input", tuple(shape), 0.05, int(rng.integers(-20, 20)))}
        self.layers = []
        self.sample = {"input": rng.integers(-128, 128, (4, *shape)).astype(np.int8)}

    def _new(self, shape):
        name = f"t{len(self.layers)}"
        self.tensors[name] = TensorSpec(name, tuple(shape), float(self.rng.uniform(0.02, 0.1)),
                                        int(self.rng.integers(-20, 20)))
        return name

    def _append(self, layer):
        self.layers.append(layer)
        self.sample[layer.output] = interpreter.run_layer(layer, [self.sample[n] for n in layer.inputs],
                                                          self.model(layer.output))
        return layer.output

    def conv(self, src, c_out, kernel, stride=(1, 1), padding=(0, 0), depthwise=False, clamp=False):
        c_in, h, w = self.tensors[src].shape
        groups = c_in if depthwise else 1
        c_out = c_in if depthwise else c_out
        out_shape = (c_out, (h + 2 * padding[0] - kernel[0]) // stride[0] + 1,
                     (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)
        out = self._new(out_shape)
        z = self.tensors[out].zero_point
        rng = self.rng
        arrays = {"weight": rng.integers(-127, 128, (c_out, c_in // groups, *kernel)).astype(np.int8),
                  "bias": rng.integers(-3000, 3000, c_out).astype(np.int32)}
        attrs = {"stride": tuple(stride), "padding": tuple(padding), "groups": groups,
                 "act_min": z - 40 if clamp else -128, "act_max": min(127, z + 60) if clamp else 127}
        layer = Layer("conv2d", f"conv{len(self.layers)}", [src], out, attrs, arrays)
        acc = interpreter.conv2d_acc(self.sample[src], layer, self.tensors[src].zero_point)
        spread = acc.std(axis=(0, 2, 3)) + 1.0                       # per output channel
        arrays["multiplier"], arrays["shift"] = quantize_multipliers(40.0 / spread)
        return self._append(layer)

    def pool(self, src, op, kernel, stride):
        c, h, w = self.tensors[src].shape
        out = f"t{len(self.layers)}"
        self.tensors[out] = TensorSpec(out, (c, (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1),
                                       self.tensors[src].scale, self.tensors[src].zero_point)
        return self._append(Layer(op, f"pool{len(self.layers)}", [src], out, {"kernel": kernel, "stride": stride}))

    def add(self, a, b):
        out = self._new(self.tensors[a].shape)
        self.tensors[out].scale = self.tensors[a].scale + self.tensors[b].scale   # little saturation
        s_a, s_b, s_out = self.tensors[a].scale, self.tensors[b].scale, self.tensors[out].scale
        twice = 2 * max(s_a, s_b)
        (m_a, sh_a), (m_b, sh_b) = quantize_multiplier(s_a / twice), quantize_multiplier(s_b / twice)
        m_out, sh_out = quantize_multiplier(twice / ((1 << 20) * s_out))
        attrs = dict(left_shift=20, multiplier_a=m_a, shift_a=sh_a, multiplier_b=m_b, shift_b=sh_b,
                     multiplier_out=m_out, shift_out=sh_out, act_min=-128, act_max=127)
        return self._append(Layer("add", f"add{len(self.layers)}", [a, b], out, attrs))

    def model(self, output):
        m = IntModel(self.tensors, self.layers, "input", output, {"name": "random"})
        m.validate()
        return m


def random_model(seed):
    """A random stage: strided/padded/even/odd convs, depthwise, pooling, residual adds."""
    rng = np.random.default_rng(seed)
    b = Builder((int(rng.integers(1, 4)), int(rng.integers(14, 30)), int(rng.integers(14, 30))), rng)
    t = "input"
    for _ in range(int(rng.integers(2, 5))):
        kind = rng.choice(["conv", "dw", "res", "pool"], p=[0.35, 0.25, 0.25, 0.15])
        c, h, w = b.tensors[t].shape
        if kind == "pool" and min(h, w) >= 6:
            k = int(rng.integers(2, 4))
            t = b.pool(t, str(rng.choice(["avgpool", "maxpool"])), (k, k), (int(rng.integers(1, k + 1)),) * 2)
        elif kind == "res":
            k = int(rng.choice([1, 3, 5]))
            inner = b.conv(t, c * 2, (1, 1), clamp=True)
            inner = b.conv(inner, 0, (k, k), padding=(k // 2, k // 2), depthwise=True, clamp=True)
            t = b.add(t, b.conv(inner, c, (1, 1)))
        else:
            kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
            stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            padding = (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
            if (h + 2 * padding[0] - kh) // stride[0] + 1 < 4 or (w + 2 * padding[1] - kw) // stride[1] + 1 < 4:
                continue
            t = b.conv(t, int(rng.integers(2, 6)), (kh, kw), stride, padding, depthwise=kind == "dw", clamp=True)
    if t == "input":
        t = b.conv(t, 3, (3, 3), padding=(1, 1))
    b.pool(t, "avgpool", b.tensors[t].shape[1:], (1, 1))        # global pooling after the stage
    return b.model(f"t{len(b.layers) - 1}")


def random_input(model, n, seed):
    return np.random.default_rng(seed).integers(-128, 128, (n, *model.input_spec.shape)).astype(np.int8)


# --- halo and receptive-field arithmetic, by hand --------------------------------------------------

def test_input_rows_by_hand():
    assert patch.input_rows(0, 4, kernel=3, stride=1, padding=1) == (-1, 5)     # one halo row each side
    assert patch.input_rows(2, 4, kernel=3, stride=2, padding=1) == (3, 8)      # rows 3..7
    assert patch.input_rows(0, 1, kernel=10, stride=2, padding=5) == (-5, 5)    # DS-CNN's first conv, height
    assert patch.input_rows(5, 7, kernel=2, stride=2, padding=0) == (10, 14)    # 2x2 pooling: no halo
    with pytest.raises(ValueError):
        patch.input_rows(3, 3, 3, 1, 1)


def chain():
    """input (1, 12, 12) -> 3x3 s1 p1 -> 3x3 s2 p1 -> 3x3 s1 p1: (2, 6, 6)."""
    b = Builder((1, 12, 12), np.random.default_rng(0))
    t = b.conv("input", 2, (3, 3), padding=(1, 1))
    t = b.conv(t, 2, (3, 3), (2, 2), (1, 1))
    t = b.conv(t, 2, (3, 3), padding=(1, 1))
    return b.model(t)


def test_receptive_field_by_hand():
    # backwards: r_in = (r_out - 1) * s + k: 1 -> 3 -> (3 - 1) * 2 + 3 = 7 -> 9; jump 2
    assert patch.receptive_field(chain(), 3) == {"size": (9, 9), "jump": (2, 2)}


def test_required_regions_by_hand():
    m = chain()                                   # t0 (2, 12, 12), t1 (2, 6, 6), t2 (2, 6, 6)
    regions = patch.required_regions(m, 3, (2, 4, 0, 3))
    assert regions["t2"] == (2, 4, 0, 3)
    assert regions["t1"] == (1, 5, 0, 4)          # 3x3 s1 p1: rows [1, 5), cols [-1, 4) -> [0, 4)
    assert regions["t0"] == (1, 10, 0, 8)         # 3x3 s2 p1: rows [2-1, 8-1+3), cols [-1, 8) -> [0, 8)
    assert regions["input"] == (0, 11, 0, 9)      # 3x3 s1 p1: rows [0, 11), cols [-1, 9) -> [0, 9)
    unclipped = patch.required_regions(m, 3, (2, 4, 0, 3), clip_to_tensors=False)
    assert unclipped["input"] == (0, 11, -4, 9)      # cols [-1, 4) -> [-3, 8) -> [-4, 9): padding kept


def test_required_regions_union_over_a_skip_connection():
    b = Builder((2, 10, 10), np.random.default_rng(1))
    a = b.conv("input", 2, (1, 1))                              # 1x1: needs exactly its output region
    c = b.conv(a, 0, (5, 5), padding=(2, 2), depthwise=True)   # 5x5: two halo rows each side
    out = b.add(a, c)
    m = b.model(out)
    regions = patch.required_regions(m, 3, (4, 6, 0, 10))
    assert regions[c] == (4, 6, 0, 10)
    assert regions[a] == (2, 8, 0, 10)                         # union of the add's (4, 6) and the conv's (2, 8)
    assert regions["input"] == (2, 8, 0, 10)


def test_patch_grid_covers_the_map_once():
    grid = patch.patch_grid((4, 7, 5), 3, 2)
    covered = np.zeros((7, 5), int)
    for y0, y1, x0, x1 in grid:
        covered[y0:y1, x0:x1] += 1
    assert len(grid) == 6 and (covered == 1).all()
    with pytest.raises(ValueError, match="cannot split"):
        patch.patch_grid((4, 7, 5), 8, 1)


# --- bit-exactness -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(40))
def test_patches_equal_whole_tensor_execution_bit_for_bit(seed):
    model = random_model(seed)
    x = random_input(model, 2, seed)
    whole = interpreter.run(model, x, return_all=True)
    rng = np.random.default_rng(seed + 1000)
    for cut in patch.stage_cuts(model):
        h, w = model.tensor(model.layers[cut - 1].output).shape[1:]
        rows, cols = int(rng.integers(1, min(h, 5) + 1)), int(rng.integers(1, min(w, 5) + 1))
        out = patch.run_stage(model, cut, x, rows, cols)
        assert np.array_equal(out, whole[model.layers[cut - 1].output]), (seed, cut, rows, cols)
    cut = patch.stage_cuts(model)[-2]
    assert np.array_equal(patch.run_patched(model, cut, x, 2, 2), whole[model.output])


def tiny_mobilenet():
    def conv_bn(c_in, c_out, k, s=1, groups=1, act=True):
        layers = [nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
        return nn.Sequential(*layers, *([nn.ReLU6()] if act else []))

    class Block(nn.Module):
        def __init__(self, c, stride):
            super().__init__()
            self.stride = stride
            self.conv = nn.Sequential(conv_bn(c, 4 * c, 1), conv_bn(4 * c, 4 * c, 3, stride, 4 * c),
                                      conv_bn(4 * c, c, 1, act=False))

        def forward(self, x):
            return x + self.conv(x) if self.stride == 1 else self.conv(x)

    torch.manual_seed(0)
    return nn.Sequential(conv_bn(3, 4, 3, 2), Block(4, 1), Block(4, 2), Block(4, 1), conv_bn(4, 8, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()


def test_converted_mobilenet_patches_are_bit_exact():
    x = np.random.default_rng(0).uniform(-1, 1, (8, 3, 32, 32)).astype(np.float32)
    model = convert(tiny_mobilenet(), x)
    x_q = interpreter.quantize_input(model, x[:3])
    whole = interpreter.run(model, x_q, return_all=True)
    cuts = patch.stage_cuts(model)
    assert cuts[:2] == [1, 5] and len(cuts) >= 6       # never inside the first residual block (layers 1-4)
    for cut, rows, cols in [(cuts[3], 4, 4), (cuts[5], 3, 2), (cuts[-3], 2, 3)]:
        assert np.array_equal(patch.run_stage(model, cut, x_q, rows, cols), whole[model.layers[cut - 1].output])
        assert np.array_equal(patch.run_patched(model, cut, x_q, rows, cols), whole[model.output])


def test_bad_inputs_fail_clearly():
    model = chain()
    x = random_input(model, 1, 0)
    with pytest.raises(ValueError, match="Valid cuts"):
        patch.run_stage(model, 4, x, 2, 2)
    with pytest.raises(TypeError, match="int8"):
        patch.run_stage(model, 3, x.astype(np.float32), 2, 2)
    with pytest.raises(ValueError, match="cannot split"):
        patch.run_stage(model, 3, x, 7, 1)
    b = Builder((2, 8, 8), np.random.default_rng(0))
    a = b.conv("input", 2, (1, 1))
    skip = b.model(b.add(a, b.conv(a, 2, (3, 3), padding=(1, 1))))
    assert patch.stage_cuts(skip) == [1, 3]             # cut 2 would leave `a` needed by the add
    with pytest.raises(ValueError, match="skip connection"):
        cost.plan(skip, 2, 2)


# --- memory and MAC accounting on a hand-computed example -----------------------------------------

def tiny():
    """input (1, 4, 4) -> conv 3x3 p1 -> (2, 4, 4) -> conv 3x3 s2 p1 -> (2, 2, 2) -> global avgpool (2, 1, 1)."""
    b = Builder((1, 4, 4), np.random.default_rng(0))
    t = b.conv("input", 2, (3, 3), padding=(1, 1))
    t = b.conv(t, 2, (3, 3), (2, 2), (1, 1))
    return b.model(b.pool(t, "avgpool", (2, 2), (1, 1)))


def test_layerwise_memory_by_hand():
    m = tiny()
    # step 0: input 16 + t0 32; step 1: t0 32 + t1 8; step 2: t1 8 + t2 2 (the output)
    assert [s.live_bytes for s in cost.layerwise_schedule(m)] == [48, 40, 10]
    assert cost.layerwise_peak(m) == 48
    assert [s.live_bytes for s in cost.layerwise_schedule(m, start=2)] == [10]


def test_patch_memory_and_macs_by_hand():
    m = tiny()
    p = cost.plan(m, 2, 2)
    # per patch, t0's region: (0,2,0,2) 4 px, (0,2,1,4) 6, (1,4,0,2) 6, (1,4,1,4) 9; two channels
    assert [r["t0"] for r in p.regions] == [(0, 2, 0, 2), (0, 2, 1, 4), (1, 4, 0, 2), (1, 4, 1, 4)]
    assert p.working_sets == [8, 12, 12, 18]
    assert p.stage_peak == 16 + 8 + 18              # resident input + output buffer + largest working set
    assert p.rest_peak == 10 and p.peak == 42 and p.saved_bytes == 6
    # MACs: conv0 32 outputs x 9 + conv1 8 outputs x 18 = 432; patched conv0 (4+6+6+9) x 2 x 9 = 450
    assert p.layerwise_macs == 432 and p.patched_macs == 450 + 144
    assert p.mac_overhead == pytest.approx(594 / 432 - 1)
    streamed = cost.plan(m, 2, 2, input_resident=False)
    # input regions 9, 12, 12, 16 px, alive with t0 at step 0: 9+8, 12+12, 12+12, 16+18
    assert streamed.working_sets == [17, 24, 24, 34] and streamed.stage_peak == 8 + 34
    whole = cost.plan(m, 2, 1)                      # one patch: no recomputation
    assert whole.patched_macs == whole.layerwise_macs


def test_patching_can_raise_the_peak():
    m = tiny()
    p = cost.plan(m, 1, 4)                        # stage = conv0 alone: its output buffer + the input
    assert p.stage_peak == 16 + 32 and p.rest_peak == 40 and p.saved_bytes == 0 and p.mac_overhead == 0
    # Three same-size 3x3 convs on a 4x4 map: layer by layer the peak is one map in, one out (128 B).
    b = Builder((1, 4, 4), np.random.default_rng(0))
    t = b.conv("input", 4, (3, 3), padding=(1, 1))
    t = b.conv(t, 4, (3, 3), padding=(1, 1))
    m3 = b.model(b.conv(t, 4, (3, 3), padding=(1, 1)))
    assert [s.live_bytes for s in cost.layerwise_schedule(m3)] == [16 + 64, 128, 128]
    p3 = cost.plan(m3, 3, 2)
    # a 2x2 output patch needs 3x3 of t1 (36 B) and all 4x4 of t0 (64 B), alive together at step 1
    assert p3.working_sets == [100] * 4 and p3.stage_peak == 16 + 64 + 100
    assert p3.peak == 180 > p3.layerwise_peak == 128 and p3.saved_bytes == -52


def test_tiles_without_halo_are_wrong():
    """The control: the same stage run on tiles with each layer's own padding (no halo) does not match,
    so the bit-exactness tests above can fail."""
    model = chain()
    x = random_input(model, 2, 0)
    whole = interpreter.run(model, x)
    tiled = np.empty_like(whole)
    for y0, y1, x0, x1 in patch.patch_grid(model.input_spec.shape, 2, 2):
        t = x[:, :, y0:y1, x0:x1]
        for layer in model.layers:
            t = interpreter.run_layer(layer, [t], model)
        tiled[:, :, y0 // 2:y1 // 2, x0 // 2:x1 // 2] = t
    wrong = tiled != whole
    assert wrong.any() and wrong[:, :, 2:4].any()             # rows next to the tile border (3) differ
    assert np.array_equal(patch.run_stage(model, 3, x, 2, 2), whole)
