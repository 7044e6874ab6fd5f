"""Reading a Speech Commands folder into train/val/test clips: the layouts, their splits, their identity.

Two layouts are read, each from WAV files in class folders or from `<class>.tar.xz` archives of them:

* the official full layout (every word in its own folder, `_background_noise_/`, and the split
  lists `validation_list.txt` / `testing_list.txt`; a clip in neither list is a training clip);
* the official 12-class test-set layout ("Speech Commands Test Files": the ten keywords,
  `_unknown_` and `_silence_` folders, no lists): every clip of it is a test clip.

`content_key` names a folder by what is in it (the clips' paths and sizes, the lists, how they are
read), so a changed list or an added clip never reuses a cache built from the old contents.
"""
from __future__ import annotations

import hashlib
import lzma
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import CLIP_SAMPLES, REPLACE_FILE, AudioFileError, pad_or_crop, read_wav, to_int16
from .kws_synth import KEYWORDS

CLASSES = ("_silence_", "_unknown_") + KEYWORDS
SPLITS = ("train", "val", "test")
LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}
NOISE = "_background_noise_"
LAYOUT_VERSION = 1  # how a folder is read into splits; part of every real dataset's cache key


@dataclass
class KWSSplit:
    """The clips of one split: waves (N, 16000) int16, labels (N,) int64 indices into CLASSES."""
    waves: np.ndarray
    labels: np.ndarray
    files: list[str]

    def __len__(self) -> int:
        return len(self.labels)


class DataLayoutError(ValueError):
    """A dataset folder that cannot be read into the three splits (and what to do about it)."""


def label_of(folder: str) -> int:
    """Class index of a word folder: a keyword, `_silence_`, or else `_unknown_`."""
    return CLASSES.index(folder) if folder in CLASSES else CLASSES.index("_unknown_")


def speaker_of(rel: str) -> str | None:
    """Speaker id of a clip path: the name's last `_` part before `_nohash_` ('yes/0a7c2a8d_nohash_0.wav'
    and '_unknown_/bed_0a7c2a8d_nohash_1.wav.wav' are both '0a7c2a8d'); None for silence cuts."""
    name = rel.rsplit("/", 1)[-1]
    return name.split("_nohash_")[0].rsplit("_", 1)[-1] if "_nohash_" in name else None


class ClipStore:
    """The clip files of a dataset folder: WAVs in class folders, or `<class>.tar.xz` archives of them."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.archives = sorted(self.root.glob("*.tar.xz"))
        self._members: dict[str, bytes] | None = None
        self._archive_of: dict[str, str] = {}

    def _unpacked(self) -> dict[str, bytes]:
        if self._members is None:
            self._members = {}
            for archive in self.archives:
                try:
                    with tarfile.open(archive, "r:xz") as tar:
                        for m in tar:
                            if m.isfile() and m.name.endswith(".wav"):
                                rel = m.name.removeprefix("./")
                                self._members[rel], self._archive_of[rel] = tar.extractfile(m).read(), archive.name
                except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as e:
                    raise AudioFileError(f"{archive}: not a readable .tar.xz archive ({e}). {REPLACE_FILE}") from e
        return self._members

    def files(self) -> list[str]:
        """Every clip's path relative to the root ('yes/x.wav'), in the order the folder sorts them."""
        if self.archives:
            return sorted((r for r in self._unpacked() if r.count("/") == 1), key=lambda r: r.split("/"))
        return [f"{p.parent.name}/{p.name}" for p in sorted(self.root.glob("*/*.wav"))]

    def classes(self) -> set[str]:
        if self.archives:
            return {a.name.removesuffix(".tar.xz") for a in self.archives}
        return {p.name for p in self.root.iterdir() if p.is_dir()}

    def read(self, rel: str) -> np.ndarray:
        if self.archives:
            data = self._unpacked()[rel]
            return read_wav(f"{self.root / self._archive_of[rel]}: {rel}", data=data)
        return read_wav(self.root / rel)

    def fingerprint(self) -> list[str]:
        """What the clips are, cheaply: each archive's SHA-256, or each WAV's path and size."""
        if self.archives:
            return [f"{a.name} {hashlib.sha256(a.read_bytes()).hexdigest()}" for a in self.archives]
        out = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            with os.scandir(folder) as entries:
                out += sorted(f"{folder.name}/{e.name} {e.stat().st_size}" for e in entries
                              if e.name.endswith(".wav") and not e.name.startswith("."))
        return out


def layout_kind(root: Path) -> str:
    """'lists' (the full layout with its two split lists) or 'test_set' (the 12-class test files)."""
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"{root} is not a folder. Point it at a Speech Commands folder (the full v0.02 "
                              "layout with validation_list.txt and testing_list.txt, or the 12-class test files).")
    present = [name for name in LISTS.values() if (root / name).exists()]
    if len(present) == 2:
        return "lists"
    if present:
        missing = next(n for n in LISTS.values() if n not in present)
        raise DataLayoutError(f"{root} has {present[0]} but no {missing}: the full Speech Commands layout needs "
                              "both split lists (an empty file is a valid empty list).")
    if {"_silence_", "_unknown_"} <= ClipStore(root).classes():
        return "test_set"
    raise DataLayoutError(f"{root} is not a Speech Commands folder: it has no validation_list.txt / "
                          "testing_list.txt (the full v0.02 layout) and no `_silence_` and `_unknown_` class "
                          "folders (the 12-class test files, read as a test set).")


