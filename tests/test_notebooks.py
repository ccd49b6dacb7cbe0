"""Notebook hygiene: order, no stored outputs, the standard first cells, exercises with checks,
student notebooks in sync with the instructor notebooks."""
import re
from pathlib import Path

import nbformat
import pytest

from course_lib.exercises.builder import SOLUTION_BEGIN, out_of_sync

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebooks_exist_and_are_numbered_in_teaching_order():
    names = [p.name for p in NOTEBOOKS]
    assert names and names[0].startswith("00_welcome")
    for name in names:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", name), f"{name}: name must be NN_lowercase_words.ipynb"
    numbers = [int(n[:2]) for n in names]
    assert numbers == sorted(set(numbers)), f"notebook numbers must be unique: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_and_starts_with_setup_and_parameters(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(code_cells(nb)):
        assert not cell.outputs, f"{path.name}: code cell {i} has stored outputs (clear them before committing)"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has an execution count"
    first, second = code_cells(nb)[:2]
    assert "google.colab" in first.source and "setup_notebook" in first.source, \
        f"{path.name}: the first code cell must be the standard Colab setup cell"
    assert "parameters" in second.metadata.get("tags", []), f"{path.name}: the second code cell must be tagged 'parameters'"
    assert "profile(" in second.source, f"{path.name}: the parameters cell must read the profile"
    assert "colab-badge" in nb.cells[0].metadata.get("tags", []), f"{path.name}: the first cell must be the Colab badge"
    assert nb.cells[1].cell_type == "markdown" and nb.cells[1].source.startswith(f"# {path.name[:2]} "), \
        f"{path.name}: the second cell must be a markdown title '# {path.name[:2]} · ...'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_is_followed_by_a_check(path):
    cells = code_cells(nbformat.read(path, as_version=4))
    for i, cell in enumerate(cells):
        if SOLUTION_BEGIN in cell.source:
            following = "\n".join(c.source for c in cells[i + 1:i + 3])
            assert re.search(r"check_\w+\(", following), f"{path.name}: exercise in code cell {i} has no check cell after it"


def test_student_notebooks_are_in_sync():
    problems = out_of_sync(NB_DIR)
    assert not problems, "; ".join(problems) + " -- run `make student`"


def test_student_notebooks_contain_no_solutions():
    for path in sorted((NB_DIR / "student").glob("*.ipynb")):
        text = path.read_text()
        assert SOLUTION_BEGIN not in text and "END SOLUTION" not in text, path.name
