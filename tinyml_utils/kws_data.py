"""One loader for keyword-spotting data, from three sources with the same on-disk layout.

* ``"synthetic"``: the course's offline data, spoken by espeak-ng (see `kws_synth`). Generated on
  first use (about 30 s) and cached.
* ``"speech_commands"``: Google Speech Commands v0.02, downloaded on first use (2.3 GB, needs
  internet) and read with its official `validation_list.txt` / `testing_list.txt` split; or, when
  TINYML_SPEECH_COMMANDS names a local folder, read from there (the full layout with its lists, or
  the 12-class test files, which are all test clips).
* ``"speech_commands_dev"``: real speech shipped in the repository (`data/speech_commands_dev`): a
  subset of the Speech Commands v0.02 test files, split by speaker. Offline.

TINYML_DATA picks the source that `load_kws()` and `kws_features()` use without an argument
(`default_source`). All give the standard 12 classes: `_silence_`, `_unknown_` and the ten
keywords. The loader never swaps one source for another: a failed download is an error, not a
quiet fallback. How a folder is read into splits is in `kws_layout`.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import REPLACE_FILE, AudioFileError
from .cache import load_npz, load_or_build, save_npz
from .config import DATA_SOURCES, cache_dir, data_source, file_lock, speech_commands_folder
from .kws_layout import (CLASSES, SPLITS, ClipStore, DataLayoutError, KWSSplit, content_key, label_of,  # noqa: F401
                         layout_kind, read_layout, speaker_of)
from .kws_synth import SynthConfig, generate

SOURCES = DATA_SOURCES
#: The real-speech subset shipped with the course (a clone of the repository has it; a wheel does not).
DEV_FOLDER = Path(__file__).resolve().parents[1] / "data" / "speech_commands_dev"
DOWNLOADED = "speech_commands_v0.02"  # the downloaded dataset's name: its identity is the checked archive
# The official archive over https (download.tensorflow.org is this Cloud Storage bucket). Its size
# and SHA-256 as TensorFlow Datasets publishes them (tensorflow_datasets/url_checksums/
# speech_commands.txt); torchaudio's SPEECHCOMMANDS checks the same SHA-256.
SPEECH_COMMANDS_URL = "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SPEECH_COMMANDS_BYTES = 2_428_923_189
SPEECH_COMMANDS_SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
DOWNLOAD_TIMEOUT = 60  # seconds a stalled connection may stay silent before the download fails
COMPLETE = "COMPLETE"  # written last into an unpacked dataset folder: without it, unpack again


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


def default_source() -> str:
    """The source chosen by TINYML_DATA (default "synthetic"); see `config.data_source`."""
    return data_source()


def resolve_source(source: str | None) -> str:
    """`source`, or the one TINYML_DATA chooses when it is None; an unknown name raises ValueError."""
    source = default_source() if source is None else source
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose one of {SOURCES}")
    return source


def _local_folder(source: str) -> Path | None:
    """The folder a source is read from in place (the shipped subset, TINYML_SPEECH_COMMANDS), or None."""
    if source == "speech_commands_dev":
        if not DEV_FOLDER.is_dir():
            raise DataLayoutError(f"The real-speech subset shipped with the course is not here ({DEV_FOLDER}): it "
                                  "comes with a clone of the course's repository, not with an installed package. "
                                  "Clone the repository, or use TINYML_DATA=speech_commands.")
        return DEV_FOLDER
    if source == "speech_commands" and speech_commands_folder() is not None:
        folder = speech_commands_folder()
        if not folder.is_dir():
            raise DataLayoutError(f"TINYML_SPEECH_COMMANDS={folder} is not a folder. Point it at a Speech Commands "
                                  "folder, or unset it to download the dataset.")
        return folder
    return None


def _settings(source: str, root: Path) -> dict:
    """How `read_layout` reads a source: the real 35-word dataset keeps 10 % as many other words as
    keywords; a 12-class folder (with `_unknown_`) is kept as it is."""
    if source == "synthetic" or "_unknown_" in ClipStore(root).classes():
        return {"unknown_fraction": None, "silence_fraction": 0.1}
    return {"unknown_fraction": 0.1, "silence_fraction": 0.1}


def _name_of(source: str, root: Path) -> str:
    """The dataset's versioned name (and its caches' stem): the generated or downloaded folder's name,
    or for a folder read in place a key of its content, e.g. 'speech_commands_dev-3f9c2a17b0'."""
    if source == "synthetic" or _local_folder(source) is None:
        return root.name
    prefix = "speech_commands_dev" if source == "speech_commands_dev" else DOWNLOADED
    return f"{prefix}-{content_key(root, repr(sorted(_settings(source, root).items())))}"


def dataset_name(source: str | None = None) -> str:
    """The versioned name of a source's dataset (its cache folder), e.g. 'synthetic-869ae0409c'."""
    source = resolve_source(source)
    if source == "synthetic":
        return SynthConfig().key()  # changes with the generator's recipe (kws_synth.GENERATOR_VERSION)
    folder = _local_folder(source)
    return DOWNLOADED if folder is None else _name_of(source, folder)


