"""Converter and integer interpreter: BN folding, per-operator agreement with float, errors, save/load."""
import numpy as np
import pytest
import torch
from torch import nn

from tinyml_utils.models import DSCNN, SmallCNN, ds_cnn_s
from tinyml_utils.quant import interpreter as interp
from tinyml_utils.quant.convert import UnsupportedOperator, convert, trace_and_fold
from tinyml_utils.quant.intmodel import IntModel, Layer, TensorSpec


def randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


def features(n=64, seed=0):
    return np.random.default_rng(seed).normal(0, 3, (n, 49, 10)).astype(np.float32)


def test_bn_folding_keeps_outputs():
    for model in (randomize_bn(ds_cnn_s()), randomize_bn(SmallCNN(), 1)):
        x = torch.from_numpy(features(8))
        folded = trace_and_fold(model)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_integer_model_tracks_the_float_model():
    torch.manual_seed(0)
    model = randomize_bn(ds_cnn_s())
    X = features(128)
    int_model = convert(model, X[:64])
    assert [l.op for l in int_model.layers] == ["conv2d"] * 9 + ["avgpool", "flatten", "linear"]
    logits_q = interp.run(int_model, interp.quantize_input(int_model, X))
    assert logits_q.dtype == np.int8 and logits_q.shape == (128, 12)
    spec = int_model.output_spec
    logits = spec.scale * (logits_q.astype(np.float32) - spec.zero_point)
    ref = model(torch.from_numpy(X)).detach().numpy()
    assert np.abs(logits - ref).max() < 0.15 * np.abs(ref).max()
    assert (logits.argmax(1) == ref.argmax(1)).mean() > 0.8


def conv_layer_model(c_in, c_out, kernel, stride, padding, groups, shape, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (c_out, c_in // groups, *kernel)).astype(np.int8)
    layer = Layer("conv2d", "conv", ["x"], "y",
                  {"stride": stride, "padding": padding, "groups": groups, "act_min": -128, "act_max": 127},
                  {"weight": w, "bias": rng.integers(-5000, 5000, c_out).astype(np.int32),
                   "multiplier": np.full(c_out, 1 << 30, np.int32), "shift": np.full(c_out, -8, np.int32)})
    h, wd = shape
    ho = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    wo = (wd + 2 * padding[1] - kernel[1]) // stride[1] + 1
    tensors = {"x": TensorSpec("x", (c_in, h, wd), 0.1, 3), "y": TensorSpec("y", (c_out, ho, wo), 0.2, -5)}
    return IntModel(tensors, [layer], "x", "y"), rng.integers(-128, 128, (2, c_in, h, wd)).astype(np.int8)


@pytest.mark.parametrize("c_in,c_out,kernel,stride,padding,groups", [
    (3, 5, (3, 3), (1, 1), (1, 1), 1), (4, 4, (3, 3), (2, 2), (1, 1), 4), (6, 4, (1, 1), (1, 1), (0, 0), 2),
    (1, 8, (10, 4), (2, 2), (5, 1), 1), (8, 8, (5, 3), (1, 2), (2, 0), 8)])
def test_conv_accumulators_equal_a_float64_convolution(c_in, c_out, kernel, stride, padding, groups):
    model, x = conv_layer_model(c_in, c_out, kernel, stride, padding, groups, (9, 7), seed=c_in + c_out)
    layer = model.layers[0]
    acc = interp.conv2d_acc(x, layer, 3)
    ref = nn.functional.conv2d(torch.from_numpy(x.astype(np.float64) - 3), torch.from_numpy(layer.arrays["weight"].astype(np.float64)),
                               torch.from_numpy(layer.arrays["bias"].astype(np.float64)), stride, padding, groups=groups)
    np.testing.assert_array_equal(acc, ref.numpy().astype(np.int64))
    out = interp.run(model, x)
    expected = np.clip(np.floor(ref.numpy() / 2**9 + 0.5) - 5, -128, 127)  # M = 2^30 * 2^(-8-31) = 2^-9
    assert np.abs(out.astype(np.int64) - expected).max() <= 1


def test_avgpool_rounds_like_tflite():
    layer = Layer("avgpool", "pool", ["x"], "y", {"kernel": (1, 4), "stride": (1, 4)})
    tensors = {"x": TensorSpec("x", (1, 1, 12), 1.0, 0), "y": TensorSpec("y", (1, 1, 3), 1.0, 0)}
    x = np.array([[[[1, 1, 0, 0, -1, -1, 0, 0, -128, -128, -128, -127]]]], np.int8)  # sums 2, -2, -511
    out = interp.run(IntModel(tensors, [layer], "x", "y"), x)
    assert out.ravel().tolist() == [1, -1, -128]                                    # 0.5 -> 1, -0.5 -> -1


def test_residual_add_matches_float():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 3, 1)
            self.b = nn.Conv2d(2, 3, 3, padding=1)
            self.relu = nn.ReLU()
        def forward(self, x):
            return self.relu(self.a(x) + self.b(x))
    torch.manual_seed(1)
    model = Residual().eval()
    X = np.random.default_rng(0).normal(0, 1, (32, 2, 6, 6)).astype(np.float32)
    int_model = convert(model, X)
    assert [l.op for l in int_model.layers] == ["conv2d", "conv2d", "add"]
    out_q = interp.run(int_model, interp.quantize_input(int_model, X))
    spec = int_model.output_spec
    assert out_q.min() >= spec.zero_point  # the fused ReLU clamps at real zero
    err = np.abs(spec.scale * (out_q.astype(np.float32) - spec.zero_point) - model(torch.from_numpy(X)).detach().numpy())
    assert err.max() < 4 * spec.scale


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid())
    with pytest.raises(UnsupportedOperator, match="Sigmoid.*Supported: Conv2d"):
        convert(model, np.zeros((4, 1, 5, 5), np.float32))


def test_save_load_round_trip(tmp_path):
    model = randomize_bn(DSCNN(channels=(8, 8, 12)))
    X = features(16)
    int_model = convert(model, X)
    int_model.save(tmp_path / "m.npz")
    again = IntModel.load(tmp_path / "m.npz")
    x_q = interp.quantize_input(int_model, X)
    np.testing.assert_array_equal(interp.run(again, x_q), interp.run(int_model, x_q))
    assert again.weight_bytes() == int_model.weight_bytes() > 0


def test_bad_models_raise_clear_errors():
    model, x = conv_layer_model(2, 2, (3, 3), (1, 1), (1, 1), 1, (4, 4), 0)
    model.layers[0].arrays["bias"] = np.full(2, 2**31 - 10, np.int32)
    with pytest.raises(OverflowError, match="accumulator overflow"):
        interp.run(model, x)
    model.layers[0].arrays["weight"] = model.layers[0].arrays["weight"].astype(np.int16)
    with pytest.raises(ValueError, match="weight must be int8"):
        model.validate()
    with pytest.raises(TypeError, match="int8"):
        interp.run(model, x.astype(np.float32))


def test_bias_that_overflows_int32_is_an_error_not_a_clip():
    from tinyml_utils.quant.linear import quantize_bias
    assert quantize_bias(np.array([1.0, -1.0]), 0.5, np.array([0.25, 0.5])).tolist() == [8, -4]
    with pytest.raises(OverflowError, match="channel 1.*does not fit in int32"):
        quantize_bias(np.array([0.0, 5.0]), 1e-6, np.array([1e-4, 1e-4]))
