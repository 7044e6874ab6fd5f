"""Run size, cache location and seeding: the few settings every notebook shares."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

#: Set TINYML_CI=1 to run every notebook at CI size (less data, fewer epochs). Unset: student size.
CI = os.environ.get("TINYML_CI", "") not in ("", "0")


def at_size(student, ci):
    """Pick a value by run size: `ci` when TINYML_CI=1, else `student`."""
    return ci if CI else student


def cache_dir(*parts: str) -> Path:
    """The course's on-disk cache (datasets, features, trained models); TINYML_CACHE overrides."""
    root = Path(os.environ.get("TINYML_CACHE", Path.home() / ".cache" / "tinyml-from-scratch"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python, NumPy and PyTorch; return a NumPy Generator for explicit use."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


class file_lock:
    """Hold an exclusive lock on `path` (a lock file) so only one process builds a cache entry."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w")
        fcntl.flock(self._file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
