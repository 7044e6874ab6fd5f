"""Fine-grained magnitude pruning: masks from thresholds, and keeping them through fine-tuning.

A *mask* is a bool tensor shaped like the parameter it belongs to: True keeps a value, False
forces it to zero. Masks travel in a dict keyed by parameter name, as in `model.state_dict()`
(e.g. ``"pw1.weight"``), so the same machinery also serves channel pruning, which masks batch-norm
parameters too.

Magnitude pruning removes the weights with the smallest absolute values. To prune a fraction
`s` of `n` weights we remove k = round(s * n) of them (the count `torch.nn.utils.prune` uses):
the threshold is the k-th smallest |w|, and the mask keeps |w| > threshold.
"""
from __future__ import annotations

import torch
from torch import nn

PRUNABLE = (nn.Conv2d, nn.Linear)  # layers whose weights we prune; biases and batch norm are kept


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weight tensors of every Conv2d and Linear layer, keyed "layer.weight" (state_dict names)."""
    return {f"{name}.weight": m.weight for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def _check_sparsity(sparsity: float) -> None:
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"sparsity must be a fraction between 0 and 1 (e.g. 0.5 for half the weights), "
                         f"got {sparsity!r}")


def num_to_prune(numel: int, sparsity: float) -> int:
    """How many of `numel` values a `sparsity` removes: round(sparsity * numel), as torch.nn.utils.prune."""
    _check_sparsity(sparsity)
    return round(float(sparsity) * numel)


def magnitude_threshold(values: torch.Tensor, k: int) -> float:
    """The k-th smallest |value| (k >= 1): pruning everything at or below it removes k values (no ties)."""
    return float(values.detach().abs().flatten().kthvalue(k).values)


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Bool mask, shaped like `weight`, keeping the (1 - sparsity) fraction of largest |weight|."""
    k = num_to_prune(weight.numel(), sparsity)
    if k == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    return weight.detach().abs() > magnitude_threshold(weight, k)


def layer_masks(model: nn.Module, sparsity) -> dict[str, torch.Tensor]:
    """Per-layer thresholds: every prunable weight loses its own `sparsity` fraction.

    `sparsity` is one fraction for all layers, or a dict {weight name: fraction}; layers missing
    from the dict are not pruned.
    """
    weights = prunable_weights(model)
    per_layer = sparsity if isinstance(sparsity, dict) else {name: sparsity for name in weights}
    unknown = set(per_layer) - set(weights)
    if unknown:
        raise KeyError(f"no prunable weight named {sorted(unknown)}; the model's are {sorted(weights)}")
    return {name: magnitude_mask(weights[name], s) for name, s in per_layer.items()}


def global_masks(model: nn.Module, sparsity: float, names=None) -> dict[str, torch.Tensor]:
    """One threshold for all prunable weights (or those in `names`): the smallest |w| model-wide go."""
    weights = prunable_weights(model)
    names = list(weights) if names is None else list(names)
    everything = torch.cat([weights[n].detach().abs().flatten() for n in names])
    k = num_to_prune(everything.numel(), sparsity)
    threshold = magnitude_threshold(everything, k) if k else -1.0
    return {n: weights[n].detach().abs() > threshold for n in names}


def _parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Zero, in place, every parameter value whose mask is False; returns the model."""
    params = _parameters(model)
    for name, mask in masks.items():
        if name not in params:
            raise KeyError(f"mask for {name!r}, but the model has no such parameter")
        if mask.shape != params[name].shape:
            raise ValueError(f"mask for {name!r} is shaped {tuple(mask.shape)}, the parameter "
                             f"{tuple(params[name].shape)}")
        params[name].mul_(mask.to(params[name].dtype))
    return model


class MaskKeeper:
    """Keep masked values at zero while a model trains: before every forward pass each masked
    parameter is multiplied by its mask, so an optimizer step that moved a pruned weight is undone
    before the weight is used. Works with any training loop (e.g. `train.fit`).

    Use as a context manager, or call `remove()`; both zero the masked values a last time.
    """

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]):
        self.model, self.masks = model, masks
        modules = dict(model.named_modules())
        by_module: dict[str, list[tuple[str, torch.Tensor]]] = {}
        for name, mask in masks.items():
            module_name, _, param = name.rpartition(".")
            by_module.setdefault(module_name, []).append((param, mask))
        self._hooks = [modules[m].register_forward_pre_hook(self._hook(pairs)) for m, pairs in by_module.items()]
        apply_masks(model, masks)

    @staticmethod
    def _hook(pairs):
        def hook(module, inputs):
            with torch.no_grad():
                for param, mask in pairs:
                    getattr(module, param).mul_(mask.to(getattr(module, param).dtype))
        return hook

    def remove(self) -> None:
        apply_masks(self.model, self.masks)
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def count_zeros(model: nn.Module, names=None) -> tuple[int, int]:
    """(zero values, all values) over the prunable weights (or the parameters named in `names`)."""
    params = _parameters(model)
    tensors = [params[n] for n in names] if names is not None else list(prunable_weights(model).values())
    return sum(int((t == 0).sum()) for t in tensors), sum(t.numel() for t in tensors)


def sparsity(model: nn.Module, names=None) -> float:
    """Fraction of prunable weights (Conv2d and Linear weights) that are exactly zero."""
    zeros, total = count_zeros(model, names)
    return zeros / total


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """{weight name: fraction of zeros} for every prunable weight."""
    return {n: float((w == 0).float().mean()) for n, w in prunable_weights(model).items()}


def mask_sparsity(masks: dict[str, torch.Tensor]) -> float:
    """Fraction of False (pruned) entries over all masks together."""
    return sum(int((~m).sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
