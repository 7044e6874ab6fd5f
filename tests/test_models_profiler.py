import pytest
import torch
from torch import nn

from tinyml_utils.models import DNN, MODEL_ZOO, DSCNN, SmallCNN, ds_cnn_s, same_padding
from tinyml_utils.profiler import (count_macs, count_params, deployed_bytes, layer_macs, param_bytes,
                                   peak_activation_bytes, profile, summary)


def test_ds_cnn_s_matches_mlperf_tiny():
    model = ds_cnn_s()
    assert count_macs(model) == 2_656_768
    # conv 64x1x10x4 + BN; 4 x (dw 64x3x3 + BN, pw 64x64 + BN); fc 64x12 + 12
    assert count_params(model) == 2560 + 128 + 4 * (576 + 128 + 4096 + 128) + 780
    assert peak_activation_bytes(model) == 2 * 64 * 25 * 5
    for x in (torch.zeros(2, 49, 10), torch.zeros(2, 1, 49, 10)):
        assert model(x).shape == (2, 12)


@pytest.mark.parametrize("size,kernel,stride", [(49, 10, 2), (10, 4, 2), (25, 3, 1), (32, 3, 2), (7, 7, 1)])
def test_same_padding_gives_ceil_output(size, kernel, stride):
    pad = same_padding(size, kernel, stride)
    assert (size + 2 * pad - kernel) // stride + 1 == -(-size // stride)


def test_hand_computed_conv_and_linear():
    conv = nn.Conv2d(3, 8, (3, 5), stride=2, padding=1)
    recs = profile(nn.Sequential(conv), (3, 9, 11))
    assert recs[0].output_shape == (8, 5, 5)
    assert recs[0].macs == 8 * 5 * 5 * 3 * 3 * 5
    assert recs[0].params == 8 * 3 * 3 * 5 + 8
    dw = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
    assert layer_macs(dw, (6, 4, 4)) == 6 * 4 * 4 * 9
    assert layer_macs(nn.Linear(10, 3), (3,)) == 30


def test_peak_and_bytes_of_a_small_chain():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 2, 1), nn.Flatten(), nn.Linear(2 * 6 * 6, 5))
    # conv1: 36 in + 144 out; conv2: 144 + 72; linear: 72 + 5  -> peak 216 elements
    assert peak_activation_bytes(model, (1, 6, 6)) == 216
    assert peak_activation_bytes(model, (1, 6, 6), bytes_per_element=4) == 864
    assert deployed_bytes(model, 8, 32) == 36 + 4 * 4 + 8 + 2 * 4 + 72 * 5 + 5 * 4
    assert param_bytes(model, 32) == 4 * count_params(model)
    table = summary(model, (1, 6, 6))
    assert table["MACs"].sum() == count_macs(model, (1, 6, 6))


def test_zoo_models_run_and_differ_in_cost():
    costs = {}
    for name, make in MODEL_ZOO.items():
        model = make().eval()
        assert model(torch.randn(3, 49, 10)).shape == (3, 12)
        costs[name] = (count_params(model), count_macs(model))
    assert costs["dnn"][1] < costs["ds_cnn_s"][1] < costs["small_cnn"][1]
    assert costs["ds_cnn_s"][0] < costs["small_cnn"][0] < costs["dnn"][0]
    assert isinstance(ds_cnn_s(), DSCNN) and isinstance(SmallCNN(), nn.Sequential) and isinstance(DNN(), nn.Sequential)


def test_dscnn_family_is_configurable():
    model = DSCNN(channels=(32, 48, 48), first_kernel=(9, 3), first_stride=(1, 1), dw_kernel=5)
    assert model(torch.zeros(1, 49, 10)).shape == (1, 12)
    assert model.config["channels"] == (32, 48, 48)
