"""Efficient operators (efficient_ops), activation memory with skip connections, and the roofline."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual as TorchvisionInvertedResidual

from tinyml_utils import activation_memory, efficient_ops, profiler, roofline
from tinyml_utils.models import DNN, DSCNN, SmallCNN, ds_cnn_s

torch.manual_seed(0)


# --- costs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("c_in, c_out, k, h, w", [(64, 64, 3, 25, 5), (32, 64, 3, 48, 48), (3, 16, 5, 7, 9), (8, 1, 1, 4, 4)])
def test_costs_match_the_profiler(c_in, c_out, k, h, w):
    standard = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
    depthwise = nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False)
    pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
    for cost, layer in [(efficient_ops.standard_cost(c_in, c_out, k, h, w), standard),
                        (efficient_ops.depthwise_cost(c_in, k, h, w), depthwise),
                        (efficient_ops.pointwise_cost(c_in, c_out, h, w), pointwise),
                        (efficient_ops.separable_cost(c_in, c_out, k, h, w), nn.Sequential(depthwise, pointwise))]:
        assert cost == {"params": profiler.count_params(layer), "macs": profiler.count_macs(layer, (c_in, h, w))}
    ratio = efficient_ops.separable_cost(c_in, c_out, k, h, w)["macs"] / efficient_ops.standard_cost(c_in, c_out, k, h, w)["macs"]
    assert ratio == pytest.approx(efficient_ops.separable_ratio(c_out, k))


def test_conv_cost_with_bias_and_groups():
    layer = nn.Conv2d(6, 12, (3, 1), groups=3, bias=True)
    out = layer(torch.zeros(1, 6, 20, 7)).shape
    assert efficient_ops.conv_cost(6, 12, (3, 1), out[2], out[3], groups=3, bias=True) == {
        "params": profiler.count_params(layer), "macs": profiler.layer_macs(layer, tuple(out[1:]))}
    with pytest.raises(ValueError, match="groups"):
        efficient_ops.conv_cost(6, 12, 3, 4, 4, groups=4)


# --- im2col and the convolutions ------------------------------------------------------------------------

conv_shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 2, 3, 5]), st.integers(1, 2),
                        st.integers(0, 2), st.integers(5, 11), st.integers(5, 11))


@settings(max_examples=40, deadline=None)
@given(conv_shapes)
def test_im2col_is_unfold_and_convolutions_are_pytorchs(shape):
    c_in, c_out, k, stride, padding, h, w = shape
    x = torch.randn(2, c_in, h, w)
    assert torch.equal(efficient_ops.im2col(x, k, stride, padding), F.unfold(x, k, padding=padding, stride=stride))
    weight, bias = torch.randn(c_out, c_in, k, k), torch.randn(c_out)
    torch.testing.assert_close(efficient_ops.conv2d_im2col(x, weight, bias, stride, padding),
                               F.conv2d(x, weight, bias, stride, padding), atol=1e-4, rtol=1e-4)
    dw_weight, dw_bias = torch.randn(c_in, 1, k, k), torch.randn(c_in)
    torch.testing.assert_close(efficient_ops.depthwise_conv2d(x, dw_weight, dw_bias, stride, padding),
                               F.conv2d(x, dw_weight, dw_bias, stride, padding, groups=c_in), atol=1e-4, rtol=1e-4)
    pw_weight = torch.randn(c_out, c_in, 1, 1)
    torch.testing.assert_close(efficient_ops.pointwise_conv2d(x, pw_weight), F.conv2d(x, pw_weight), atol=1e-4, rtol=1e-4)


def test_rectangular_kernels_strides_and_padding():
    x = torch.randn(1, 1, 49, 10)
    weight = torch.randn(4, 1, 10, 4)
    torch.testing.assert_close(efficient_ops.conv2d_im2col(x, weight, None, (2, 2), (5, 1)),
                               F.conv2d(x, weight, None, (2, 2), (5, 1)), atol=1e-4, rtol=1e-4)


def test_separable_module_equals_torch_layers():
    layer = efficient_ops.SeparableConv2d(8, 16, 3, stride=2, padding=1)
    x = torch.randn(3, 8, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer.to_torch()(x), atol=1e-5, rtol=1e-5)
    assert profiler.count_params(layer) == profiler.count_params(layer.to_torch())
    no_bias = efficient_ops.SeparableConv2d(4, 4, 3, bias=False)
    with torch.no_grad():
        torch.testing.assert_close(no_bias(x[:, :4]), no_bias.to_torch()(x[:, :4]), atol=1e-5, rtol=1e-5)


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        efficient_ops.im2col(torch.zeros(3, 5, 5), 3)
    with pytest.raises(ValueError, match="does not fit"):
        efficient_ops.im2col(torch.zeros(1, 1, 2, 2), 5)
    with pytest.raises(ValueError, match="depthwise weight"):
        efficient_ops.depthwise_conv2d(torch.zeros(1, 4, 5, 5), torch.zeros(3, 1, 3, 3))
    with pytest.raises(ValueError, match="pointwise weight"):
        efficient_ops.pointwise_conv2d(torch.zeros(1, 4, 5, 5), torch.zeros(3, 4, 3, 3))
    with pytest.raises(ValueError, match="kernel"):
        efficient_ops.im2col(torch.zeros(1, 1, 5, 5), (3, 3, 3))


# --- MobileNet blocks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("c_in, c_out, stride, t", [(24, 24, 1, 6), (16, 24, 2, 6), (32, 32, 1, 1), (8, 16, 1, 4)])
def test_inverted_residual_matches_torchvision(c_in, c_out, stride, t):
    ours, theirs = efficient_ops.InvertedResidual(c_in, c_out, stride, t), TorchvisionInvertedResidual(c_in, c_out, stride, t)
    assert ours.use_residual == theirs.use_res_connect
    for p in theirs.parameters():
        nn.init.normal_(p, 0, 0.2)
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.state_dict().values())))
    x = torch.randn(2, c_in, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))
    with pytest.raises(ValueError, match="stride"):
        efficient_ops.InvertedResidual(8, 8, 3, 6)


def test_mobilenet_v1_block_is_a_ds_cnn_block():
    block = efficient_ops.mobilenet_v1_block(64, 64, activation=nn.ReLU)
    model = ds_cnn_s()
    assert [type(m) for m in block] == [type(m) for m in list(model)[4:10]]
    assert profiler.count_params(block) == profiler.count_params(nn.Sequential(*list(model)[4:10]))
    assert isinstance(efficient_ops.mobilenet_v1_block(8, 16, stride=2)[2], nn.ReLU6)


# --- im2col buffers ------------------------------------------------------------------------------------

def test_im2col_buffer_bytes():
    assert efficient_ops.im2col_buffer_bytes(nn.Conv2d(64, 64, 3, padding=1, groups=64), 25, 5) == 64 * 9 * 125
    assert efficient_ops.im2col_buffer_bytes(nn.Conv2d(64, 32, 1), 25, 5) == 0
    assert efficient_ops.im2col_buffer_bytes(nn.Conv2d(64, 32, 1, stride=2), 13, 3) == 64 * 13 * 3
    assert efficient_ops.im2col_buffer_bytes(nn.Conv2d(1, 64, (10, 4), 2, (5, 1)), 25, 5, bytes_per_element=2) == 40 * 125 * 2


def test_cmsis_nn_buffer_bytes():
    assert efficient_ops.cmsis_nn_buffer_bytes(nn.Conv2d(1, 64, (10, 4))) == 2 * 40 * 2
    assert efficient_ops.cmsis_nn_buffer_bytes(nn.Conv2d(3, 16, 3)) == 2 * 28 * 2     # 27 rounded up to 28
    assert efficient_ops.cmsis_nn_buffer_bytes(nn.Conv2d(64, 64, 3, padding=1, groups=64)) == 0
    assert efficient_ops.cmsis_nn_buffer_bytes(nn.Conv2d(64, 64, 5, padding=2, groups=64)) == 64 * 25 * 2
    assert efficient_ops.cmsis_nn_buffer_bytes(nn.Conv2d(64, 32, 1)) == 0
    with pytest.raises(ValueError):
        efficient_ops.cmsis_nn_buffer_bytes(nn.Conv2d(8, 8, 3, groups=2))


# --- activation memory ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [ds_cnn_s(), SmallCNN(), DNN(), DSCNN(channels=(16, 32, 8), first_stride=(1, 1))],
                         ids=lambda m: type(m).__name__)
def test_chains_agree_with_the_chain_profiler(model):
    for bpe in (1, 4):
        assert activation_memory.peak_activation_bytes(model, bytes_per_element=bpe) == \
            profiler.peak_activation_bytes(model, bytes_per_element=bpe)


def test_a_residual_keeps_its_input_alive():
    block = efficient_ops.InvertedResidual(8, 8, 1, 6)                            # input 8 x 6 x 6 = 288 values
    steps = activation_memory.schedule(block, (8, 6, 6))
    assert [s.kind for s in steps] == ["Conv2d", "Conv2d", "Conv2d", "add"]
    assert [s.kept_bytes for s in steps] == [0, 288, 288, 0]
    assert [s.live_bytes for s in steps] == [288 + 1728, 288 + 2 * 1728, 288 + 1728 + 288, 3 * 288]
    assert activation_memory.peak_activation_bytes(block, (8, 6, 6)) == profiler.peak_activation_bytes(block, (8, 6, 6)) + 288
    strided = efficient_ops.InvertedResidual(8, 8, 2, 6)                          # no residual: a chain
    assert activation_memory.peak_activation_bytes(strided, (8, 6, 6)) == profiler.peak_activation_bytes(strided, (8, 6, 6))


def test_mobilenet_v2_schedule():
    net = torchvision.models.mobilenet_v2(weights=None).eval()
    table = activation_memory.schedule_table(net, (3, 96, 96))
    assert table["macs"].sum() == profiler.count_macs(net, (3, 96, 96))
    assert (table["kind"] == "add").sum() == 10                            # ten residual blocks
    assert table["live_bytes"].max() == 48 * 48 * 96 + 24 * 24 * 96        # block 2's depthwise, stride 2
    assert table.loc["add", "scope"] == "features.3"
    assert activation_memory.block_of("features.3.conv.1.0") == "features.3"


def test_untraceable_model_is_a_clear_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.conv = Branchy(), nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    with pytest.raises(ValueError, match="could not trace"):
        activation_memory.trace(Wrapper(), (1, 4, 4))


# --- roofline --------------------------------------------------------------------------------------------

def test_roofline_basics():
    mcu = roofline.STM32F411
    assert mcu.ridge("sram") == mcu.macs_per_cycle / mcu.sram_bytes_per_cycle
    assert mcu.attainable(0.1, "sram") == pytest.approx(0.1 * mcu.sram_bytes_per_cycle)
    assert mcu.attainable(100, "flash") == mcu.macs_per_cycle
    with pytest.raises(ValueError, match="memory"):
        mcu.ridge("dram")
    assert roofline.cycles_lower_bound(1000, 0, 0, mcu) == 1000 / mcu.macs_per_cycle
    assert roofline.cycles_lower_bound(0, 400, 160, mcu) == pytest.approx(400 / 4 + 160 / mcu.flash_bytes_per_cycle)


def test_layer_traffic_of_ds_cnn():
    table = roofline.layer_traffic(ds_cnn_s())
    assert list(table.index) == ["conv1"] + [f"{k}{i}" for i in range(1, 5) for k in ("dw", "pw")] + ["fc"]
    assert table["MACs"].sum() == profiler.count_macs(ds_cnn_s())
    assert table["flash bytes"].sum() == profiler.deployed_bytes(ds_cnn_s(), 8)
    assert table.loc["pw1", "SRAM bytes"] == 2 * 25 * 5 * 64
    assert table.loc["pw1", "intensity"] == pytest.approx(25 * 5 * 64 * 64 / (64 * 64 + 4 * 64 + 2 * 25 * 5 * 64))
    assert set(table["kind"]) == {"standard", "depthwise", "pointwise", "Linear"}


# --- lab 7 checks: pass the package's answers, reject wrong ones -----------------------------------------------

def test_lab07_checks_accept_right_and_reject_wrong_answers():
    from tinyml_utils.checks import CheckFailed
    from tinyml_utils.checks import lab07

    def im2col(x, k, stride=1, padding=0):
        return efficient_ops.im2col(x[None], k, stride, padding)[0]

    def depthwise(x, w, stride=1, padding=0):
        return efficient_ops.depthwise_conv2d(x[None], w, None, stride, padding)[0]

    def pointwise(x, w):
        return efficient_ops.pointwise_conv2d(x[None], w)[0]

    def separable(x, dw, pw, stride=1, padding=0):
        return efficient_ops.separable_conv2d(x[None], dw, pw, stride=stride, padding=padding)[0]

    lab07.check_im2col(im2col)
    lab07.check_depthwise(depthwise)
    lab07.check_pointwise(pointwise)
    lab07.check_separable(separable)
    lab07.check_separable_cost(efficient_ops.separable_cost)
    lab07.check_cost_ratio(efficient_ops.separable_ratio)
    lab07.check_im2col_bytes(lambda conv, h, w: efficient_ops.im2col_buffer_bytes(conv, h, w))

    wrong = [(lab07.check_im2col, lambda x, k, stride=1, padding=0: im2col(x, k, 1, padding)),       # ignores stride
             (lab07.check_depthwise, lambda x, w, stride=1, padding=0: depthwise(x, w, stride, padding) + 1e-2),
             (lab07.check_pointwise, lambda x, w: pointwise(x, w)[:1]),                               # wrong shape
             (lab07.check_separable, lambda x, dw, pw, stride=1, padding=0: "not a tensor"),
             (lab07.check_separable_cost, lambda *a: {"params": 0, "macs": 0}),
             (lab07.check_separable_cost, lambda *a: (0, 0)),
             (lab07.check_cost_ratio, lambda c_out, k: 1 / k ** 2),
             (lab07.check_im2col_bytes, lambda conv, h, w: conv.in_channels * h * w)]
    for check, answer in wrong:
        with pytest.raises(CheckFailed):
            check(answer)
