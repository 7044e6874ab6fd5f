"""The course's pruned models: fixed recipes, run on first use and cached (like `train.get_baseline`).

Fine-tuning is the expensive part of pruning, so these recipes run once (in `./run data`, via
`prepare.py`) and every notebook that needs a pruned model (chapter 2, the final lab) loads it:

* `get_gradual(name)`: gradual magnitude pruning of a baseline through `GRADUAL_LEVELS[name]`
  with one global threshold, fine-tuning after every step; one checkpoint per level.
* `get_channel_pruned(name)`: the L2-smallest channels of every group removed (a physically
  smaller `DSCNN`), then fine-tuned.

Both are seeded and keyed by the baseline's run size and `RECIPE_VERSION`.
"""
from __future__ import annotations

import copy
import time

from torch import nn

from ..cache import load_or_train
from ..config import at_size, cache_dir, run_tag, seed_everything
from ..models import DSCNN
from ..train import BASELINE_EPOCHS, accuracy, fit
from .channels import channels_to_keep, remove_channels
from .schedule import gradual_prune

RECIPE_VERSION = 1  # bump when a recipe below changes: cached models are keyed by it

#: Gradual pruning: the sparsity levels, and the fine-tuning epochs after each level as (student, CI).
GRADUAL_LEVELS = {"ds_cnn_s": (0.3, 0.5, 0.7, 0.85), "small_cnn": (0.5, 0.6, 0.7, 0.75, 0.8, 0.9)}
GRADUAL_EPOCHS = {"ds_cnn_s": ((3, 2), (12, 8), (3, 2), (3, 2)),
                  "small_cnn": ((4, 2), (4, 2), (4, 2), (4, 2), (12, 2), (4, 2))}  # longest at 80 %, the target level
CHANNEL_KEEP = 0.8               # fraction of each channel group kept
CHANNEL_EPOCHS = (8, 8)          # fine-tuning epochs of the smaller model (student, CI): 8 keeps it within 2 pt
LR = 2e-3                        # peak one-cycle learning rate of every fine-tuning run


def gradual_recipe(model: nn.Module, train: tuple, val: tuple, levels, epochs_per_step, lr: float = LR,
                   progress: bool = True):
    """Gradually prune a copy of `model` through `levels` (global threshold, fine-tuning after each
    for `epochs_per_step` epochs: one number, or one per level).

    Returns (one pruned model per level, the per-step history DataFrame).
    """
    pruned, checkpoints = copy.deepcopy(model), []
    _, history = gradual_prune(pruned, train, val, levels, epochs_per_step=epochs_per_step, lr=lr, scheme="global",
                               on_step=lambda step, m, masks: checkpoints.append(copy.deepcopy(m).eval()),
                               progress=progress)
    return checkpoints, history


def channel_recipe(model: DSCNN, train: tuple, val: tuple, keep: float, epochs: int, lr: float = LR):
    """Remove the (1 - keep) L2-smallest channels of every group, then fine-tune the smaller DSCNN.

    Returns (the fine-tuned smaller model, the kept channel indices, validation accuracy right after
    removal, fit's history).
    """
    kept = channels_to_keep(model, keep)
    small = remove_channels(model, kept)
    removed_acc = accuracy(small, *val)
    history = fit(small, train, val, epochs=epochs, lr=lr, progress=False)
    return small.eval(), kept, removed_acc, history


def _tag(kind: str, name: str, source: str, epochs: int) -> str:
    from ..kws_data import data_version

    return (f"pruned-{kind}-{name}-{data_version(source)}-b{at_size(*BASELINE_EPOCHS[name])}-e{epochs}"
            f"-r{RECIPE_VERSION}-{run_tag()}")


def get_gradual(name: str = "ds_cnn_s", source: str | None = None, progress: bool = True):
    """The gradually pruned `name` baseline: (list of models, one per level in eval mode, info dict).

    info holds the recipe, the per-step validation accuracies and each checkpoint's test accuracy.
    """
    from ..kws_data import kws_features, resolve_source
    source = resolve_source(source)   # None: the TINYML_DATA switch (and a resolved name in every cache key)
    from ..train import get_baseline

    if name not in GRADUAL_LEVELS:
        raise KeyError(f"no gradual pruning recipe for {name!r}; recipes exist for {sorted(GRADUAL_LEVELS)}")
    levels, epochs = GRADUAL_LEVELS[name], [at_size(*e) for e in GRADUAL_EPOCHS[name]]
    recipe = "L" + "_".join(f"{level:g}" for level in levels) + "-E" + "_".join(map(str, epochs))
    path = cache_dir("models") / f"{_tag('gradual', name, source, sum(epochs))}-{recipe}.pt"
    baseline, _ = get_baseline(name, source, progress=progress)

    def train():
        seed_everything(0)
        feats = kws_features(source)
        t0 = time.perf_counter()
        models, history = gradual_recipe(baseline, feats["train"], feats["val"], levels, epochs, progress=progress)
        info = {"name": name, "source": source, "levels": list(levels), "epochs_per_step": epochs,
                "lr": LR, "scheme": "global", "recipe": RECIPE_VERSION,
                "train_seconds": time.perf_counter() - t0, "history": history.reset_index().to_dict("list"),
                "test_acc": [accuracy(m, *feats["test"]) for m in models]}
        return [m.state_dict() for m in models], info

    def load(states, info):
        models = []
        for state in states:
            model = copy.deepcopy(baseline)
            model.load_state_dict(state)
            models.append(model.eval())
        return models, info

    return load_or_train(path, train, load)


def get_channel_pruned(name: str = "ds_cnn_s", source: str | None = None, progress: bool = True):
    """The channel-pruned, fine-tuned `name` baseline: (a smaller DSCNN in eval mode, info dict)."""
    from ..kws_data import kws_features, resolve_source
    source = resolve_source(source)   # None: the TINYML_DATA switch (and a resolved name in every cache key)
    from ..train import get_baseline

    epochs = at_size(*CHANNEL_EPOCHS)
    path = cache_dir("models") / f"{_tag('channel', name, source, epochs)}.pt"
    baseline, _ = get_baseline(name, source, progress=progress)
    if not isinstance(baseline, DSCNN):
        raise TypeError(f"channel pruning needs a DSCNN baseline, {name!r} is a {type(baseline).__name__}")

    def train():
        seed_everything(0)
        feats = kws_features(source)
        t0 = time.perf_counter()
        small, kept, removed_acc, history = channel_recipe(baseline, feats["train"], feats["val"],
                                                           CHANNEL_KEEP, epochs)
        info = {"name": name, "source": source, "keep": CHANNEL_KEEP, "epochs": epochs, "lr": LR,
                "recipe": RECIPE_VERSION, "train_seconds": time.perf_counter() - t0,
                "channels": list(small.config["channels"]), "kept": [k.tolist() for k in kept],
                "val_acc_removed": removed_acc, "history": history,
                "val_acc": accuracy(small, *feats["val"]), "test_acc": accuracy(small, *feats["test"])}
        return small.state_dict(), info

    def load(state, info):
        small = DSCNN(**{**baseline.config, "channels": tuple(info["channels"])})
        small.load_state_dict(state)
        return small.eval(), info

    return load_or_train(path, train, load)
