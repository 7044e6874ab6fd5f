"""The lab format: student copies are generated from the masters, in sync, and fail until solved."""
import nbformat
import pytest
from nbclient import NotebookClient

from notebooks import ROOT, code_cells, lab_masters, load, source
from tinyml_utils import labtools


def test_strip_solutions_keeps_indentation_and_the_rest():
    code = "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\nprint('kept')"
    stripped, regions = labtools.strip_solutions(code)
    assert regions == 1
    assert stripped == f"def f(x):\n    y = 1\n    {labtools.PLACEHOLDER}\nprint('kept')"


@pytest.mark.parametrize("bad", ["# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION",
                                 "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION"])
def test_unbalanced_markers_are_errors(bad):
    with pytest.raises(labtools.SolutionMarkerError):
        labtools.strip_solutions(bad)


def test_student_copies_are_in_sync_with_masters():
    assert labtools.main([str(ROOT / "labs"), "--check"]) == 0, "run ./run student-copies and commit the result"
    assert {p.name for p in (ROOT / "labs" / "student").glob("*.ipynb")} == {p.name for p in lab_masters()}


def test_every_exercise_has_a_solution_and_a_check():
    for master in lab_masters():
        cells = code_cells(load(master))
        solved = [i for i, c in enumerate(cells) if labtools.BEGIN in source(c)]
        assert len(solved) >= 5, f"{master.name}: a lab needs at least five exercises"
        for i in solved:
            assert "checks." in source(cells[i + 1]), f"{master.name}: the cell after solution {i} must be a check"


@pytest.mark.slow
@pytest.mark.parametrize("master", lab_masters(), ids=lambda p: p.name)
def test_student_copy_fails_where_solutions_were(master, monkeypatch):
    student = nbformat.reads(labtools.render(labtools.make_student_copy(load(master))), as_version=4)
    monkeypatch.setenv("TINYML_CI", "1")  # the kernel inherits it: run at CI size
    NotebookClient(student, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(master.parent)}}).execute()
    cells = code_cells(student)
    errors = [[o["ename"] for o in c.get("outputs", []) if o["output_type"] == "error"] for c in cells]
    for i, cell in enumerate(cells):
        if labtools.PLACEHOLDER in source(cell):
            # A stripped cell raises at once, or (when it defines a function) its check cell does.
            assert errors[i + 1], f"{master.name}: check cell {i + 1} passed although the exercise was not done"
            assert "NotImplementedError" in errors[i] + errors[i + 1], \
                f"{master.name}: exercise cell {i} should end in NotImplementedError, got {errors[i] + errors[i + 1]}"
