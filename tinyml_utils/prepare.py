"""Build the caches the notebooks share, once, before they run in parallel (`./run data`).

Generates the synthetic dataset and its MFCC features, then trains the cached models, each at the
run size chosen by TINYML_CI, for the course seed TINYML_SEED. A second run finds everything cached
and takes seconds.

Every training uses TINYML_THREADS PyTorch threads (default 1), whatever the machine has, so the
models do not depend on its core count. To still use every core, independent trainings run in
parallel worker processes. A job that needs another's model (a fine-tune of the baseline, say)
waits on that model's cache lock, so the order of the jobs changes the time taken, never a model.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

from .config import CI, SEED, THREADS

#: Baselines that notebooks load; trained here so two notebooks never train the same one at once.
BASELINES = ("ds_cnn_s", "small_cnn", "dnn", "ds_cnn_wide")


def jobs() -> list[str]:
    """Every cached model the notebooks load. The DS-CNN-S baseline goes first (four jobs fine-tune
    it), then the jobs that need nothing else, so no worker sits waiting on a lock for long."""
    return ["baseline:ds_cnn_s", "baseline:ds_cnn_wide", "supernet", "baseline:small_cnn", "baseline:dnn",
            "gradual:small_cnn", "qat:8", "channel:ds_cnn_s", "gradual:ds_cnn_s", "qat:4"]


def run_job(job: str) -> str:
    """Train (or load) one cached model; returns a one-line report."""
    t0 = time.perf_counter()
    kind, _, arg = job.partition(":")
    if kind == "baseline":
        from .train import get_baseline

        _, info = get_baseline(arg, progress=False)
        what = f"baseline {arg} ({info['epochs']} epochs): test accuracy {info['test_acc']:.3f}"
    elif kind == "qat":  # chapter 5 and the deployment lab load the QAT DS-CNN-S
        from .quant.qat import get_qat_model

        _, info = get_qat_model("ds_cnn_s", weight_bits=int(arg), progress=False)
        what = f"QAT ds_cnn_s, {arg}-bit weights ({info['epochs']} epochs): integer test accuracy {info['int_test_acc']:.3f}"
    elif kind == "supernet":  # chapter 8 and lab 8 share one NAS supernet
        from .nas import problem as nas_problem

        space, _, info = nas_problem.kws_supernet(progress=False)
        what = f"NAS supernet of {space.name} ({info['epochs']} epochs)"
    elif kind == "channel":  # the final lab deploys the channel-pruned DS-CNN-S next to the baseline
        from .prune.recipes import get_channel_pruned

        _, info = get_channel_pruned(arg, progress=False)
        what = f"channel-pruned {arg}: test accuracy {info['test_acc']:.3f}"
    elif kind == "gradual":  # chapter 2 loads the gradually pruned models
        from .prune.recipes import get_gradual

        get_gradual(arg, progress=False)
        what = f"gradually pruned {arg}"
    else:
        raise ValueError(f"unknown prepare job {job!r}")
    return f"{what}, {time.perf_counter() - t0:.0f} s"


def main() -> None:
    from .kws_data import default_source, kws_features

    t0 = time.perf_counter()
    feats = kws_features()   # the source TINYML_DATA chooses (default: synthetic); the workers inherit it
    print(f"[prepare] {default_source()} data and MFCC features: {sum(len(y) for _, y in feats.values())} clips, "
          f"{time.perf_counter() - t0:.0f} s")
    todo = jobs()
    workers = max(1, min(len(todo), (os.cpu_count() or 1) // THREADS))
    print(f"[prepare] {'CI' if CI else 'student'} size, seed {SEED}, {THREADS} torch thread(s) per training, "
          f"{workers} worker process(es)")
    # spawn, not fork: a forked copy of a process that has already used PyTorch's thread pool can hang.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job): job for job in todo}
        for future in as_completed(futures):
            print(f"[prepare] {future.result()}", flush=True)
    print(f"[prepare] all models ready in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
