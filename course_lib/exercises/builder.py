"""Build student notebooks from instructor notebooks.

In an instructor notebook, a solution sits between two marker lines::

    def psnr(pred, target):
        # BEGIN SOLUTION
        mse = ((pred - target) ** 2).mean()
        return 10 * torch.log10(1 / mse)
        # END SOLUTION

The builder replaces the block, markers included, by a stub at the marker's indentation,
``raise NotImplementedError("Exercise: psnr")``; the text after ``# BEGIN SOLUTION:`` becomes its message (default:
the enclosing function's name). Outputs are cleared; every other cell is kept unchanged.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from ..core.checkpoints import atomic_write_text
from .publish import BADGE_TAG

__all__ = ["strip_solutions", "build_student_notebook", "build", "out_of_sync", "SOLUTION_BEGIN", "SOLUTION_END"]

SOLUTION_BEGIN = "# BEGIN SOLUTION"
SOLUTION_END = "# END SOLUTION"
_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?::\s*(?P<hint>.*))?\s*$")
_END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
STUDENT_NOTE = ("> **Student version.** Cells marked *Exercise* contain a stub that raises "
                "`NotImplementedError`: replace it with your code, then run the check cell below it.")


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a stub.

    Raises ``ValueError`` (naming ``where``) on an unclosed or nested block.
    """
    if not isinstance(source, str):
        raise TypeError(f"strip_solutions: source must be a str, got {type(source).__name__}")
    lines = source.split("\n")
    out: list[str] = []
    begin = None  # (line index, match) of the open block
    for i, line in enumerate(lines):
        m = _BEGIN.match(line)
        if m and begin is not None:
            raise ValueError(f"{where}: nested '# BEGIN SOLUTION' on line {i + 1}")
        if m:
            begin = (i, m)
        elif _END.match(line):
            if begin is None:
                raise ValueError(f"{where}: '# END SOLUTION' on line {i + 1} without a '# BEGIN SOLUTION'")
            start, opened = begin
            defs = [d[1] for d in (re.match(r"^\s*def\s+(\w+)", prev) for prev in lines[:start]) if d]  # defs above
            hint = (opened.group("hint") or "").strip() or (defs[-1] if defs else "fill in this part")
            out.append(f'{opened.group("indent")}raise NotImplementedError({json.dumps("Exercise: " + hint)})')
            begin = None
        elif begin is None:
            out.append(line)
    if begin is not None:
        raise ValueError(f"{where}: '# BEGIN SOLUTION' on line {begin[0] + 1} is never closed by '# END SOLUTION'")
    return "\n".join(out)


def build_student_notebook(nb: "nbformat.NotebookNode", where: str = "notebook") -> "nbformat.NotebookNode":
    """A copy of ``nb`` with solutions stubbed and outputs cleared."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, where=f"{where}, cell {k}")
            cell.outputs = []
            cell.execution_count = None
        elif BADGE_TAG in cell.metadata.get("tags", []):  # the "Open in Colab" badge opens the student version
            cell.source = re.sub(r"/notebooks/([^/)]+\.ipynb)\)", r"/notebooks/student/\1)", cell.source)
    text = [c for c in nb.cells if c.cell_type == "markdown" and BADGE_TAG not in c.metadata.get("tags", [])]
    if text and STUDENT_NOTE not in text[0].source:
        text[0].source = text[0].source.rstrip() + "\n\n" + STUDENT_NOTE
    return nb


def _student_versions(src: Path, dest: Path):
    """``(student notebook path, the text it should hold)`` for each instructor notebook in ``src``."""
    for path in sorted(p for p in src.glob("*.ipynb") if p.is_file()):
        nb = build_student_notebook(nbformat.read(path, as_version=4), where=str(path))
        yield dest / path.name, nbformat.writes(nb, version=4).rstrip("\n") + "\n"


def _orphans(src: Path, dest: Path) -> list[Path]:
    """Student notebooks whose instructor notebook is gone."""
    return [p for p in sorted(dest.glob("*.ipynb")) if not (src / p.name).exists()]


def build(src: str | Path = "notebooks", dest: str | Path | None = None) -> list[Path]:
    """Write ``dest/<name>.ipynb`` for every instructor notebook in ``src``."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"build: notebook folder {src} does not exist")
    dest = Path(dest) if dest is not None else src / "student"
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for target, text in _student_versions(src, dest):
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            atomic_write_text(text, target)
        written.append(target)
    for stale in _orphans(src, dest):
        stale.unlink()
    return written


def out_of_sync(src: str | Path = "notebooks", dest: str | Path | None = None) -> list[str]:
    """Names of student notebooks that are missing, stale or orphaned."""
    src = Path(src)
    dest = Path(dest) if dest is not None else src / "student"
    problems = []
    for target, text in _student_versions(src, dest):
        if not target.exists():
            problems.append(f"{target} is missing")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{target} is out of date")
    return problems + [f"{stale} has no instructor notebook" for stale in _orphans(src, dest)]
