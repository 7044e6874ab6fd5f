"""The data switch and the real-speech sources: local Speech Commands folders in both official
layouts, the subset shipped in `data/`, content-keyed caches and the errors a bad folder gives."""
import numpy as np
import pytest

from tinyml_utils import config, kws_data
from tinyml_utils.audio import AudioFileError, write_wav
from tinyml_utils.kws_data import CLASSES
from tinyml_utils.kws_layout import ClipStore, DataLayoutError, speaker_of


@pytest.fixture(autouse=True)
def private_env(tmp_path, monkeypatch):
    """A private, empty TINYML_CACHE and no data switch set, whatever the calling shell has."""
    monkeypatch.setenv("TINYML_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYML_DATA", raising=False)
    monkeypatch.delenv("TINYML_SPEECH_COMMANDS", raising=False)


def offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("this source must not touch the network")
    monkeypatch.setattr(kws_data.urllib.request, "urlopen", no_network)


def clip(rng, n=16000):
    return rng.integers(-2000, 2000, n).astype(np.int16)


def official_layout(root, rng=None):
    """A tiny Speech Commands v0.02 in its full layout: keyword and other-word folders, long
    background-noise files, and the two split lists (speakers a-f train, g val, h test)."""
    rng = rng or np.random.default_rng(0)
    for word in ("yes", "no", "up", "cat", "dog", "bed"):
        (root / word).mkdir(parents=True)
        for speaker in "abcdefgh":
            write_wav(root / word / f"{speaker}000000_nohash_0.wav", clip(rng, 12000 + 500 * "abcdefgh".index(speaker)))
    (root / "_background_noise_").mkdir()
    for name in ("white_noise.wav", "running_tap.wav"):
        write_wav(root / "_background_noise_" / name, clip(rng, 5 * 16000))
    words = ("yes", "no", "up", "cat", "dog", "bed")
    (root / "validation_list.txt").write_text("".join(f"{w}/g000000_nohash_0.wav\n" for w in words))
    (root / "testing_list.txt").write_text("".join(f"{w}/h000000_nohash_0.wav\n" for w in words))
    (root / "LICENSE").write_text("CC BY 4.0\n")
    return root


def test_switch_defaults_to_synthetic_and_rejects_unknown_values(monkeypatch):
    assert config.data_source() == "synthetic" and kws_data.default_source() == "synthetic"
    for value in config.DATA_SOURCES:
        monkeypatch.setenv("TINYML_DATA", value)
        assert kws_data.default_source() == value
    monkeypatch.setenv("TINYML_DATA", "speech-commands")
    with pytest.raises(ValueError, match=r"TINYML_DATA='speech-commands' is not a data source; choose one of "
                                         r"synthetic, speech_commands, speech_commands_dev"):
        kws_data.load_kws()
    with pytest.raises(ValueError, match="unknown data source 'librispeech'"):
        kws_data.load_kws("librispeech")


def test_synthetic_identity_is_unchanged():
    # The synthetic dataset's identity: every cached dataset, feature set and trained model of the
    # course is keyed by it. A change here retrains everything, so it must be deliberate.
    assert kws_data.dataset_name("synthetic") == "synthetic-869ae0409c"
    assert kws_data.data_version("synthetic") == "synthetic-869ae0409c-fe1"


def test_local_full_layout_through_the_switch(tmp_path, monkeypatch):
    root = official_layout(tmp_path / "my speech commands")
    monkeypatch.setenv("TINYML_DATA", "speech_commands")
    monkeypatch.setenv("TINYML_SPEECH_COMMANDS", str(root))
    offline(monkeypatch)
    data = kws_data.load_kws()
    assert data.source == "speech_commands" and "its validation/testing lists" in data.description
    names = {s: [CLASSES[i] for i in data.split(s).labels] for s in kws_data.SPLITS}
    for s, n in (("train", 6), ("val", 1), ("test", 1)):  # speakers per split
        assert names[s].count("yes") == names[s].count("no") == names[s].count("up") == n
        # other words are `_unknown_`, subsampled to 10 % of the keyword clips; silence cut from noise
        assert names[s].count("_unknown_") == int(0.1 * 3 * n)
        assert names[s].count("_silence_") == int(0.1 * (3 * n + int(0.1 * 3 * n)))
    assert {speaker_of(f) for f in data.val.files if "nohash" in f} == {"g000000"}
    assert data.train.waves.shape[1:] == (16000,) and data.train.waves.dtype == np.int16
    assert not any(f.startswith("_background_noise_") for s in kws_data.SPLITS for f in data.split(s).files)
    assert kws_data.data_version().startswith("speech_commands_v0.02-")
    features = kws_data.kws_features()
    assert features["train"][0].shape == (len(data.train), 49, 10)


