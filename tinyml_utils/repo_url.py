"""Point the book's Colab buttons and notebook setup cells at your fork.

Usage: ``python -m tinyml_utils.repo_url https://github.com/you/tinyml-from-scratch`` (or
``./run set-repo-url URL``). Rewrites `_config.yml`, README.md and every notebook's setup cell.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

PLACEHOLDER = "https://github.com/YOUR-GITHUB-USER/tinyml-from-scratch"
ROOT = Path(__file__).resolve().parents[1]


def current_url(root: Path = ROOT) -> str:
    """The repository URL in `_config.yml`."""
    match = re.search(r"^\s*url:\s*(\S+)", (root / "_config.yml").read_text(), re.M)
    if not match:
        raise ValueError("_config.yml has no repository url")
    return match.group(1)


def files_with_url(root: Path = ROOT) -> list[Path]:
    """Files that name the repository URL."""
    notebooks = [p for d in ("book", "labs") for p in (root / d).rglob("*.ipynb") if "_build" not in p.parts]
    return [root / "_config.yml", root / "README.md", *sorted(notebooks)]


def set_url(new: str, root: Path = ROOT) -> list[Path]:
    """Replace the current repository URL by `new` everywhere; returns the files changed."""
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", new):
        raise ValueError(f"{new!r} is not a GitHub repository URL like https://github.com/you/tinyml-from-scratch")
    old = current_url(root)
    changed = []
    for path in files_with_url(root):
        text = path.read_text()
        if old in text:
            path.write_text(text.replace(old, new))
            changed.append(path)
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for p in set_url(sys.argv[1]):
        print("updated", p)