def content_key(root: Path, settings: str = "") -> str:
    """10 hex digits naming what a folder holds and how it is read: its layout, the clip files, the
    split lists and `settings` (the reader's options). Any change gives a new key."""
    root = Path(root)
    kind = layout_kind(root)
    digest = hashlib.sha256(f"layout-v{LAYOUT_VERSION} {kind} {settings}\n".encode())
    for name in LISTS.values():
        if (root / name).exists():
            digest.update(name.encode() + b"\n" + (root / name).read_bytes() + b"\n")
    digest.update("\n".join(ClipStore(root).fingerprint()).encode())
    return digest.hexdigest()[:10]


def assign_splits(root: Path, store: ClipStore, kind: str) -> dict[str, list[str]]:
    """Each split's clip paths: by the lists ('lists'), or all in test ('test_set'). No noise files."""
    files = {s: [] for s in SPLITS}
    held_out = {s: set((root / name).read_text().split()) for s, name in LISTS.items()} if kind == "lists" else {}
    for rel in store.files():
        if rel.startswith(NOISE + "/"):
            continue
        if kind == "test_set":
            files["test"].append(rel)
        else:
            files["val" if rel in held_out["val"] else "test" if rel in held_out["test"] else "train"].append(rel)
    if kind == "lists":
        for split, rels in files.items():
            if not rels:
                raise DataLayoutError(_empty_split_message(root, split))
    return files


def _empty_split_message(root: Path, split: str) -> str:
    if split == "train":
        how = (f"every clip of {root} is listed in {LISTS['val']} or {LISTS['test']}, or there are no clips: "
               "leave some clips out of both lists (they are the training clips)")
    else:
        how = (f"no clip of {root} is listed in {LISTS[split]}: list some there, one path per line relative to "
               "the folder, like 'yes/0a7c2a8d_nohash_0.wav' (and keep each speaker in one split)")
    return f"The {split} split of {root} is empty: {how}."


def _cut_silence(noise: list[np.ndarray], n: int, split: str, rng: np.random.Generator, root: Path):
    """`n` one-second cuts of background noise at random volumes, with their names."""
    if n and not noise:
        raise DataLayoutError(f"{root} has no `_silence_` folder and no {NOISE}/*.wav to cut silence clips from: "
                              f"add the {NOISE} folder of Speech Commands.")
    waves, names = [], []
    for i in range(n):
        clip = noise[rng.integers(len(noise))]
        start = rng.integers(0, len(clip) - CLIP_SAMPLES)
        waves.append(to_int16(clip[start:start + CLIP_SAMPLES] * rng.uniform(0, 1)))
        names.append(f"_silence_/{split}_{i}")
    return waves, names


def _subsample_unknown(rels, labels, fraction, rng):
    unknown = [i for i, lab in enumerate(labels) if lab == CLASSES.index("_unknown_")]
    keep_unknown = set(rng.permutation(unknown)[: int(fraction * (len(labels) - len(unknown)))].tolist())
    keep = [i for i in range(len(rels)) if labels[i] != CLASSES.index("_unknown_") or i in keep_unknown]
    return [rels[i] for i in keep], [labels[i] for i in keep]


def read_layout(root: Path, unknown_fraction: float | None, silence_fraction: float, seed: int = 0):
    """Read a Speech Commands folder (either layout, folders or archives) into a dict of KWSSplit.

    `unknown_fraction` subsamples `_unknown_` clips to that fraction of each split's keyword
    clips (the real dataset has far more other words than keywords); None keeps them all.
    Without a `_silence_` class (the full dataset), `silence_fraction` of each split is cut from
    `_background_noise_` at random volumes, as in the TensorFlow speech-commands recipe.
    A test-set folder gives empty train and val splits; an empty split of a listed folder is an error.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    rng = np.random.default_rng(seed)
    store = ClipStore(root)
    files = assign_splits(root, store, layout_kind(root))
    has_silence = "_silence_" in store.classes()
    noise = [] if has_silence else [store.read(r).astype(np.float64) for r in store.files()
                                    if r.startswith(NOISE + "/")]
    out = {}
    for split, rels in files.items():
        labels = [label_of(r.split("/")[0]) for r in rels]
        if unknown_fraction is not None:
            rels, labels = _subsample_unknown(rels, labels, unknown_fraction, rng)
        waves = [pad_or_crop(store.read(r)) for r in tqdm(rels, desc=f"Reading {split} clips", leave=False,
                                                          disable=len(rels) < 20000)]
        if not has_silence:
            cuts, names = _cut_silence(noise, int(silence_fraction * len(rels)), split, rng, root)
            waves, rels = waves + cuts, rels + names
            labels = labels + [CLASSES.index("_silence_")] * len(cuts)
        stacked = np.stack(waves).astype(np.int16) if waves else np.zeros((0, CLIP_SAMPLES), np.int16)
        out[split] = KWSSplit(stacked, np.array(labels, dtype=np.int64), rels)
    return out
