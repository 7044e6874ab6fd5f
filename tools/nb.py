"""Authoring helper: convert between stored notebooks (.ipynb) and editable percent scripts.

    python tools/nb.py to-py book/01_measuring_efficiency.ipynb   # -> /tmp/nbsrc/01_measuring_efficiency.py
    python tools/nb.py to-ipynb /tmp/nbsrc/01_measuring_efficiency.py book/01_measuring_efficiency.ipynb

Stored notebooks carry no outputs and no execution counts (tests/test_notebook_hygiene.py).
"""
import sys
from pathlib import Path

import jupytext
import nbformat


def to_ipynb(src: str, dst: str) -> None:
    nb = jupytext.read(src, fmt="py:percent")
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("lines_to_next_cell", None)
    nbformat.validate(nb)
    Path(dst).write_text(nbformat.writes(nb) + "\n")


def to_py(src: str) -> str:
    dst = Path("/tmp/nbsrc") / (Path(src).stem + ".py")
    dst.parent.mkdir(exist_ok=True)
    jupytext.write(jupytext.read(src), dst, fmt="py:percent")
    return str(dst)


if __name__ == "__main__":
    if sys.argv[1] == "to-ipynb":
        to_ipynb(sys.argv[2], sys.argv[3])
    else:
        print(to_py(sys.argv[2]))