def data_version(source: str | None = None) -> str:
    """Everything about the input data a trained model depends on: the dataset's version and the
    MFCC front end's, e.g. 'synthetic-869ae0409c-fe1'. Every cached model's key includes it."""
    from . import mfcc

    return f"{dataset_name(source)}-fe{mfcc.FRONT_END_VERSION}"


def dataset_root(source: str | None = None) -> Path:
    """Where a source's files live (generated or downloaded on first use, or read in place)."""
    source = resolve_source(source)  # an unknown source fails here, before anything is created
    if source == "synthetic":
        root = cache_dir("data") / dataset_name(source)
        with file_lock(root.with_suffix(".lock")):
            return generate(root)
    return _local_folder(source) or download_speech_commands(cache_dir("data") / DOWNLOADED)


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
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(partial, "wb") as f, \
                tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc="Speech Commands v0.02") as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                bar.update(len(block))
    except OSError as e:  # URLError, timeouts and refused connections are all OSErrors
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"Could not download Speech Commands v0.02 from {url} ({e}). Without internet, use "
                           "source='synthetic' (the course's offline data) or TINYML_DATA=speech_commands_dev "
                           "(real speech shipped with the course), or download the archive elsewhere and put "
                           f"it at {dest} (or unpack it and set TINYML_SPEECH_COMMANDS to its folder).") from e
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


def _read_source(root: Path, source: str) -> dict:
    """read_layout with the source's settings; a bad clip's error says how to get it back."""
    try:
        return read_layout(root, **_settings(source, root))
    except AudioFileError as e:  # a clip deleted from a finished dataset must not just go missing
        if source == "synthetic":
            fix = "Delete it and load the data again: a missing synthetic clip is spoken again."
        elif source == "speech_commands_dev":
            fix = ("The clips shipped with the course are damaged: restore them with "
                   "`git checkout -- data/speech_commands_dev`.")
        elif _local_folder(source) is not None:
            fix = f"Replace it with a good copy (or delete it): {root} is read as it is."
        else:
            fix = (f"Delete the folder {root} and load the data again: it is unpacked again from the "
                   "archive beside it (checked, and downloaded again if damaged).")
        raise AudioFileError(str(e).replace(REPLACE_FILE, fix)) from e


def _describe(source: str, root: Path) -> str:
    if source == "synthetic":
        return ("synthetic keyword-spotting data (espeak-ng voices, generated offline; test voices "
                "unseen in training)")
    if source == "speech_commands_dev":
        return ("real speech shipped with the course: a subset of the Google Speech Commands v0.02 test "
                "files (CC BY 4.0), split by speaker")
    if _local_folder(source) is None:
        return "Google Speech Commands v0.02 (official validation/testing lists)"
    if layout_kind(root) == "test_set":
        return f"Google Speech Commands v0.02 test files from {root} (a test set only: no training or validation clips)"
    return f"Google Speech Commands v0.02 from {root} (its validation/testing lists)"


def load_kws(source: str | None = None) -> KWSData:
    """Load a keyword-spotting source (default: TINYML_DATA), generating or downloading it on first use."""
    source = resolve_source(source)
    root = dataset_root(source)

    def build(path):
        splits = _read_source(root, source)
        save_npz(path, {f"{s}_{k}": getattr(splits[s], k) for s in SPLITS for k in ("waves", "labels", "files")})

    def load(path):
        z = load_npz(path)
        return {s: KWSSplit(z[f"{s}_waves"], z[f"{s}_labels"], z[f"{s}_files"].tolist()) for s in SPLITS}

    splits = load_or_build(cache_dir("data") / f"{_name_of(source, root)}-waves.npz", build, load)
    return KWSData(source, _describe(source, root), CLASSES, splits["train"], splits["val"], splits["test"])


def kws_features(source: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MFCC features per split: {"train": (X (N, 49, 10) float32, y (N,) int64), "val": ..., "test": ...}.
    Default source: TINYML_DATA."""
    from .mfcc import FRONT_END_VERSION, mfcc_batched

    source = resolve_source(source)
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

    stem = _name_of(source, root)
    return load_or_build(cache_dir("features") / f"{stem}-mfcc-v{FRONT_END_VERSION}.npz", build, load)
