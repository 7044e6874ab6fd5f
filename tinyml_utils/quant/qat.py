"""Quantization-aware training (QAT): fine-tune a trained float model through its fake quantization.

Recipe: fold batch norm, wrap the model in a `FakeQuantModel` (b-bit weights per channel, int8
activations), calibrate the activation ranges on a few hundred training clips, then fine-tune
with the course's training loop (`train.fit`) at a small learning rate. The forward pass sees the
rounding; the backward pass goes straight through it (STE), so the weights learn to sit well on
the grid. During training each activation range follows an exponential moving average of the
batch min/max. The result converts with `convert(..., ranges=...)` (`FakeQuantModel.to_int_model`).

`get_qat_model` caches the fine-tuned models like `train.get_baseline`, so chapters and labs load
them instead of training them again (`prepare` builds them before notebooks run in parallel).
"""
from __future__ import annotations

import time

import numpy as np

from .fakequant import FakeQuantModel

QAT_RECIPE_VERSION = 1  # bump when the recipe changes: cached QAT models are keyed by it
QAT_EPOCHS = (6, 3)     # (student, CI)


def calibration_subset(X: np.ndarray, size: int = 500, seed: int = 0) -> np.ndarray:
    """`size` clips drawn at random (seeded, without replacement) from X, for calibration."""
    size = min(size, len(X))
    return X[np.random.default_rng(seed).choice(len(X), size, replace=False)]


def qat_finetune(model, train: tuple, val: tuple | None = None, weight_bits: int | dict = 8,
                 epochs: int = 3, lr: float = 1e-4, calibration_size: int = 500, seed: int = 0,
                 progress: bool = True) -> tuple[FakeQuantModel, dict]:
    """Fine-tune `model` (left unchanged) with fake quantization; returns (FakeQuantModel in eval mode, history).

    `train` and `val` are (X, y) arrays; the calibration clips come from `train`.
    """
    from ..train import fit

    fq = FakeQuantModel(model, weight_bits=weight_bits)
    fq.calibrate(calibration_subset(train[0], calibration_size, seed))
    history = fit(fq, train, val, epochs=epochs, lr=lr, seed=seed, progress=progress)
    return fq.eval(), history


def get_qat_model(name: str = "ds_cnn_s", weight_bits: int = 8, source: str | None = None,
                  progress: bool = True) -> tuple[FakeQuantModel, dict]:
    """The cached QAT fine-tune of baseline `name` at `weight_bits`-bit weights (int8 activations).

    Trained on first use (seconds to minutes), then loaded. Returns (FakeQuantModel in eval mode,
    info with the recipe, history, and the test accuracy of its integer model).
    """
    from ..cache import load_or_train
    from ..config import at_size, cache_dir, run_tag
    from ..kws_data import data_version, kws_features, resolve_source
    from ..train import get_baseline
    from . import interpreter

    source = resolve_source(source)   # None: the TINYML_DATA switch (and a resolved name in every cache key)

    epochs = at_size(*QAT_EPOCHS)
    baseline, base_info = get_baseline(name, source, progress=progress)
    tag = (f"qat-{name}-w{weight_bits}-{data_version(source)}-e{epochs}-b{base_info['epochs']}"
           f"-r{QAT_RECIPE_VERSION}-{run_tag()}")

    def train():
        feats = kws_features(source)
        t0 = time.perf_counter()
        fq, history = qat_finetune(baseline, feats["train"], feats["val"], weight_bits, epochs, progress=progress)
        seconds = time.perf_counter() - t0
        int_model = fq.to_int_model(feats["test"][0])
        X_test, y_test = feats["test"]
        info = {"name": name, "source": source, "weight_bits": weight_bits, "epochs": epochs,
                "recipe": QAT_RECIPE_VERSION, "baseline_epochs": base_info["epochs"],
                "train_seconds": seconds, "history": history,
                "int_test_acc": float((interpreter.predict(int_model, X_test) == y_test).mean())}
        return fq.state_dict(), info

    def load(state, info):
        fq = FakeQuantModel(baseline, weight_bits=weight_bits)
        fq.load_state_dict(state)
        return fq.eval(), info

    return load_or_train(cache_dir("models") / f"{tag}.pt", train, load)
