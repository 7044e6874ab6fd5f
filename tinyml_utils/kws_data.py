"""One loader for keyword-spotting data, from two sources with the same on-disk layout.

* ``"synthetic"``: the course's offline data, spoken by espeak-ng (see `kws_synth`). Generated on
  first use (about 30 s) and cached.
* ``"speech_commands"``: Google Speech Commands v0.02, downloaded on first use (2.3 GB, needs
  internet) and read with its official `validation_list.txt` / `testing_list.txt` split.

Both give the standard 12 classes: `_silence_`, `_unknown_` and the ten keywords. The loader never
swaps one source for the other: a failed download is an error, not a quiet fallback.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import CLIP_SAMPLES, REPLACE_FILE, AudioFileError, pad_or_crop, read_wav, to_int16
from .cache import load_npz, load_or_build, save_npz
from .config import cache_dir, file_lock
from .kws_synth import KEYWORDS, SynthConfig, generate

CLASSES = ("_silence_", "_unknown_") + KEYWORDS
SOURCES = ("synthetic", "speech_commands")
SPLITS = ("train", "val", "test")
# The official archive over https (download.tensorflow.org is this Cloud Storage bucket). Its size
# and SHA-256 as TensorFlow Datasets publishes them (tensorflow_datasets/url_checksums/
# speech_commands.txt); torchaudio's SPEECHCOMMANDS checks the same SHA-256.
SPEECH_COMMANDS_URL = "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SPEECH_COMMANDS_BYTES = 2_428_923_189
SPEECH_COMMANDS_SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
DOWNLOAD_TIMEOUT = 60  # seconds a stalled connection may stay silent before the download fails
COMPLETE = "COMPLETE"  # written last into an unpacked dataset folder: without it, unpack again


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


def dataset_name(source: str) -> str:
    """The versioned name of a source's dataset (its cache folder), e.g. 'synthetic-869ae0409c'."""
    if source == "synthetic":
        return SynthConfig().key()  # changes with the generator's recipe (kws_synth.GENERATOR_VERSION)
    if source == "speech_commands":
        return "speech_commands_v0.02"
    raise ValueError(f"unknown data source {source!r}; choose one of {SOURCES}")


def data_version(source: str) -> str:
    """Everything about the input data a trained model depends on: the dataset's version and the
    MFCC front end's, e.g. 'synthetic-869ae0409c-fe1'. Every cached model's key includes it."""
    from . import mfcc

    return f"{dataset_name(source)}-fe{mfcc.FRONT_END_VERSION}"


def dataset_root(source: str) -> Path:
    """Where a source's files live (generated or downloaded on first use)."""
    name = dataset_name(source)  # an unknown source fails here, before anything is created
    root = cache_dir("data") / name
    if source == "synthetic":
        with file_lock(root.with_suffix(".lock")):
            return generate(root)
    return download_speech_commands(root)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, size: int, sha256: str) -> None:
    """Download `url` to `dest` through `dest`.partial, checking its size and SHA-256 before the rename."""
    partial = dest.with_name(dest.name + ".partial")
    print(f"Downloading {url} ({size / 1e9:.1f} GB) ...")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(partial, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
    except OSError as e:  # URLError, timeouts and refused connections are all OSErrors
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"Could not download Speech Commands v0.02 from {url} ({e}). Without internet, use "
                           "source='synthetic' (the course's offline data), or download the archive "
                           f"elsewhere and put it at {dest}.") from e
    problem = _archive_problem(partial, size, sha256)
    if problem:
        partial.unlink()
        raise RuntimeError(f"The download of {url} is damaged ({problem}); it was deleted. Run again to "
                           "download it again.")
    partial.rename(dest)


def _archive_problem(archive: Path, size: int, sha256: str) -> str | None:
    """Why `archive` is not the expected file (wrong size or SHA-256), or None."""
    got = archive.stat().st_size
    if got != size:
        return f"{got:,} bytes, expected {size:,}: cut short?"
    digest = _sha256(archive)
    return None if digest == sha256 else f"SHA-256 {digest}, expected {sha256}"


def download_speech_commands(root: Path, url: str = SPEECH_COMMANDS_URL, size: int = SPEECH_COMMANDS_BYTES,
                             sha256: str = SPEECH_COMMANDS_SHA256) -> Path:
    """Download (checked), then unpack Speech Commands v0.02 into `root` once; returns `root`.

    The archive is kept beside `root`. An archive of the wrong size or checksum is downloaded again;
    an unpacking that did not finish (no COMPLETE marker) is done again from the start.
    """
    if (root / COMPLETE).exists():
        return root
    archive = root.with_name(root.name + ".tar.gz")
    with file_lock(root.with_name(root.name + ".lock")):
        if (root / COMPLETE).exists():  # another process finished it while we waited
            return root
        if archive.exists():
            problem = _archive_problem(archive, size, sha256)
            if problem:
                print(f"{archive} is damaged ({problem}); downloading it again")
                archive.unlink()
        if not archive.exists():
            _fetch(url, archive, size, sha256)
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        for name in ("validation_list.txt", "testing_list.txt"):
            if not (partial / name).exists():
                raise RuntimeError(f"{archive} has no {name}: it is not the Speech Commands archive")
        (partial / COMPLETE).write_text("ok\n")
        shutil.rmtree(root, ignore_errors=True)  # an unpacking from an older version of this code
        partial.rename(root)
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


def _read_source(root: Path, source: str) -> dict:
    """read_layout with the source's settings; a bad clip's error says how to get it back."""
    real = source == "speech_commands"
    try:
        return read_layout(root, unknown_fraction=0.1 if real else None, silence_fraction=0.1)
    except AudioFileError as e:  # a clip deleted from a finished dataset must not just go missing
        if real:
            fix = (f"Delete the folder {root} and load the data again: it is unpacked again from the "
                   "archive beside it (checked, and downloaded again if damaged).")
        else:
            fix = "Delete it and load the data again: a missing synthetic clip is spoken again."
        raise AudioFileError(str(e).replace(REPLACE_FILE, fix)) from e


def load_kws(source: str = "synthetic") -> KWSData:
    """Load a keyword-spotting source (generating or downloading it on first use)."""
    root = dataset_root(source)

    def build(path):
        splits = _read_source(root, source)
        save_npz(path, {f"{s}_{k}": getattr(splits[s], k) for s in SPLITS for k in ("waves", "labels", "files")})

    def load(path):
        z = load_npz(path)
        return {s: KWSSplit(z[f"{s}_waves"], z[f"{s}_labels"], z[f"{s}_files"].tolist()) for s in SPLITS}

    splits = load_or_build(cache_dir("data") / f"{root.name}-waves.npz", build, load)
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

    def build(path):
        data = load_kws(source)
        arrays = {}
        for s in SPLITS:
            arrays[f"{s}_X"] = mfcc_batched(data.split(s).waves)
            arrays[f"{s}_y"] = data.split(s).labels
        save_npz(path, arrays)

    def load(path):
        z = load_npz(path)
        return {s: (z[f"{s}_X"], z[f"{s}_y"]) for s in SPLITS}

    return load_or_build(cache_dir("features") / f"{root.name}-mfcc-v{FRONT_END_VERSION}.npz", build, load)
