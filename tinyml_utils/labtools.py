"""Make the student copy of a lab from its master notebook.

In a master lab, solutions sit inside code cells between two marker lines::

    # BEGIN SOLUTION
    ...the solution...
    # END SOLUTION

(the markers nbgrader and otter-grader understand). The student copy replaces each region by a
`raise NotImplementedError(...)` at the same indentation, clears outputs, and keeps everything
else, so the check cells that follow fail until the student writes the code.

Usage: ``python -m tinyml_utils.labtools labs`` writes ``labs/student/<lab>.ipynb`` for every
master; ``--check`` only reports copies that are out of date (exit code 1).
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUDENT_DIR = "student"
PLACEHOLDER = 'raise NotImplementedError("Exercise: replace this line with your solution")'
BANNER = ("**Student copy.** Generated from the master notebook by `python -m tinyml_utils.labtools` — "
          "edit the master, not this file. Replace each `raise NotImplementedError(...)` with your code, "
          "then run the check cell below it.")


class SolutionMarkerError(ValueError):
    """Solution markers that do not pair up."""


def strip_solutions(source: str) -> tuple[str, int]:
    """Replace every BEGIN/END SOLUTION region by a NotImplementedError; returns (code, regions)."""
    out, regions, inside, indent = [], 0, False, ""
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise SolutionMarkerError(f"line {number}: '{BEGIN}' inside another solution region")
            inside, indent = True, re.match(r"\s*", line).group(0)
            out.append(indent + PLACEHOLDER)
            regions += 1
        elif marker == END:
            if not inside:
                raise SolutionMarkerError(f"line {number}: '{END}' without a '{BEGIN}' before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionMarkerError(f"'{BEGIN}' without a matching '{END}'")
    return "\n".join(out), regions


def make_student_copy(master: dict) -> dict:
    """The student version of a master notebook (an nbformat dict)."""
    nb = copy.deepcopy(master)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            stripped, regions = strip_solutions(source)
        except SolutionMarkerError as e:
            raise SolutionMarkerError(f"cell {cell.get('id', '?')}: {e}") from None
        cell["source"] = stripped
        cell["outputs"], cell["execution_count"] = [], None
        if regions:  # students must see the code they fill in, even where the book collapses it
            tags = cell.get("metadata", {}).get("tags", [])
            cell.setdefault("metadata", {})["tags"] = [t for t in tags if t not in ("hide-input", "remove-input")]
    nb["cells"].insert(1, {"cell_type": "markdown", "id": "student-copy-banner", "metadata": {}, "source": BANNER})
    return nb


def student_path(master: Path) -> Path:
    """Where the student copy of `master` lives: labs/student/<name>.ipynb."""
    return master.parent / STUDENT_DIR / master.name


def render(nb: dict) -> str:
    """Serialise a notebook the way it is stored in git (stable, one line per source line)."""
    import nbformat

    return nbformat.writes(nbformat.from_dict(nb)) + "\n"


def masters(labs_dir: Path) -> list[Path]:
    """The master lab notebooks in `labs_dir`."""
    return sorted(p for p in Path(labs_dir).glob("lab*.ipynb"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs_dir", type=Path, nargs="?", default=Path("labs"))
    parser.add_argument("--check", action="store_true", help="only report student copies that are out of date")
    args = parser.parse_args(argv)
    stale = []
    for master in masters(args.labs_dir):
        text = render(make_student_copy(json.loads(master.read_text())))
        target = student_path(master)
        if not target.exists() or target.read_text() != text:
            stale.append(target)
            if not args.check:
                target.parent.mkdir(exist_ok=True)
                target.write_text(text)
    for path in stale:
        print(("out of date: " if args.check else "wrote ") + str(path))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
