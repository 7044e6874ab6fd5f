"""Build `data/speech_commands_dev/` from a folder of the Speech Commands v0.02 test files.

    python data/make_speech_commands_dev.py SOURCE_FOLDER [OUTPUT_FOLDER]

SOURCE_FOLDER has the 12-class test-set layout (`yes/`, ..., `_unknown_/`, `_silence_/`). The
output is what the course ships and `kws_data` reads as source "speech_commands_dev":

* a speaker-balanced subset: at most MAX_TAKES takes of one word by one speaker (the takes with the
  lowest `_nohash_` numbers; every speaker and every word stays), and every `_silence_` clip;
* split BY SPEAKER, never by clip: a speaker's clips all go to the split picked by a hash of the
  speaker id (about 60/20/20), written as `validation_list.txt` / `testing_list.txt` in the official
  format. A silence clip has no speaker: its own file name is hashed instead;
* one `<class>.tar.xz` per class with the WAV files unchanged (lossless; `tar xJf` unpacks them).
  xz's delta filter (2-byte distance, for 16-bit samples; a standard xz option) brings them to
  about 55 % of the WAV files' size, where plain xz leaves about 60 %.

The same source gives byte-identical files (sorted members, fixed tar metadata).
"""
from __future__ import annotations

import hashlib
import io
import lzma
import sys
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinyml_utils.kws_layout import CLASSES, LISTS, speaker_of  # noqa: E402

MAX_TAKES = 3  # takes of one word by one speaker that are kept
SALT = "speech_commands_dev:"  # makes the split independent of any selection made by hashing the bare id
XZ_FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 2},
              {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "lc": 0, "lp": 1, "pb": 1}]


def split_of(rel: str) -> str:
    """'train', 'val' or 'test' for a clip: by a hash of its speaker (or of its name, for silence)."""
    group = speaker_of(rel) or rel.rsplit("/", 1)[-1]
    percent = int(hashlib.sha256((SALT + group).encode()).hexdigest(), 16) % 100
    return "train" if percent < 60 else "val" if percent < 80 else "test"


def word_of(rel: str) -> str:
    folder, name = rel.split("/")
    return name.split("_")[0] if folder == "_unknown_" else folder


def choose(source: Path) -> list[str]:
    """The subset: every silence clip; at most MAX_TAKES takes per (speaker, word), lowest first."""
    takes, kept = Counter(), []
    for cls in CLASSES:
        for path in sorted((source / cls).glob("*.wav")):
            rel = f"{cls}/{path.name}"
            speaker = speaker_of(rel)
            if speaker is not None:
                takes[speaker, word_of(rel)] += 1
                if takes[speaker, word_of(rel)] > MAX_TAKES:
                    continue
            kept.append(rel)
    return kept


def write_archive(source: Path, rels: list[str], archive: Path) -> None:
    """A deterministic .tar.xz of the files `rels` (relative to `source`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for rel in rels:
            data = (source / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, filters=XZ_FILTERS))
    with tarfile.open(archive, "r:xz") as tar:  # lossless: every member reads back as the source file
        assert all(tar.extractfile(rel).read() == (source / rel).read_bytes() for rel in rels), archive


def report(kept: list[str]) -> None:
    """Clip counts per class and split, and speaker counts per split, as a Markdown table."""
    counts = Counter((split_of(r), r.split("/")[0]) for r in kept)
    speakers = defaultdict(set)
    for r in kept:
        if speaker_of(r):
            speakers[split_of(r)].add(speaker_of(r))
    splits = ("train", "val", "test")
    print("| class | " + " | ".join(splits) + " |\n| --- |" + " ---: |" * len(splits))
    for cls in CLASSES:
        print(f"| `{cls}` | " + " | ".join(str(counts[s, cls]) for s in splits) + " |")
    print("| all clips | " + " | ".join(str(sum(counts[s, c] for c in CLASSES)) for s in splits) + " |")
    print("| speakers | " + " | ".join(str(len(speakers[s])) for s in splits) + " |")


def main(source: Path, out: Path) -> None:
    kept = choose(source)
    speakers = {speaker_of(r) for r in kept} - {None}
    assert all(len({split_of(r) for r in kept if speaker_of(r) == s}) == 1 for s in speakers)  # by speaker
    out.mkdir(parents=True, exist_ok=True)
    for cls in CLASSES:
        write_archive(source, [r for r in kept if r.startswith(cls + "/")], out / f"{cls}.tar.xz")
    for split, name in LISTS.items():
        (out / name).write_text("".join(f"{r}\n" for r in kept if split_of(r) == split))
    (out / "LICENSE").write_bytes((source / "LICENSE").read_bytes())
    size = sum(p.stat().st_size for p in out.glob("*.tar.xz"))
    print(f"{len(kept)} clips of {len(list(source.glob('*/*.wav')))}; archives {size / 1e6:.1f} MB")
    report(kept)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else Path(__file__).parent / "speech_commands_dev")
