"""Every C source, header and linker script of the package is declared as package data, so a
non-editable install (a wheel) carries the runtime, the firmware, the device support and the
harnesses too; and every declared pattern still names a file (a moved folder leaves none behind)."""
import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_file_is_in_package_data():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    missing = []
    for path in (ROOT / "tinyml_utils").rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        covered = False
        for package, patterns in declared.items():
            base = ROOT.joinpath(*package.split("."))
            if base in path.parents:
                rel = path.relative_to(base).as_posix()
                covered |= any(fnmatch.fnmatchcase(rel, p) and rel.count("/") == p.count("/") for p in patterns)
        if not covered:
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"


def test_every_package_data_pattern_matches_a_file():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    stale = [f"{package}: {pattern}" for package, patterns in declared.items() for pattern in patterns
             if not any(ROOT.joinpath(*package.split(".")).glob(pattern))]
    assert not stale, f"these package-data patterns match no file any more, remove them from pyproject.toml: {stale}"
