"""One loader for keyword-spotting data, from two sources with the same on-disk layout.

* ``"synthetic"``: the course's offline data, spoken by espeak-ng (see `kws_synth`). Generated on
  first use (about 30 s) and cached.
* ``"speech_commands"``: Google Speech Commands v0.02, downloaded on first use (2.3 GB, needs
  internet) and read with its official `validation_list.txt` / `testing_list.txt` split.

Both give the standard 12 classes: `_silence_`, `_unknown_` and the ten keywords. The loader never
swaps one source for the other: a failed download is an error, not a quiet fallback.
"""
from __future__ import annotations

import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import CLIP_SAMPLES, pad_or_crop, read_wav, to_int16
from .config import cache_dir, file_lock
from .kws_synth import KEYWORDS, SynthConfig, generate

CLASSES = ("_silence_", "_unknown_") + KEYWORDS
SOURCES = ("synthetic", "speech_commands")
SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SPLITS = ("train", "val", "test")


@dataclass
class KWSSplit:
    """The clips of one split: waves (N, 16000) int16, labels (N,) int64 indices into CLASSES."""
    waves: np.ndarray
    labels: np.ndarray
    files: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class KWSData:
    """A dataset: its source (say it beside every number), the classes and three splits."""
    source: str
    description: str
    classes: tuple[str, ...]
    train: KWSSplit
    val: KWSSplit
    test: KWSSplit

    def split(self, name: str) -> KWSSplit:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def dataset_root(source: str) -> Path:
    """Where a source's files live (generated or downloaded on first use)."""
    if source == "synthetic":
        root = cache_dir("data") / SynthConfig().key()
        with file_lock(root.with_suffix(".lock")):
            return generate(root)
    if source == "speech_commands":
        return download_speech_commands(cache_dir("data") / "speech_commands_v0.02")
    raise ValueError(f"unknown data source {source!r}; choose one of {SOURCES}")


def download_speech_commands(root: Path) -> Path:
    """Download and unpack Speech Commands v0.02 into `root` once; returns `root`."""
    if (root / "testing_list.txt").exists():
        return root
    archive = root.with_suffix(".tar.gz")
    try:
        if not archive.exists():
            print(f"Downloading {SPEECH_COMMANDS_URL} (2.3 GB) ...")
            urllib.request.urlretrieve(SPEECH_COMMANDS_URL, archive.with_suffix(".partial"))
            archive.with_suffix(".partial").rename(archive)
    except OSError as e:
        raise RuntimeError(f"Could not download Speech Commands v0.02 from {SPEECH_COMMANDS_URL} ({e}). "
                           "Without internet, use source='synthetic' (the course's offline data), or "
                           f"download the archive elsewhere and unpack it into {root}.") from e
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root


def label_of(folder: str) -> int:
    """Class index of a word folder: a keyword, `_silence_`, or else `_unknown_`."""
    return CLASSES.index(folder) if folder in CLASSES else CLASSES.index("_unknown_")


def read_layout(root: Path, unknown_fraction: float | None, silence_fraction: float, seed: int = 0):
    """Read a Speech Commands folder into the three splits, dict of KWSSplit.

    `unknown_fraction` subsamples `_unknown_` clips to that fraction of each split's keyword
    clips (the real dataset has far more other words than keywords); None keeps them all.
    Without a `_silence_` folder (the real dataset), `silence_fraction` of each split is cut from
    `_background_noise_` at random volumes, as in the TensorFlow speech-commands recipe.
    """
    rng = np.random.default_rng(seed)
    held_out = {name: set((root / f"{name}_list.txt").read_text().split()) for name in ("validation", "testing")}
    files = {s: [] for s in SPLITS}
    for wav in sorted(root.glob("*/*.wav")):
        folder = wav.parent.name
        if folder == "_background_noise_":
            continue
        rel = f"{folder}/{wav.name}"
        split = "val" if rel in held_out["validation"] else "test" if rel in held_out["testing"] else "train"
        files[split].append(rel)
    noise = [read_wav(p).astype(np.float64) for p in sorted((root / "_background_noise_").glob("*.wav"))]
    out = {}
    for split, rels in files.items():
        labels = [label_of(r.split("/")[0]) for r in rels]
        if unknown_fraction is not None:
            unknown = [i for i, lab in enumerate(labels) if lab == CLASSES.index("_unknown_")]
            known = len(labels) - len(unknown)
            keep_unknown = set(rng.permutation(unknown)[: int(unknown_fraction * known)].tolist())
            keep = [i for i in range(len(rels)) if labels[i] != CLASSES.index("_unknown_") or i in keep_unknown]
            rels, labels = [rels[i] for i in keep], [labels[i] for i in keep]
        waves = [pad_or_crop(read_wav(root / r)) for r in rels]
        if not (root / "_silence_").exists():
            for i in range(int(silence_fraction * len(rels))):
                clip = noise[rng.integers(len(noise))]
                start = rng.integers(0, len(clip) - CLIP_SAMPLES)
                waves.append(to_int16(clip[start:start + CLIP_SAMPLES] * rng.uniform(0, 1)))
                rels.append(f"_silence_/{split}_{i}")
                labels.append(CLASSES.index("_silence_"))
        out[split] = KWSSplit(np.stack(waves).astype(np.int16), np.array(labels, dtype=np.int64), rels)
    return out


def load_kws(source: str = "synthetic") -> KWSData:
    """Load a keyword-spotting source (generating or downloading it on first use)."""
    root = dataset_root(source)
    cache = cache_dir("data") / f"{root.name}-waves.npz"
    with file_lock(cache.with_suffix(".lock")):
        if not cache.exists():
            real = source == "speech_commands"
            splits = read_layout(root, unknown_fraction=0.1 if real else None, silence_fraction=0.1)
            np.savez(cache.with_suffix(".tmp.npz"), **{f"{s}_{k}": getattr(splits[s], k)
                                                      for s in SPLITS for k in ("waves", "labels", "files")})
            cache.with_suffix(".tmp.npz").rename(cache)
    with np.load(cache) as z:
        splits = {s: KWSSplit(z[f"{s}_waves"], z[f"{s}_labels"], z[f"{s}_files"].tolist()) for s in SPLITS}
    if source == "synthetic":
        description = ("synthetic keyword-spotting data (espeak-ng voices, generated offline; test voices "
                       "unseen in training)")
    else:
        description = "Google Speech Commands v0.02 (official validation/testing lists)"
    return KWSData(source, description, CLASSES, splits["train"], splits["val"], splits["test"])


def kws_features(source: str = "synthetic") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MFCC features per split: {"train": (X (N, 49, 10) float32, y (N,) int64), "val": ..., "test": ...}."""
    from .mfcc import FRONT_END_VERSION, mfcc_batched

    root = dataset_root(source)
    cache = cache_dir("features") / f"{root.name}-mfcc-v{FRONT_END_VERSION}.npz"
    with file_lock(cache.with_suffix(".lock")):
        if not cache.exists():
            data = load_kws(source)
            arrays = {}
            for s in SPLITS:
                arrays[f"{s}_X"] = mfcc_batched(data.split(s).waves)
                arrays[f"{s}_y"] = data.split(s).labels
            np.savez(cache.with_suffix(".tmp.npz"), **arrays)
            cache.with_suffix(".tmp.npz").rename(cache)
    with np.load(cache) as z:
        return {s: (z[f"{s}_X"], z[f"{s}_y"]) for s in SPLITS}
