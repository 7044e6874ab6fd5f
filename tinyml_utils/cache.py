"""Cache files built once and loaded afterwards: the datasets' waves and features, the trained models.

A cache file cut short (a full disk, a killed process) or damaged must neither load as garbage nor
fail with an error that does not say which file: `load_or_build` loads it, and when that fails it
names the file in a warning, deletes it and builds it again. Writers put a file under its final
name only once it is complete (written to a temporary name, then renamed), so a half-written file
is never mistaken for a finished one.
"""
from __future__ import annotations

import json
import pickle
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .config import file_lock


class CacheRebuiltWarning(UserWarning):
    """A cache file could not be read; it was deleted and built again."""


# What reading a damaged .npz, .pt or .json raises (zipfile, zlib, numpy, torch, pickle, json).
UNREADABLE = (OSError, EOFError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError,
              zipfile.BadZipFile, zlib.error)


def load_or_build(path, build, load, companions=()):
    """`load(path)`; first `build(path)` if the file is missing, or unreadable (warned, deleted with
    its `companions`, rebuilt). One process at a time builds a file (a lock beside it)."""
    path = Path(path)
    with file_lock(path.with_suffix(".lock")):
        if path.exists():
            try:
                return load(path)
            except UNREADABLE as e:
                warnings.warn(f"cache file {path} cannot be read ({type(e).__name__}: {e}); deleting it "
                              "and building it again", CacheRebuiltWarning, stacklevel=2)
                for p in (path, *companions):
                    Path(p).unlink(missing_ok=True)
        build(path)
        try:
            return load(path)
        except UNREADABLE as e:
            raise RuntimeError(f"cache file {path} was just built and still cannot be read ({e}); is the "
                               "disk full?") from e


def save_npz(path: Path, arrays: dict) -> None:
    """Write arrays to `path` (.npz), complete or not at all."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.rename(path)


def load_npz(path: Path) -> dict:
    """Every array of an .npz file, read in full (so a damaged member fails here, by its checksum)."""
    with np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def save_model(path: Path, state, info: dict) -> None:
    """Write a trained model: `state` (torch.save) at `path`, `info` as JSON beside it; `path` last."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    path.with_suffix(".json").write_text(json.dumps(info, indent=1))
    tmp.rename(path)


def load_model(path: Path):
    """(state, info) of a model written by `save_model`."""
    import torch

    return torch.load(path, weights_only=True), json.loads(path.with_suffix(".json").read_text())


def load_or_train(path: Path, train, load):
    """A model cache entry: `train()` -> (state, info) when missing or unreadable; returns `load(state, info)`."""
    return load_or_build(path, lambda p: save_model(p, *train()), lambda p: load(*load_model(p)),
                         companions=[path.with_suffix(".json")])
