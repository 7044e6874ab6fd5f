"""Mixed precision (model bytes, sensitivity, greedy assignment) and the QAT fine-tuning loop."""
import numpy as np
import pytest
import torch

from tinyml_utils.models import DSCNN, ds_cnn_s
from tinyml_utils.quant import interpreter as interp
from tinyml_utils.quant.convert import convert
from tinyml_utils.quant.mixed import assign_bits, float_model_bytes, layer_sensitivity, model_bytes, weight_counts
from tinyml_utils.quant.qat import calibration_subset, qat_finetune


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 3, (n, 49, 10)).astype(np.float32), rng.integers(0, 12, n)


def test_model_bytes_counts_packed_weights_and_per_channel_arrays():
    model = ds_cnn_s().eval()
    X, _ = data(8)
    counts = weight_counts(model)
    channels = sum(m.weight.shape[0] for m in model.modules() if hasattr(m, "weight") and m.weight.dim() in (2, 4))
    int8 = convert(model, X)
    assert model_bytes(int8) == int8.weight_bytes() == sum(counts.values()) + 12 * channels
    assert float_model_bytes(model) == 4 * (sum(counts.values()) + channels)
    int4 = convert(model, X, weight_bits=4)
    assert model_bytes(int4) == sum((n * 4 + 7) // 8 for n in counts.values()) + 12 * channels
    mixed = convert(model, X, weight_bits={"pw1": 2})
    assert model_bytes(mixed) == model_bytes(int8) - counts["pw1"] * 6 // 8


def test_assign_bits_is_greedy_within_the_budget():
    counts = {"a": 100, "b": 1000, "c": 10}
    sens = {"reference": {"loss": 1.0}, ("a", 4): {"kl": 0.01, "loss": 1.01}, ("a", 2): {"kl": 0.5, "loss": 1.5},
            ("b", 4): {"kl": 0.02, "loss": 0.9}, ("b", 2): {"kl": 0.05, "loss": 1.05},
            ("c", 4): {"kl": 0.3, "loss": 1.3}, ("c", 2): {"kl": 1.0, "loss": 2.0}}
    assert assign_bits(sens, counts, 0.0) == {"a": 8, "b": 8, "c": 8}
    assert assign_bits(sens, counts, 0.1) == {"a": 4, "b": 2, "c": 8}
    assert assign_bits(sens, counts, 10.0) == {"a": 2, "b": 2, "c": 2}
    assert assign_bits(sens, counts, 0.0, metric="loss") == {"a": 8, "b": 4, "c": 8}  # b at 4 bits: loss fell
    with pytest.raises(ValueError, match="no entry"):
        assign_bits({"reference": {"loss": 1.0}}, counts, 0.1)


def test_layer_sensitivity_has_every_layer_and_width():
    torch.manual_seed(0)
    model = DSCNN(channels=(8, 8)).eval()
    X, y = data(32)
    sens = layer_sensitivity(model, X, X, y, bits=(4, 2), progress=False)
    assert set(sens) == {"reference"} | {(l, b) for l in ("conv1", "dw1", "pw1", "fc") for b in (4, 2)}
    assert set(sens["reference"]) == {"loss", "accuracy"}
    assert all(v["kl"] >= -1e-6 and 0 <= v["accuracy"] <= 1 for k, v in sens.items() if k != "reference")
    assert sum(sens[(l, 2)]["kl"] for l in ("conv1", "pw1")) > 0


def test_qat_finetune_returns_a_convertible_model():
    torch.manual_seed(0)
    model = DSCNN(channels=(8, 8)).eval()
    X, y = data(128)
    fq, history = qat_finetune(model, (X, y), (X, y), weight_bits=4, epochs=1, calibration_size=32, progress=False)
    assert not fq.training and len(history["val_acc"]) == 1
    int_model = fq.to_int_model(X)
    assert all(l.attrs.get("weight_bits") == 4 for l in int_model.layers if "weight" in l.arrays)
    assert interp.predict(int_model, X).shape == (128,)
    assert len(calibration_subset(X, 32)) == 32 and len(calibration_subset(X, 1000)) == 128
