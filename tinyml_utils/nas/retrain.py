"""Train an architecture from scratch: the ground truth that accuracy estimates are judged by.

Every model gets the course's recipe (`train.fit`, seeded) on the features at its own resolution,
optionally on a random subset of the training clips, and is cached on disk like the baselines.
DS-CNN-S with the baseline's recipe *is* the cached baseline (same seed, same construction, same
loop), so it is loaded from `train.get_baseline` instead of being trained a second time.
"""
from __future__ import annotations

import hashlib
import json
import time

import numpy as np

from ..cache import load_or_train
from ..config import at_size, cache_dir, run_tag, seed_everything
from ..train import BASELINE_EPOCHS, RECIPE_VERSION, accuracy, fit, get_baseline
from .space import Arch, ds_cnn_s_arch, feature_view


def subset_indices(n: int, size: int | None, seed: int = 0) -> np.ndarray:
    """`size` random indices of range(n) (all of them, in order, when size is None)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


def is_baseline_recipe(arch: Arch, epochs: int, train_subset: int | None, seed: int) -> bool:
    """True when (arch, recipe) is exactly how `get_baseline("ds_cnn_s")` trains at this run size."""
    return (arch == ds_cnn_s_arch() and epochs == at_size(*BASELINE_EPOCHS["ds_cnn_s"])
            and train_subset is None and seed == 0)


def train_arch(arch: Arch, epochs: int, source: str | None = None, train_subset: int | None = None,
               seed: int = 0, progress: bool = True):
    """`arch` trained from scratch for `epochs` on `source` (cached). Returns (model in eval mode, info)
    with test and validation accuracy on the features at the architecture's resolution."""
    from ..kws_data import data_version, kws_features, resolve_source
    source = resolve_source(source)   # None: the TINYML_DATA switch (and a resolved name in every cache key)

    if is_baseline_recipe(arch, epochs, train_subset, seed):
        model, info = get_baseline("ds_cnn_s", source, progress=progress)
        return model, {**info, "arch": arch.short(), "train_clips": None, "from": "get_baseline"}
    recipe = json.dumps([repr(arch), epochs, source, train_subset, seed, RECIPE_VERSION])
    key = f"arch-{data_version(source)}-e{epochs}-{run_tag()}-{hashlib.sha1(recipe.encode()).hexdigest()[:12]}"

    def train():
        seed_everything(seed)
        model = arch.build()
        feats = {k: (feature_view(X, arch.resolution), y) for k, (X, y) in kws_features(source).items()}
        X, y = feats["train"]
        idx = subset_indices(len(X), train_subset, seed)
        t0 = time.perf_counter()
        history = fit(model, (X[idx], y[idx]), feats["val"], epochs=epochs, seed=seed, progress=progress)
        info = {"arch": arch.short(), "epochs": epochs, "source": source, "train_clips": len(idx),
                "seed": seed, "train_seconds": time.perf_counter() - t0, "history": history,
                "val_acc": accuracy(model, *feats["val"]), "test_acc": accuracy(model, *feats["test"]),
                "from": "train_arch"}
        return model.state_dict(), info

    def load(state, info):
        seed_everything(seed)  # as before training: callers see the same RNG state whether it trained or not
        model = arch.build()
        model.load_state_dict(state)
        return model.eval(), info

    return load_or_train(cache_dir("models") / f"{key}.pt", train, load)