def test_test_set_layout_is_all_test(tmp_path, monkeypatch):
    """The official 12-class test files: class folders incl. `_silence_`, `_unknown_/*.wav.wav`, no lists."""
    rng = np.random.default_rng(1)
    root = tmp_path / "speech_commands_test_set_v0.02"
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
        for i in range(2):
            name = f"{1000 + i}.wav" if cls == "_silence_" else f"s{i}0000000_nohash_0.wav"
            if cls == "_unknown_":
                name = f"bed_{name}.wav"
            write_wav(root / cls / name, clip(rng))
    monkeypatch.setenv("TINYML_SPEECH_COMMANDS", str(root))
    offline(monkeypatch)
    data = kws_data.load_kws("speech_commands")
    assert len(data.train) == len(data.val) == 0 and data.train.waves.shape == (0, 16000)
    assert sorted(np.bincount(data.test.labels).tolist()) == [2] * 12  # every class, no subsampling
    assert "_unknown_/bed_s00000000_nohash_0.wav.wav" in data.test.files
    assert "a test set only" in data.description
    assert kws_data.kws_features("speech_commands")["test"][0].shape == (24, 49, 10)


def test_empty_split_names_the_split_the_folder_and_the_fix(tmp_path, monkeypatch):
    root = official_layout(tmp_path / "sc")
    (root / "validation_list.txt").write_text("")
    monkeypatch.setenv("TINYML_SPEECH_COMMANDS", str(root))
    with pytest.raises(DataLayoutError, match=rf"The val split of {root} is empty: no clip of {root} is listed in "
                                              r"validation_list.txt: list some there"):
        kws_data.load_kws("speech_commands")
    (root / "testing_list.txt").unlink()
    with pytest.raises(DataLayoutError, match="has validation_list.txt but no testing_list.txt"):
        kws_data.load_kws("speech_commands")
    monkeypatch.setenv("TINYML_SPEECH_COMMANDS", str(tmp_path / "nowhere"))
    with pytest.raises(DataLayoutError, match="TINYML_SPEECH_COMMANDS=.*nowhere is not a folder"):
        kws_data.load_kws("speech_commands")


def test_caches_are_keyed_by_content_not_folder_name(tmp_path, monkeypatch):
    root = official_layout(tmp_path / "sc")
    monkeypatch.setenv("TINYML_SPEECH_COMMANDS", str(root))
    first = kws_data.data_version("speech_commands")
    before = kws_data.load_kws("speech_commands")
    assert "yes/h000000_nohash_0.wav" in before.test.files
    lists = (root / "testing_list.txt").read_text()
    (root / "testing_list.txt").write_text(lists.replace("h000000", "f000000"))  # a changed list
    assert kws_data.data_version("speech_commands") != first
    after = kws_data.load_kws("speech_commands")  # not the stale cache: speaker f is the test set now
    assert "yes/f000000_nohash_0.wav" in after.test.files and "yes/h000000_nohash_0.wav" in after.train.files
    (root / "testing_list.txt").write_text(lists)
    assert kws_data.data_version("speech_commands") == first
    write_wav(root / "yes" / "i000000_nohash_0.wav", clip(np.random.default_rng(2)))  # an added clip
    assert kws_data.data_version("speech_commands") != first
    assert len(list((tmp_path / "cache" / "data").glob("speech_commands_v0.02-*-waves.npz"))) == 2


