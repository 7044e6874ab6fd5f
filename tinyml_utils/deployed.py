"""The one int8 model the course deploys: the trained DS-CNN-S, quantized by one calibration rule.

Chapters 4, 9, 10, 11 and 12, the benchmark and the tests all compare numbers of "the int8
DS-CNN-S"; they are only comparable if it is the same model. The rule is chapter 4's: post-training
quantization with min/max ranges over `CALIBRATION_CLIPS` training clips drawn at random (seeded)
from the whole training split. A random draw matters: the training split is stored grouped by
class, so its first few hundred clips are all one keyword and would calibrate the ranges of one
word only.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

CALIBRATION_CLIPS = 500      # chapter 5 measures that from 64 clips on, the rule barely matters at 8 bits
CALIBRATION_SEED = 0         # the draw is part of the recipe, not of the training seed: the data is fixed


def calibration_clips(X_train: np.ndarray) -> np.ndarray:
    """The deployed model's calibration features: `CALIBRATION_CLIPS` clips of X_train, seeded."""
    from .quant.qat import calibration_subset

    return calibration_subset(X_train, CALIBRATION_CLIPS, seed=CALIBRATION_SEED)


@lru_cache(maxsize=4)
def _int8_baseline(name: str, source: str):
    from .kws_data import kws_features
    from .quant.convert import convert
    from .train import get_baseline

    model, _ = get_baseline(name, source, progress=False)
    return convert(model, calibration_clips(kws_features(source)["train"][0]), name=name)


def get_int8_baseline(name: str = "ds_cnn_s", source: str | None = None):
    """The course's deployed int8 model (an IntModel): the cached float baseline `name`, calibrated
    by the one rule above. Converted once per process; the same call returns the same object, so
    treat it as read-only."""
    from .kws_data import resolve_source
    source = resolve_source(source)   # None: the TINYML_DATA switch (and a resolved name in every cache key)
    return _int8_baseline(name, source)
