"""Notebook hygiene: stored clean, set up for Colab, seeded, checked, listed in the book."""
import re

import pytest

from notebooks import ROOT, book_notebooks, code_cells, lab_masters, load, source, student_copies
from tinyml_utils.repo_url import current_url

ALL = book_notebooks() + lab_masters() + student_copies()
TAUGHT = book_notebooks() + lab_masters()


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_there_are_notebooks():
    assert book_notebooks() and lab_masters()


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_stored_without_outputs(path):
    for cell in code_cells(load(path)):
        assert not cell.get("outputs") and cell.get("execution_count") is None, \
            f"{path.name}: clear outputs before committing (e.g. jupyter nbconvert --clear-output --inplace)"


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_first_code_cell_is_the_colab_setup(path):
    cell = code_cells(load(path))[0]
    text = source(cell)
    assert '"google.colab" in sys.modules' in text, f"{path.name}: first code cell must be the Colab setup cell"
    assert "remove-cell" in cell.get("metadata", {}).get("tags", []), f"{path.name}: tag the setup cell remove-cell"
    urls = re.findall(r'REPO_URL = "([^"]+)"', text)
    assert urls == [current_url()], f"{path.name}: setup cell must clone {current_url()} (./run set-repo-url)"


@pytest.mark.parametrize("path", TAUGHT, ids=ids(TAUGHT))
def test_seeded_checked_and_sized(path):
    text = "\n".join(source(c) for c in code_cells(load(path)))
    assert "seed_everything(" in text or "manual_seed(" in text, f"{path.name}: seed the notebook"
    assert re.search(r"^\s*assert ", text, re.M) or "checks." in text, f"{path.name}: no assert cells"
    if re.search(r"get_baseline|kws_features|load_kws", text):
        assert ".description" in text, f"{path.name}: say which data source produced the numbers"


@pytest.mark.parametrize("path", TAUGHT, ids=ids(TAUGHT))
def test_listed_in_the_table_of_contents(path):
    toc = (ROOT / "_toc.yml").read_text()
    entry = str(path.relative_to(ROOT).with_suffix(""))
    assert re.search(rf"file:\s*{re.escape(entry)}\s*$", toc, re.M), f"{entry} is missing from _toc.yml"


def test_chapters_follow_the_spine():
    for path in book_notebooks():
        nb = load(path)
        text = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert "learning goals" in text.lower(), f"{path.name}: start with learning goals"
        assert "```{exercise}" in text or ":::{exercise}" in text, f"{path.name}: add exercises"
        assert "## Summary" in text, f"{path.name}: end with a summary"
