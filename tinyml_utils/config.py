"""Run size, cache location and seeding: the few settings every notebook shares."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

#: Set TINYML_CI=1 to run every notebook at CI size (less data, fewer epochs). Unset: student size.
CI = os.environ.get("TINYML_CI", "") not in ("", "0")


#: TINYML_SEED picks the course's seed (default 0). It enters every seeded training and every
#: seeded draw in the chapters (through `course_seed`), and every model cache key (`run_tag`), so a
#: second seed trains a second, independent set of models. The dataset itself does not change.
SEED = int(os.environ.get("TINYML_SEED", "0"))

#: TINYML_THREADS fixes the number of PyTorch threads for all training (default 1). A parallel
#: reduction sums in an order that depends on the thread count, so the same seed on two machines
#: with different core counts trains the same models only when the thread count is fixed.
THREADS = int(os.environ.get("TINYML_THREADS", "1"))
if SEED < 0 or THREADS < 1:
    raise ValueError(f"TINYML_SEED must be >= 0 and TINYML_THREADS >= 1 (got {SEED} and {THREADS})")


#: The keyword-spotting data sources TINYML_DATA chooses from (see `data_source`).
DATA_SOURCES = ("synthetic", "speech_commands", "speech_commands_dev")


def data_source() -> str:
    """The course's data source, from TINYML_DATA (read at each call; default "synthetic"):

    * "synthetic": the offline espeak-ng data (generated on first use);
    * "speech_commands": Google Speech Commands v0.02 with its official split, downloaded on first
      use, or read from the local folder TINYML_SPEECH_COMMANDS names (see `speech_commands_folder`);
    * "speech_commands_dev": the real-speech subset shipped in the repository (`data/`), offline.

    `kws_data.load_kws()` and `kws_features()` without a source use it, and so do the cache keys.
    """
    source = os.environ.get("TINYML_DATA", "").strip() or "synthetic"
    if source not in DATA_SOURCES:
        raise ValueError(f"TINYML_DATA={source!r} is not a data source; choose one of "
                         f"{', '.join(DATA_SOURCES)} (or leave it unset for synthetic).")
    return source


def speech_commands_folder() -> Path | None:
    """TINYML_SPEECH_COMMANDS: a local Speech Commands folder that source "speech_commands" reads instead
    of downloading (the full v0.02 layout with its split lists, or the 12-class test files); None if unset."""
    folder = os.environ.get("TINYML_SPEECH_COMMANDS", "").strip()
    return Path(folder).expanduser() if folder else None


def course_seed(seed: int = 0) -> int:
    """The seed a call with `seed` really uses: `seed` itself for TINYML_SEED=0, else shifted by 1000 per course seed."""
    return seed + 1000 * SEED


def run_tag() -> str:
    """What every cached model's file name carries besides its recipe: the course seed and thread count."""
    return f"s{SEED}-t{THREADS}"


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
    """Seed Python, NumPy and PyTorch with `course_seed(seed)` and fix PyTorch's thread count
    (TINYML_THREADS); return a NumPy Generator for explicit use."""
    import torch

    torch.set_num_threads(THREADS)
    seed = course_seed(seed)
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