def test_a_corrupt_clip_in_a_local_folder_is_named(tmp_path, monkeypatch):
    root = official_layout(tmp_path / "sc")
    (root / "no" / "c000000_nohash_0.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    monkeypatch.setenv("TINYML_SPEECH_COMMANDS", str(root))
    with pytest.raises(AudioFileError, match=r"no/c000000_nohash_0.wav: not a readable WAV file .* Replace it with "
                                             "a good copy"):
        kws_data.load_kws("speech_commands")


# --- the real speech shipped with the course ------------------------------------------------------

def test_shipped_subset_is_split_by_speaker():
    files = ClipStore(kws_data.DEV_FOLDER).files()
    lists = {s: set((kws_data.DEV_FOLDER / f"{name}_list.txt").read_text().split())
             for s, name in (("val", "validation"), ("test", "testing"))}
    assert lists["val"] <= set(files) and lists["test"] <= set(files) and not lists["val"] & lists["test"]
    split = {f: "val" if f in lists["val"] else "test" if f in lists["test"] else "train" for f in files}
    speakers = {s: {speaker_of(f) for f in files if split[f] == s} - {None} for s in kws_data.SPLITS}
    assert not (speakers["train"] & speakers["val"] or speakers["train"] & speakers["test"]
                or speakers["val"] & speakers["test"])
    assert len(files) == 2241 and [len(speakers[s]) for s in kws_data.SPLITS] == [73, 26, 31]
    for s in kws_data.SPLITS:
        assert {f.split("/")[0] for f in files if split[f] == s} == set(CLASSES)  # every class in every split
    assert (kws_data.DEV_FOLDER / "LICENSE").read_text().startswith("Attribution 4.0 International")


def test_shipped_subset_loads_offline_with_an_empty_cache(monkeypatch):
    monkeypatch.setenv("TINYML_DATA", "speech_commands_dev")
    offline(monkeypatch)
    data = kws_data.load_kws()
    assert [len(data.split(s)) for s in kws_data.SPLITS] == [1322, 355, 564]
    assert np.bincount(data.test.labels, minlength=12).min() >= 40
    assert "Speech Commands v0.02" in data.description and "split by speaker" in data.description
    assert kws_data.data_version().startswith("speech_commands_dev-")
    assert float(np.abs(data.train.waves[:50].astype(np.float64)).mean()) > 10  # real audio, not silence


def pack_as_archives(folder, out):
    """`folder`'s class folders as `<class>.tar.xz` archives in `out`, with its lists."""
    import shutil
    import tarfile

    out.mkdir()
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        with tarfile.open(out / f"{cls.name}.tar.xz", "w:xz") as tar:
            for wav in sorted(cls.glob("*.wav")):
                tar.add(wav, f"{cls.name}/{wav.name}")
    for name in ("validation_list.txt", "testing_list.txt"):
        shutil.copy(folder / name, out / name)
    return out


def test_archives_read_like_the_folder_and_a_damaged_one_is_named(tmp_path):
    folder = official_layout(tmp_path / "folder")
    packed = pack_as_archives(folder, tmp_path / "packed")
    a, b = (kws_data.read_layout(root, 0.1, 0.1) for root in (folder, packed))
    for s in kws_data.SPLITS:
        assert a[s].files == b[s].files and np.array_equal(a[s].waves, b[s].waves)
        assert np.array_equal(a[s].labels, b[s].labels)
    damaged = packed / "yes.tar.xz"
    damaged.write_bytes(damaged.read_bytes()[:200])
    with pytest.raises(AudioFileError, match=r"yes.tar.xz: not a readable .tar.xz archive"):
        kws_data.read_layout(packed, 0.1, 0.1)


def test_a_corrupt_clip_in_an_archive_names_the_archive_and_the_clip(tmp_path):
    import tarfile

    folder = official_layout(tmp_path / "folder")
    (folder / "up" / "b000000_nohash_0.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    packed = pack_as_archives(folder, tmp_path / "packed")
    assert tarfile.open(packed / "up.tar.xz").getnames()[1] == "up/b000000_nohash_0.wav"
    with pytest.raises(AudioFileError, match=r"up.tar.xz: up/b000000_nohash_0.wav: not a readable WAV file"):
        kws_data.read_layout(packed, 0.1, 0.1)


def test_every_function_that_takes_a_source_follows_the_switch(monkeypatch):
    """No function of the package pins a data source by default: None means TINYML_DATA."""
    import importlib
    import inspect
    import pkgutil

    import tinyml_utils
    from tinyml_utils.kws_data import resolve_source

    pinned = []
    for info in pkgutil.walk_packages(tinyml_utils.__path__, "tinyml_utils."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            param = inspect.signature(fn).parameters.get("source")
            if fn.__module__ == info.name and param is not None and param.default not in (None, inspect.Parameter.empty):
                pinned.append(f"{info.name}.{name}(source={param.default!r})")
    assert not pinned, f"these pin a data source instead of following TINYML_DATA: {pinned}"
    monkeypatch.setenv("TINYML_DATA", "speech_commands_dev")
    assert resolve_source(None) == "speech_commands_dev" and resolve_source("synthetic") == "synthetic"
