"""`./run set-repo-url` rewrites every file that carries the repository URL."""
import shutil
from pathlib import Path

from tinyml_utils import repo_url

ROOT = Path(__file__).resolve().parents[1]


def test_set_url_leaves_no_old_url_anywhere(tmp_path):
    old = repo_url.current_url(ROOT)
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "_build", "data", "*.xz", "__pycache__"))
    carriers = repo_url.files_with_url(copy, old)
    names = {str(p.relative_to(copy)) for p in carriers}
    assert {"_config.yml", "README.md", "book/intro.md"} <= names, names
    assert any(n.startswith("book/") and n.endswith(".ipynb") for n in names)
    assert any(n.startswith("labs/student/") for n in names)

    new = "https://github.com/someone/tinyml-fork"
    changed = repo_url.set_url(new, copy)
    assert set(changed) == set(carriers)
    left = [p for p in repo_url.files_with_url(copy, old)]
    assert not left, f"the old URL is still in {left}"
    assert repo_url.current_url(copy) == new
    assert new in (copy / "book" / "intro.md").read_text()
