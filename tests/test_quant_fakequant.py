"""Fake quantization: equal to PyTorch's fake-quantize functions (values and STE gradients), and to `convert`."""
import numpy as np
import pytest
import torch
from torch import nn

from tinyml_utils.models import DSCNN, ds_cnn_s
from tinyml_utils.quant import interpreter as interp
from tinyml_utils.quant.convert import convert
from tinyml_utils.quant.fakequant import FakeQuantModel, fake_quantize, fake_quantize_weight, weight_scales
from tinyml_utils.quant.linear import dequantize, quantize, quantize_weights


def randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


def features(n, seed=0):
    return np.random.default_rng(seed).normal(0, 3, (n, 49, 10)).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_per_tensor_equals_pytorch_values_and_gradients(seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(4000, generator=g) * 4).requires_grad_(True)
    scale = float(torch.rand(1, generator=g)) * 0.1 + 1e-3
    zero_point = int(torch.randint(-100, 100, (1,), generator=g))
    x_ref = x.detach().clone().requires_grad_(True)
    ours = fake_quantize(x, scale, zero_point, -128, 127)
    ref = torch.fake_quantize_per_tensor_affine(x_ref, scale, zero_point, -128, 127)
    assert torch.equal(ours, ref)
    upstream = torch.randn(4000, generator=g)
    ours.backward(upstream)
    ref.backward(upstream)
    assert torch.equal(x.grad, x_ref.grad)                 # STE: pass inside the range, zero where clipped
    assert (x.grad == 0).any() and (x.grad == upstream).any()
    np.testing.assert_array_equal(ours.detach().numpy(),
                                  dequantize(quantize(x.detach().numpy(), scale, zero_point), scale, zero_point))


def test_per_channel_and_weights_equal_pytorch_and_the_package():
    w = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(1))
    for bits in (8, 4, 2):
        qmax = 2 ** (bits - 1) - 1
        scale = weight_scales(w, bits)
        ref = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(16, dtype=torch.int32), 0, -qmax, qmax)
        assert torch.equal(fake_quantize_weight(w, bits), ref)
        assert torch.equal(fake_quantize_weight(w, bits, backend="torch"), ref)
        q, s = quantize_weights(w.numpy(), qmax=qmax)
        np.testing.assert_array_equal(s, scale.numpy())
        np.testing.assert_array_equal(dequantize(q, s, np.zeros(16, np.int64), axis=0), ref.numpy())


def test_fake_quant_model_matches_the_integer_model():
    model = randomize_bn(ds_cnn_s())
    X = features(96)
    int_model = convert(model, X[:64])
    fq = FakeQuantModel(model).calibrate(X[:64]).eval()
    assert fq.ranges().keys() <= {t for t in int_model.tensors}
    for name, q in fq.act.items():
        spec = int_model.tensors[name]
        assert q.qparams() == (spec.scale, spec.zero_point)
    again = fq.to_int_model(X)
    for a, b in zip(int_model.layers, again.layers):
        for key in a.arrays:
            np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    logits_q = interp.run(int_model, interp.quantize_input(int_model, X)).astype(np.int64)
    spec = int_model.output_spec
    with torch.no_grad():
        plain = np.rint(fq(torch.from_numpy(X)).numpy() / spec.scale) + spec.zero_point
        fq.double_rounding = True
        twice = np.rint(fq(torch.from_numpy(X)).numpy() / spec.scale) + spec.zero_point
    assert (twice == logits_q).mean() >= (plain == logits_q).mean()
    assert (twice == logits_q).mean() > 0.97
    assert (plain.argmax(1) == logits_q.argmax(1)).mean() > 0.9


def test_fake_quant_model_trains_and_converts_at_4_bits():
    torch.manual_seed(0)
    model = randomize_bn(DSCNN(channels=(8, 8)))
    X = features(64)
    y = np.random.default_rng(0).integers(0, 12, 64)
    fq = FakeQuantModel(model, weight_bits={"pw1": 4}).calibrate(X)
    before = fq.ranges()
    fq.train()
    loss = nn.functional.cross_entropy(fq(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    assert all(p.grad is not None for p in fq.float_model.parameters())
    assert fq.ranges() != before                            # the EMA moved the ranges
    fq.set_observers(False)
    frozen = fq.ranges()
    fq(torch.from_numpy(X))
    assert fq.ranges() == frozen
    int_model = fq.eval().to_int_model(X)
    pw1 = next(l for l in int_model.layers if l.name == "pw1")
    assert pw1.attrs["weight_bits"] == 4 and np.abs(pw1.arrays["weight"]).max() <= 7
    assert all("weight_bits" not in l.attrs for l in int_model.layers if l.name != "pw1")


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="not layers of the model"):
        FakeQuantModel(ds_cnn_s(), weight_bits={"nope": 4})
    with pytest.raises(ValueError, match="backend"):
        FakeQuantModel(ds_cnn_s(), backend="tflite")
    with pytest.raises(ValueError, match="2..8"):
        convert(ds_cnn_s().eval(), features(4), weight_bits=1)
