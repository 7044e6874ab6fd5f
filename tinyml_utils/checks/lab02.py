"""Checks for lab 2, pruning. Each compares the student's function with torch.nn.utils.prune or the package."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from . import CheckFailed, expect_close, expect_equal, passed
from .. import prune
from ..models import DSCNN, SmallCNN
from ..standins import random_dscnn, toy_kws_data


def check_magnitude_mask(magnitude_mask) -> None:
    """magnitude_mask(weight, sparsity) -> bool mask keeping the largest |weight|."""
    torch.manual_seed(0)
    for shape in [(64, 64, 1, 1), (64, 1, 10, 4), (12, 64), (5,)]:
        weight = torch.randn(shape)
        for sparsity in (0.0, 0.3, 0.5, 0.9, 1.0):
            holder = nn.Module()
            holder.weight = nn.Parameter(weight.clone())
            torch_prune.l1_unstructured(holder, "weight", amount=sparsity)
            got = magnitude_mask(weight.clone(), sparsity)
            if not isinstance(got, torch.Tensor) or got.shape != weight.shape:
                raise CheckFailed(f"magnitude_mask should return a tensor shaped {tuple(weight.shape)}, got "
                                  f"{type(got).__name__} {tuple(getattr(got, 'shape', ()))}")
            if not torch.equal(got.bool(), holder.weight_mask.bool()):
                raise CheckFailed(f"magnitude_mask(shape {shape}, sparsity {sparsity}) keeps {int(got.bool().sum())} "
                                  f"weights; torch.nn.utils.prune.l1_unstructured keeps "
                                  f"{int(holder.weight_mask.sum())}, and they differ in "
                                  f"{int((got.bool() != holder.weight_mask.bool()).sum())} places")
    passed("magnitude_mask equals torch.nn.utils.prune.l1_unstructured for 4 shapes and 5 sparsities")


def check_model_sparsity(model_sparsity) -> None:
    """model_sparsity(model) -> fraction of zeros among the Conv2d and Linear weights."""
    for model in (random_dscnn(), SmallCNN()):
        expect_close("model_sparsity of a dense model", model_sparsity(model), 0.0, abs_=1e-12)
        for s in (0.3, 0.75):
            pruned = prune.pruned_copy(model, prune.layer_masks(model, s))
            with torch.no_grad():  # zeros in batch norm and biases must not count
                for m in pruned.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.bias.zero_()
            expect_close(f"model_sparsity of {type(model).__name__} pruned to {s} per layer",
                         model_sparsity(pruned), prune.sparsity(pruned), abs_=1e-9)
    passed("model_sparsity counts zeros of conv and linear weights only")


def check_global_masks(global_masks) -> None:
    """global_masks(model, sparsity) -> {weight name: mask} with one threshold for all layers."""
    model = random_dscnn()
    for s in (0.2, 0.6, 0.9):
        got = global_masks(model, s)
        theirs = copy.deepcopy(model)
        names = list(prune.prunable_weights(model))
        torch_prune.global_unstructured([(getattr(theirs, n.split(".")[0]), "weight") for n in names],
                                        pruning_method=torch_prune.L1Unstructured, amount=s)
        expect_equal(f"global_masks({s}) keys", sorted(got), sorted(names))
        for n in names:
            expected = getattr(theirs, n.split(".")[0]).weight_mask.bool()
            if not torch.equal(got[n].bool(), expected):
                raise CheckFailed(f"global_masks({s})[{n!r}] differs from torch.nn.utils.prune.global_unstructured "
                                  f"in {int((got[n].bool() != expected).sum())} places")
    passed("global_masks equals torch.nn.utils.prune.global_unstructured")


def check_sensitivity_scan(sensitivity_scan) -> None:
    """sensitivity_scan(model, X, y, sparsities) -> {weight name: [accuracy at each sparsity]}."""
    X, y = toy_kws_data(128)
    model = random_dscnn((8, 8))
    before = copy.deepcopy(model.state_dict())
    sparsities = [0.0, 0.5, 0.9]
    got = sensitivity_scan(model, X, y, sparsities)
    expected = prune.sensitivity_scan(model, X, y, sparsities, progress=False)
    for name in expected.index:
        if name not in got:
            raise CheckFailed(f"sensitivity_scan: no entry for {name!r} (expected one per prunable weight)")
        for s, acc in zip(sparsities, got[name]):
            expect_close(f"sensitivity_scan[{name!r}] at sparsity {s}", acc, expected.loc[name, s], abs_=1e-9)
    for k, v in model.state_dict().items():
        if not torch.equal(v, before[k]):
            raise CheckFailed(f"sensitivity_scan changed the model ({k}): restore each layer after pruning it")
    passed("sensitivity_scan matches prune.sensitivity_scan and leaves the model unchanged")


def check_channels_to_keep(channels_to_keep) -> None:
    """channels_to_keep(weight, n_keep) -> sorted LongTensor of the n_keep output channels with the largest L2 norm."""
    torch.manual_seed(1)
    for shape, n_keep in [((64, 64, 1, 1), 51), ((64, 1, 10, 4), 32), ((16, 8, 3, 3), 1), ((12, 64), 12)]:
        weight = torch.randn(shape)
        holder = nn.Module()
        holder.weight = nn.Parameter(weight.clone())
        torch_prune.ln_structured(holder, "weight", amount=shape[0] - n_keep, n=2, dim=0)
        expected = holder.weight_mask.flatten(1).all(1).nonzero().flatten()
        got = torch.as_tensor(channels_to_keep(weight, n_keep))
        expect_equal(f"channels_to_keep(shape {shape}, {n_keep})", got.tolist(), expected.tolist())
    passed("channels_to_keep picks the channels torch.nn.utils.prune.ln_structured(n=2, dim=0) keeps, in order")


def check_remove_channels(remove_channels) -> None:
    """remove_channels(model, kept) -> a smaller DSCNN computing what the channel-masked model computes."""
    x = torch.randn(16, 49, 10)
    for channels, keep in [((16, 12, 10), 0.5), ((8, 8, 8, 8), [8, 3, 5, 1]), ((64, 64, 64, 64, 64), 0.8)]:
        model = random_dscnn(channels)
        kept = prune.channels_to_keep(model, keep)
        small = remove_channels(copy.deepcopy(model), kept)
        if not isinstance(small, DSCNN):
            raise CheckFailed(f"remove_channels should return a DSCNN, got {type(small).__name__}")
        expect_equal(f"remove_channels({channels}) channels", tuple(small.config["channels"]),
                     tuple(len(k) for k in kept))
        masked = prune.pruned_copy(model, prune.channel_masks(model, kept)).eval()
        with torch.no_grad():
            difference = (small.eval()(x) - masked(x)).abs().max().item()
        if difference > 1e-4:
            raise CheckFailed(f"remove_channels({channels}, keep {keep}): outputs differ from the channel-masked "
                              f"model by up to {difference:.3g}; check the slicing of each producer's rows, its "
                              "batch norm (weight, bias, running_mean, running_var), the depthwise filters and "
                              "the next layer's input columns")
    passed("remove_channels builds smaller DSCNNs that compute exactly what the masked models compute")


def check_sparse_bytes(sparse_bytes) -> None:
    """sparse_bytes(weight) -> {"dense": ..., "csr": ..., "bitmask": ...} bytes of an int8 tensor."""
    rng = np.random.default_rng(2)
    for shape, density in [((64, 64, 1, 1), 0.5), ((64, 1, 10, 4), 0.1), ((12, 300), 0.3), ((8, 8), 1.0), ((8, 8), 0.0)]:
        values = rng.integers(-127, 128, shape) * (rng.random(shape) < density)
        weight = torch.from_numpy(values.astype(np.int8))
        got = sparse_bytes(weight)
        for fmt in prune.FORMATS:
            if fmt not in got:
                raise CheckFailed(f"sparse_bytes should return a dict with keys {prune.FORMATS}, got {sorted(got)}")
            expect_equal(f"sparse_bytes(shape {shape}, {int((weight != 0).sum())} nonzeros)[{fmt!r}]", got[fmt],
                         prune.tensor_bytes(weight, fmt))
    passed("sparse_bytes matches the dense, CSR and bitmask byte counts (incl. 2-byte indices beyond 256 columns)")


def check_fine_tune_with_masks(fine_tune_with_masks) -> None:
    """fine_tune_with_masks(model, masks, X, y, steps, lr) trains while the masked weights stay zero."""
    X, y = toy_kws_data(256)
    model = random_dscnn((8, 8)).train()
    masks = prune.global_masks(model, 0.6)
    before = copy.deepcopy(model)
    prune.apply_masks(before, masks)
    loss_before = nn.functional.cross_entropy(before.eval()(torch.from_numpy(X)), torch.from_numpy(y)).item()
    # Watch every training forward pass: the pruned weights must already be zero there, not only at
    # the end (a loop that trains freely and masks once afterwards ends with zeros too).
    params, seen = dict(model.named_parameters()), {"forwards": 0, "unmasked": 0}

    def watch(module, inputs):
        if module.training:
            seen["forwards"] += 1
            seen["unmasked"] += any(bool((params[n][~m] != 0).any()) for n, m in masks.items())

    hook = model.register_forward_pre_hook(watch)
    try:
        fine_tune_with_masks(model, masks, X, y, steps=40, lr=1e-2)
    finally:
        hook.remove()
    if seen["forwards"] == 0:
        raise CheckFailed("the model never ran in training mode: call model.train() before the loop")
    if seen["unmasked"]:
        raise CheckFailed(f"in {seen['unmasked']} of {seen['forwards']} training steps the pruned weights were not "
                          "zero: apply the masks once before training and after every optimizer step")
    for name, mask in masks.items():
        if (params[name][~mask] != 0).any():
            raise CheckFailed(f"after fine-tuning, {int((params[name][~mask] != 0).sum())} pruned weights of {name} "
                              "are not zero: apply the masks after every optimizer step")
        if torch.equal(params[name][mask], dict(before.named_parameters())[name][mask]):
            raise CheckFailed(f"the kept weights of {name} did not change: did the optimizer run?")
    loss_after = nn.functional.cross_entropy(model.eval()(torch.from_numpy(X)), torch.from_numpy(y)).item()
    if not loss_after < loss_before:
        raise CheckFailed(f"the training loss did not fall ({loss_before:.3f} -> {loss_after:.3f})")
    passed(f"fine_tune_with_masks keeps {prune.mask_sparsity(masks):.0%} of the weights at zero while the loss "
           f"falls from {loss_before:.2f} to {loss_after:.2f}")
