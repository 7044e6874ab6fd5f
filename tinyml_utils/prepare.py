"""Build the caches the notebooks share, once, before they run in parallel (`./run data`).

Generates the synthetic dataset and its MFCC features, then trains the cached baselines, each
at the run size chosen by TINYML_CI. A second run finds everything cached and takes seconds.
"""
from __future__ import annotations

import time

from .config import CI
from .kws_data import kws_features
from .nas import problem as nas_problem
from .train import get_baseline

#: Baselines that notebooks load; trained here so two notebooks never train the same one at once.
BASELINES = ("ds_cnn_s", "small_cnn", "dnn", "ds_cnn_wide")


def main() -> None:
    t0 = time.perf_counter()
    feats = kws_features("synthetic")
    print(f"[prepare] synthetic data and MFCC features: {sum(len(y) for _, y in feats.values())} clips, "
          f"{time.perf_counter() - t0:.0f} s")
    for name in BASELINES:
        t1 = time.perf_counter()
        _, info = get_baseline(name, progress=False)
        print(f"[prepare] baseline {name} ({'CI' if CI else 'student'} size, {info['epochs']} epochs): "
              f"test accuracy {info['test_acc']:.3f}, {time.perf_counter() - t1:.0f} s")
    from .quant.qat import get_qat_model  # chapter 5 (and the deployment lab) load the QAT DS-CNN-S

    for bits in (8, 4):
        t1 = time.perf_counter()
        _, qat_info = get_qat_model("ds_cnn_s", weight_bits=bits, progress=False)
        print(f"[prepare] QAT ds_cnn_s, {bits}-bit weights ({qat_info['epochs']} epochs): integer test accuracy "
              f"{qat_info['int_test_acc']:.3f}, {time.perf_counter() - t1:.0f} s")
    t1 = time.perf_counter()  # chapter 8 and lab 8 share one NAS supernet
    space, _, info = nas_problem.kws_supernet(progress=False)
    print(f"[prepare] NAS supernet of {space.name} ({info['epochs']} epochs): {time.perf_counter() - t1:.0f} s")
    # The final lab (labs/lab12_final_kws) deploys the channel-pruned DS-CNN-S next to the baseline.
    from .prune.recipes import get_channel_pruned

    t1 = time.perf_counter()
    get_channel_pruned("ds_cnn_s", progress=False)
    print(f"[prepare] channel-pruned ds_cnn_s: {time.perf_counter() - t1:.0f} s")
    from .prune.recipes import GRADUAL_LEVELS, get_gradual  # chapter 2 loads the gradually pruned models

    for name in GRADUAL_LEVELS:
        t1 = time.perf_counter()
        get_gradual(name, progress=False)
        print(f"[prepare] gradually pruned {name}: {time.perf_counter() - t1:.0f} s")


if __name__ == "__main__":
    main()
