"""Find the course's notebooks (shared by the hygiene and lab tests)."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def book_notebooks():
    return sorted((ROOT / "book").glob("*.ipynb"))


def lab_masters():
    return sorted((ROOT / "labs").glob("lab*.ipynb"))


def student_copies():
    return sorted((ROOT / "labs" / "student").glob("*.ipynb"))


def load(path):
    return json.loads(Path(path).read_text())


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
