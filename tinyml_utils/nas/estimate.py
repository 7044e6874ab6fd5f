"""Accuracy estimates that fit a CPU: train the supernet once, then score any sub-network in a second.

Training: every mini-batch trains a few feasible sub-networks (their losses are averaged before
one optimiser step): the biggest of several random draws, which keeps the weights that only big
models use in training, and a random one, so the shared weights learn to work in every slice.
Estimating: copy a sub-network out of the supernet, recompute its batch-norm statistics on a few
hundred training clips (the supernet's statistics belong to no sub-network in particular), and
measure its accuracy on held-out clips.
"""
from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import torch
from torch import nn

from ..cache import load_or_train
from ..config import CI, cache_dir, course_seed, run_tag, seed_everything
from ..train import accuracy, batches, one_cycle_adamw, spec_augment
from .costs import Constraints, macs
from .search import sample_feasible
from .space import Arch, DesignSpace, feature_view
from .supernet import Supernet

SUPERNET_VERSION = 2  # bump when the supernet recipe changes: cached supernets are keyed by it


@torch.no_grad()
def calibrate_bn(model: nn.Module, X: np.ndarray) -> nn.Module:
    """Recompute every batch norm's running mean and variance on features X in one batch; eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None          # cumulative average: with one batch, exactly that batch's statistics
    model.train()
    model(torch.from_numpy(X))
    for bn in bns:
        bn.momentum = 0.1           # back to PyTorch's default for anyone who fine-tunes the model
    return model.eval()


def train_supernet(supernet: Supernet, constraints: Constraints, train: tuple, epochs: int = 10,
                   archs_per_step: int = 1, big_first: int = 1, lr: float = 1e-2, batch_size: int = 64,
                   weight_decay: float = 1e-4, seed: int = 0, progress: bool = True) -> dict:
    """Train the shared weights on (X (N, frames, coeffs), y); each step averages the losses of
    `archs_per_step` feasible sub-networks drawn at random. With `big_first` > 1 the first of them
    is the one with the most MACs of `big_first` draws (a cheap form of the "sandwich rule": the
    big sub-networks, which share the most weights, get trained every step). Returns per-epoch loss."""
    from tqdm.auto import tqdm

    rng = seed_everything(seed)
    gen = torch.Generator().manual_seed(course_seed(seed))
    X, y = train
    steps = epochs * ((len(X) + batch_size - 1) // batch_size)
    opt, sched = one_cycle_adamw(supernet, lr, weight_decay, steps)
    history = {"epoch": [], "train_loss": []}
    bar = tqdm(total=steps, desc="supernet", disable=not progress or CI)
    supernet.train()
    for epoch in range(epochs):
        total, count = 0.0, 0
        for xb, yb in batches(X, y, batch_size, rng):
            xb = spec_augment(xb, gen, max_time=min(8, xb.shape[1] // 4), max_freq=min(2, xb.shape[2] // 4))
            archs = [sample_feasible(supernet.space, constraints, rng) for _ in range(archs_per_step)]
            if big_first > 1:
                archs[0] = max((sample_feasible(supernet.space, constraints, rng) for _ in range(big_first)), key=macs)
            loss = sum(nn.functional.cross_entropy(supernet(xb, a), yb) for a in archs) / archs_per_step
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item() * len(yb), count + len(yb)
            bar.update()
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(total / count)
        bar.set_postfix(loss=f"{total / count:.3f}")
    bar.close()
    return history


class AccuracyEstimator:
    """Estimated accuracy of sub-networks of a trained supernet, memoised by architecture.

    `calib_X` (features at the space's resolution) recalibrate batch norm; (`X`, `y`) score.
    `evaluations` counts distinct architectures scored: the search budget.
    """

    def __init__(self, supernet: Supernet, calib_X: np.ndarray, X: np.ndarray, y: np.ndarray):
        self.supernet, self.calib_X, self.X, self.y = supernet, calib_X, X, y
        self.cache: dict[Arch, float] = {}

    @property
    def evaluations(self) -> int:
        return len(self.cache)

    def model(self, arch: Arch) -> nn.Module:
        """The sub-network with the supernet's weights and its own batch-norm statistics."""
        return calibrate_bn(self.supernet.extract(arch), self.calib_X)

    def __call__(self, arch: Arch) -> float:
        if arch not in self.cache:
            self.cache[arch] = accuracy(self.model(arch), self.X, self.y)
        return self.cache[arch]


def supernet_key(space: DesignSpace, constraints: Constraints, epochs: int, seed: int, source: str,
                 archs_per_step: int = 2, big_first: int = 8) -> str:
    """A file name that changes whenever anything that shapes the trained supernet changes."""
    from ..kws_data import data_version

    recipe = json.dumps([repr(space), repr(constraints), epochs, seed, source, archs_per_step, big_first,
                         SUPERNET_VERSION])
    return (f"supernet-{space.name}-{data_version(source)}-e{epochs}-{run_tag()}-"
            f"{hashlib.sha1(recipe.encode()).hexdigest()[:10]}")


def get_supernet(space: DesignSpace, constraints: Constraints, epochs: int, source: str | None = None,
                 seed: int = 0, archs_per_step: int = 2, big_first: int = 8, progress: bool = True):
    """The supernet of `space` trained on `source` with `train_supernet` (two sub-networks per step,
    the first the biggest of 8 draws): trained on first use, then loaded from the cache.
    Returns (supernet in eval mode, info dict)."""
    from ..kws_data import kws_features, resolve_source
    source = resolve_source(source)   # None: the TINYML_DATA switch (and a resolved name in every cache key)

    key = supernet_key(space, constraints, epochs, seed, source, archs_per_step, big_first)

    def train():
        seed_everything(seed)
        supernet = Supernet(space)
        X, y = kws_features(source)["train"]
        X = feature_view(X, space.resolution)
        t0 = time.perf_counter()
        history = train_supernet(supernet, constraints, (X, y), epochs=epochs, archs_per_step=archs_per_step,
                                 big_first=big_first, seed=seed, progress=progress)
        info = {"space": space.name, "constraints": constraints.describe(), "epochs": epochs, "seed": seed,
                "archs_per_step": archs_per_step, "big_first": big_first, "source": source,
                "train_clips": len(X), "train_seconds": time.perf_counter() - t0, "history": history}
        return supernet.state_dict(), info

    def load(state, info):
        seed_everything(seed)  # as before training: callers see the same RNG state whether it trained or not
        supernet = Supernet(space)
        supernet.load_state_dict(state)
        return supernet.eval(), info

    return load_or_train(cache_dir("models") / f"{key}.pt", train, load)
