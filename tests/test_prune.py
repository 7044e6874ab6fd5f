"""tinyml_utils.prune: masks agree with torch.nn.utils.prune, channel removal is exact, byte counts are real."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.utils.prune as torch_prune
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import needs_arm
from tinyml_utils import profiler, prune
from tinyml_utils.config import at_size
from tinyml_utils.models import DSCNN, SmallCNN, ds_cnn_s
from tinyml_utils.train import accuracy
from tinyml_utils.standins import random_dscnn, toy_kws_data as toy_data


# --- magnitude masks -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 1, 10, 4), (64, 64, 1, 1), (12, 64), (7,)])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.73, 0.9, 1.0])
def test_magnitude_mask_equals_torch_l1_unstructured(shape, sparsity):
    torch.manual_seed(1)
    weight = torch.randn(shape)
    holder = nn.Module()
    holder.weight = nn.Parameter(weight.clone())
    torch_prune.l1_unstructured(holder, "weight", amount=sparsity)
    mask = prune.magnitude_mask(weight, sparsity)
    assert mask.dtype == torch.bool and torch.equal(mask, holder.weight_mask.bool())
    assert int((~mask).sum()) == prune.num_to_prune(weight.numel(), sparsity)


def test_threshold_is_the_kth_smallest_magnitude():
    values = torch.tensor([0.5, -3.0, 0.1, 2.0, -0.2])
    assert prune.magnitude_threshold(values, 1) == pytest.approx(0.1)
    assert prune.magnitude_threshold(values, 3) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_sparsity_says_what_is_expected(bad):
    with pytest.raises(ValueError, match="between 0 and 1"):
        prune.magnitude_mask(torch.randn(10), bad)


def test_layer_masks_per_layer_and_unknown_names():
    model = random_dscnn()
    masks = prune.layer_masks(model, {"pw1.weight": 0.5, "fc.weight": 0.25})
    assert set(masks) == {"pw1.weight", "fc.weight"}
    assert prune.mask_sparsity({"pw1.weight": masks["pw1.weight"]}) == 0.5
    assert set(prune.layer_masks(model, 0.3)) == set(prune.prunable_weights(model))
    with pytest.raises(KeyError, match="no prunable weight"):
        prune.layer_masks(model, {"pw9.weight": 0.5})


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.8])
def test_global_masks_equal_torch_global_unstructured(sparsity):
    model = random_dscnn()
    ours = prune.global_masks(model, sparsity)
    theirs = copy.deepcopy(model)
    params = [(getattr(theirs, name.split(".")[0]), "weight") for name in prune.prunable_weights(theirs)]
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    for name, mask in ours.items():
        assert torch.equal(mask, getattr(theirs, name.split(".")[0]).weight_mask.bool()), name


def test_apply_masks_and_sparsity_counts():
    model = random_dscnn()
    masks = prune.layer_masks(model, 0.5)
    pruned = prune.pruned_copy(model, masks)
    assert prune.sparsity(model) == 0.0, "pruned_copy leaves the original alone"
    zeros, total = prune.count_zeros(pruned)
    assert total == sum(w.numel() for w in prune.prunable_weights(model).values())
    assert zeros / total == prune.sparsity(pruned) == pytest.approx(prune.mask_sparsity(masks))
    assert prune.layer_sparsity(pruned)["pw1.weight"] == 0.5
    with pytest.raises(ValueError, match="shaped"):
        prune.apply_masks(model, {"pw1.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(KeyError, match="no such parameter"):
        prune.apply_masks(model, {"nothing.weight": torch.ones(3, dtype=torch.bool)})


def test_mask_keeper_holds_zeros_through_training():
    X, y = toy_data()
    model = DSCNN(channels=(8, 8))
    masks = prune.layer_masks(model, 0.6)
    history = prune.fine_tune(model, masks, (X, y), (X, y), epochs=2, lr=1e-2)
    assert len(history["val_acc"]) == 2
    for name, mask in masks.items():
        weight = dict(model.named_parameters())[name]
        assert (weight[~mask] == 0).all() and (weight[mask] != 0).all(), name
    # the hooks are gone after fine-tuning: a manual change survives a forward pass
    with torch.no_grad():
        model.pw1.weight.fill_(1.0)
    model(torch.zeros(1, 49, 10))
    assert (model.pw1.weight == 1.0).all()


# --- choosing sparsities -----------------------------------------------------------------------

def test_sensitivity_scan_leaves_the_model_alone():
    X, y = toy_data()
    model = random_dscnn()
    before = copy.deepcopy(model.state_dict())
    scan = prune.sensitivity_scan(model, X, y, [0.0, 0.5, 1.0], progress=False)
    assert list(scan.index) == list(prune.prunable_weights(model)) and list(scan.columns) == [0.0, 0.5, 1.0]
    assert (scan[0.0] == accuracy(model, X, y)).all()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_sparsities_from_scan_and_overall_sparsity():
    scan = pd.DataFrame({0.5: [0.90, 0.70], 0.8: [0.89, 0.60]}, index=["pw1.weight", "dw1.weight"])
    chosen = prune.sparsities_from_scan(scan, reference_accuracy=0.90, max_drop=0.015)
    assert chosen == {"pw1.weight": 0.8, "dw1.weight": 0.0}
    model = random_dscnn()
    n_pw1, n_all = model.pw1.weight.numel(), sum(w.numel() for w in prune.prunable_weights(model).values())
    assert prune.overall_sparsity(model, chosen) == pytest.approx(round(0.8 * n_pw1) / n_all)


def test_allocate_sparsities_gives_robust_layers_more():
    model = random_dscnn((16, 12, 10))
    names = list(prune.prunable_weights(model))
    columns = [0.0, 0.5, 0.9]
    rows = {n: [0.9, 0.89 - 0.1 * (i % 3), 0.85 - 0.3 * (i % 3)] for i, n in enumerate(names)}  # i % 3 == 0: robust
    scan = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    alloc = prune.allocate_sparsities(scan, 0.9, model, target=0.5)
    assert prune.overall_sparsity(model, alloc) == pytest.approx(0.5, abs=1e-3)  # hits the target
    robust = [alloc[n] for i, n in enumerate(names) if i % 3 == 0]
    fragile = [alloc[n] for i, n in enumerate(names) if i % 3 == 2]
    assert min(robust) > max(fragile)
    with pytest.raises(ValueError, match="cannot reach"):
        prune.allocate_sparsities(scan, 0.9, model, target=0.99, max_sparsity=0.9)


def test_cubic_schedule():
    s = prune.cubic_schedule(0.8, 4)
    assert len(s) == 4 and s[-1] == pytest.approx(0.8)
    steps = np.diff([0.0] + s)
    assert (steps > 0).all() and (np.diff(steps) < 0).all(), "big steps first, small steps last"
    with pytest.raises(ValueError, match="at least 1"):
        prune.cubic_schedule(0.5, 0)


def test_masks_for_schemes():
    model = random_dscnn()
    assert prune.mask_sparsity(prune.masks_for(model, 0.5, "global")) == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ValueError, match="one sparsity"):
        prune.masks_for(model, {"pw1.weight": 0.5}, "global")
    with pytest.raises(ValueError, match="'layer' or 'global'"):
        prune.masks_for(model, 0.5, "random")


def test_gradual_prune_reaches_the_target_and_keeps_nested_masks():
    X, y = toy_data()
    model = DSCNN(channels=(8, 8))
    seen = []
    masks, history = prune.gradual_prune(model, (X, y), (X, y), prune.cubic_schedule(0.6, 3), epochs_per_step=1,
                                         lr=1e-2, on_step=lambda step, m, masks: seen.append(prune.sparsity(m)),
                                         progress=False)
    assert list(history.index) == [1, 2, 3] and seen == list(history["sparsity"])
    assert history["sparsity"].is_monotonic_increasing
    assert prune.sparsity(model) == pytest.approx(0.6, abs=0.01)
    assert prune.mask_sparsity(masks) == pytest.approx(prune.sparsity(model))


# --- channels ------------------------------------------------------------------------------------

def test_channel_groups_of_ds_cnn_s():
    groups = prune.channel_groups(ds_cnn_s())
    assert [g.producer for g in groups] == ["conv1", "pw1", "pw2", "pw3", "pw4"]
    assert [g.depthwise for g in groups] == ["dw1", "dw2", "dw3", "dw4", None]
    assert [g.consumer for g in groups] == ["pw1", "pw2", "pw3", "pw4", "fc"]
    with pytest.raises(TypeError, match="DSCNN"):
        prune.channel_groups(SmallCNN())


@pytest.mark.parametrize("keep", [0.5, 0.8])
def test_channels_to_keep_equal_torch_ln_structured(keep):
    model = random_dscnn((16, 12, 10))
    kept = prune.channels_to_keep(model, keep)
    for group, idx, norms in zip(prune.channel_groups(model), kept, prune.channel_norms(model)):
        weight = getattr(model, group.producer).weight
        assert torch.allclose(norms, weight.detach().flatten(1).pow(2).sum(1).sqrt())
        holder = copy.deepcopy(getattr(model, group.producer))
        torch_prune.ln_structured(holder, "weight", amount=group.width - len(idx), n=2, dim=0)
        assert torch.equal(holder.weight_mask.flatten(1).all(1).nonzero().flatten(), idx), group.producer


def test_channels_to_keep_checks_its_input():
    model = random_dscnn((16, 12, 10))
    assert [len(k) for k in prune.channels_to_keep(model, [4, 3, 2])] == [4, 3, 2]
    with pytest.raises(ValueError, match="3 channel groups"):
        prune.channels_to_keep(model, [4, 3])
    with pytest.raises(ValueError, match="cannot keep 20 of 16"):
        prune.channels_to_keep(model, [20, 3, 2])
    with pytest.raises(ValueError, match=r"fraction in \(0, 1\]"):
        prune.channels_to_keep(model, 0.0)


@pytest.mark.parametrize("channels,keep", [((16, 12, 10), 0.5), ((64, 64, 64, 64, 64), 0.8), ((8, 8), [1, 8])])
def test_removed_channels_compute_what_the_masked_model_computes(channels, keep):
    model = random_dscnn(channels)
    kept = prune.channels_to_keep(model, keep)
    masked = prune.pruned_copy(model, prune.channel_masks(model, kept)).eval()
    small = prune.remove_channels(model, kept).eval()
    assert isinstance(small, DSCNN) and small.config["channels"] == tuple(len(k) for k in kept)
    x = torch.randn(8, 49, 10)
    with torch.no_grad():
        assert torch.allclose(masked(x), small(x), atol=1e-5)
    assert profiler.count_params(small) < profiler.count_params(model) or keep == [8, 8]
    nonzero = sum(int((p != 0).sum()) for p in masked.parameters())
    assert nonzero == sum(int((p != 0).sum()) for p in small.parameters()), "zeroed = removed"


def test_channel_masks_cover_the_whole_channel():
    model = random_dscnn((16, 12, 10))
    kept = prune.channels_to_keep(model, 0.5)
    masks = prune.channel_masks(model, kept)
    dropped = sorted(set(range(16)) - set(kept[0].tolist()))
    for name in ("conv1.weight", "conv1_bn.weight", "conv1_bn.bias", "dw1.weight", "dw1_bn.weight", "dw1_bn.bias"):
        assert not masks[name][dropped].any() and masks[name][kept[0]].all(), name
    assert not masks["pw1.weight"][:, dropped].any()
    assert not masks["fc.weight"][:, sorted(set(range(10)) - set(kept[2].tolist()))].any()


# --- storage formats --------------------------------------------------------------------------

def test_format_bytes_by_hand():
    assert prune.format_bytes("dense", 64, 64, 1000) == 4096
    assert prune.format_bytes("csr", 64, 64, 1000) == 1000 + 1000 + 65 * 2
    assert prune.format_bytes("bitmask", 64, 64, 1000) == 512 + 1000
    assert prune.format_bytes("csr", 12, 300, 10) == 10 + 20 + 13 * 2, "2-byte column indices beyond 256 columns"
    assert prune.format_bytes("bitmask", 64, 64, 1000, value_bits=4) == 512 + 500
    with pytest.raises(ValueError, match="one of"):
        prune.format_bytes("coo", 2, 2, 1)
    with pytest.raises(ValueError, match="nnz"):
        prune.format_bytes("csr", 2, 2, 5)


def test_break_even_sparsities():
    # bitmask: 1 bit per weight costs what 1/8 of the int8 values save
    assert prune.break_even_sparsity("bitmask", 64, 64) == pytest.approx(1 / 8, abs=1 / 4096)
    # CSR with 1-byte indices doubles each kept value: about half the weights must go
    csr = prune.break_even_sparsity("csr", 64, 64)
    assert 0.5 < csr < 0.52
    assert prune.format_bytes("csr", 64, 64, round((1 - csr) * 4096)) < 4096


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 20), cols=st.integers(1, 300), density=st.floats(0, 1), seed=st.integers(0, 1000))
def test_encoders_round_trip_and_match_the_byte_counts(rows, cols, density, seed):
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (rows, cols)).astype(np.int8) * (rng.random((rows, cols)) < density)
    weight = torch.from_numpy(weight.astype(np.int8))
    csr, bitmask = prune.to_csr(weight), prune.to_bitmask(weight)
    assert np.array_equal(prune.from_csr(csr), weight.numpy())
    assert np.array_equal(prune.from_bitmask(bitmask), weight.numpy())
    assert prune.formats.encoded_bytes(csr) == prune.tensor_bytes(weight, "csr")
    assert prune.formats.encoded_bytes(bitmask) == prune.tensor_bytes(weight, "bitmask")
    best = prune.cheapest_format(weight)
    assert prune.tensor_bytes(weight, best) == min(prune.tensor_bytes(weight, f) for f in prune.FORMATS)


def test_model_bytes_dense_equal_the_profiler():
    model = random_dscnn()
    assert prune.model_weight_bytes(model, "dense") == profiler.deployed_bytes(model, 8, 32)
    pruned = prune.pruned_copy(model, prune.layer_masks(model, 0.9))
    assert prune.model_weight_bytes(pruned, "bitmask") < prune.model_weight_bytes(pruned, "dense")
    cheapest = prune.model_weight_bytes(pruned, None, fmt_for=lambda name, w: prune.cheapest_format(w))
    assert cheapest <= min(prune.model_weight_bytes(pruned, f) for f in prune.FORMATS)


# --- cached recipes ----------------------------------------------------------------------------

def test_recipes_cache_their_models(monkeypatch, tmp_path):
    from tinyml_utils.prune import recipes

    X, y = toy_data(64)
    feats = {"train": (X, y), "val": (X, y), "test": (X, y)}
    baseline = random_dscnn((8, 8, 8))
    monkeypatch.setenv("TINYML_CACHE", str(tmp_path))
    monkeypatch.setattr("tinyml_utils.kws_data.kws_features", lambda source: feats)
    monkeypatch.setattr("tinyml_utils.train.get_baseline", lambda name, source, progress=True: (baseline, {}))
    monkeypatch.setitem(recipes.GRADUAL_LEVELS, "ds_cnn_s", (0.3, 0.6))
    monkeypatch.setitem(recipes.GRADUAL_EPOCHS, "ds_cnn_s", ((1, 1), (2, 1)))
    monkeypatch.setattr(recipes, "CHANNEL_EPOCHS", (1, 1))

    models, info = recipes.get_gradual("ds_cnn_s", progress=False)
    assert [round(prune.sparsity(m), 2) for m in models] == [0.3, 0.6]
    assert info["epochs_per_step"] == [at_size(1, 1), at_size(2, 1)]
    assert info["test_acc"] == [accuracy(m, X, y) for m in models]
    again, _ = recipes.get_gradual("ds_cnn_s", progress=False)  # loaded from the cache
    for a, b in zip(models, again):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))

    small, info = recipes.get_channel_pruned("ds_cnn_s", progress=False)
    assert small.config["channels"] == (6, 6, 6) and info["test_acc"] == accuracy(small, X, y)
    assert len(list(tmp_path.glob("models/pruned-*.pt"))) == 2
    with pytest.raises(KeyError, match="no gradual pruning recipe"):
        recipes.get_gradual("dnn")


# --- instruction counts on the emulated Cortex-M4 -------------------------------------------------

@needs_arm
def test_kernels_agree_with_numpy_and_sparse_kernels_skip_zeros():
    from tinyml_utils.prune import sparse_on_device

    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (9, 40)).astype(np.int8)              # odd positions, c_in % 32 != 0
    dense = rng.integers(-127, 128, (7, 40)).astype(np.int8)          # odd c_out
    dense[dense == 0] = 1
    sparse = dense * (rng.random(dense.shape) < 0.1)
    table = sparse_on_device.kernel_instructions([dense, sparse], x)  # raises if any output is wrong
    assert list(table["nonzeros"]) == [280, int((sparse != 0).sum())]
    assert (table.loc[0, "dense_ref"] - table.loc[1, "dense_ref"]) <= 80, "dense loops ignore zeros"
    assert table.loc[1, "csr"] < table.loc[0, "csr"] / 3 and table.loc[1, "bitmask"] < table.loc[0, "bitmask"] / 2
    assert table.loc[0, "dense_simd"] < table.loc[0, "dense_ref"]
    with pytest.raises(ValueError, match="multiple of 4"):
        sparse_on_device.program([np.zeros((2, 6), np.int8)], np.zeros((1, 6), np.int8))
