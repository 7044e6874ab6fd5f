"""Point the book's Colab buttons and notebook setup cells at your fork.

Usage: ``python -m tinyml_utils.repo_url https://github.com/you/tinyml-from-scratch`` (or
``./run set-repo-url URL``). Rewrites every text file of the repository that names the URL:
`_config.yml`, the README, the preface, every notebook's setup cell and launch links.
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


#: Where the URL can be written; folders that are not the course's own text are skipped.
TEXT_SUFFIXES = {".md", ".ipynb", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".html"}
SKIP_DIRS = {".git", ".venv", "_build", ".cache", "node_modules", ".ipynb_checkpoints"}


def files_with_url(root: Path = ROOT, url: str | None = None) -> list[Path]:
    """Text files of the repository that name `url` (default: the current repository URL)."""
    url = url or current_url(root)
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix in TEXT_SUFFIXES and path.is_file() and not SKIP_DIRS & set(path.relative_to(root).parts):
            if url in path.read_text(errors="replace"):
                found.append(path)
    return found


def set_url(new: str, root: Path = ROOT) -> list[Path]:
    """Replace the current repository URL by `new` everywhere; returns the files changed."""
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", new):
        raise ValueError(f"{new!r} is not a GitHub repository URL like https://github.com/you/tinyml-from-scratch")
    old = current_url(root)
    changed = []
    for path in files_with_url(root, old):
        path.write_text(path.read_text().replace(old, new))
        changed.append(path)
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for p in set_url(sys.argv[1]):
        print("updated", p)
