"""One repository setting for every notebook: the Colab badge and the setup cell (a repository tool).

The course's repository URL and branch live in one place, ``[tool.course]`` in ``pyproject.toml``::

    [tool.course]
    repository = "https://github.com/USER/NAME"
    branch = "main"

``python -m course_lib.exercises publish --repo https://github.com/USER/NAME`` (``make publish REPO=...``) writes
the setting and rewrites from it the first two cells of every instructor and student notebook (an "Open in
Colab" badge for the notebook's own path, then the setup cell that installs ``course_lib`` on Colab) and the
README's notebook table; ``--check`` only lists what disagrees. ``COURSE_REPO`` / ``COURSE_BRANCH`` override the
setting for one run and, in a notebook's setup cell, for one session (a student on a fork).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import nbformat

from ..core.checkpoints import atomic_write_text

__all__ = ["Setting", "read_setting", "write_setting", "colab_url", "badge_source", "setup_source",
           "stamp", "publish", "readme_table", "notebook_title", "BADGE_TAG"]

BADGE_TAG = "colab-badge"
SETUP_FIRST_LINE = "# Setup (every notebook starts with this cell)."
_BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
_TABLE_BEGIN, _TABLE_END = "<!-- notebooks:begin -->", "<!-- notebooks:end -->"
_GITHUB = re.compile(r"^https://github\.com/(?P<path>[\w.-]+/[\w.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Setting:
    repository: str
    branch: str = "main"


def _pyproject(root: Path) -> Path:
    path = Path(root) / "pyproject.toml"
    if not path.is_file():
        raise FileNotFoundError(f"publish: no pyproject.toml in {Path(root).resolve()}; this is a repository tool, "
                                "run it in a clone of the course")
    return path


def read_setting(root: Path = Path("."), *, environ: Optional[dict] = None) -> Setting:
    """The ``[tool.course]`` setting of the repository at ``root``; ``COURSE_REPO``/``COURSE_BRANCH`` win."""
    import tomllib

    environ = os.environ if environ is None else environ
    table = tomllib.loads(_pyproject(root).read_text(encoding="utf-8")).get("tool", {}).get("course", {})
    repo = environ.get("COURSE_REPO") or table.get("repository")
    if not repo:
        raise KeyError(f"publish: {_pyproject(root)} has no [tool.course] "
                       f"repository = \"https://github.com/USER/NAME\"")
    return Setting(repo, environ.get("COURSE_BRANCH") or table.get("branch", "main"))


def _stored_setting(root: Path) -> Optional[Setting]:
    try:
        return read_setting(root, environ={})
    except KeyError:
        return None


def write_setting(root: Path, setting: Setting) -> None:
    """Replace the ``[tool.course]`` table of ``pyproject.toml`` (other text is kept as it is)."""
    path = _pyproject(root)
    text = path.read_text(encoding="utf-8")
    table = f'[tool.course]\nrepository = "{setting.repository}"\nbranch = "{setting.branch}"\n'
    pattern = re.compile(r"^\[tool\.course\]\n(?:(?!\[).*\n?)*", re.M)
    text = pattern.sub(table + "\n", text, count=1) if pattern.search(text) else text.rstrip("\n") + "\n\n" + table
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def colab_url(setting: Setting, path: str) -> str:
    """``https://colab.research.google.com/github/USER/NAME/blob/BRANCH/PATH`` (GitHub repositories only)."""
    m = _GITHUB.match(setting.repository)
    if m is None:
        raise ValueError(f"publish: Colab opens notebooks from GitHub only; repository must look like "
                         f"https://github.com/USER/NAME, got {setting.repository!r}")
    return f"https://colab.research.google.com/github/{m['path']}/blob/{setting.branch}/{path}"


def badge_source(setting: Setting, path: str) -> str:
    return f"[![Open In Colab]({_BADGE_SVG})]({colab_url(setting, path)})"


def setup_source(setting: Setting) -> str:
    """The first code cell of every notebook. It runs before ``course_lib`` exists on Colab, so it is plain Python."""
    return f'''{SETUP_FIRST_LINE} On Colab it installs course_lib from the course's
# repository (set once by `make publish`; the COURSE_REPO environment variable overrides it). Everywhere it
# seeds the random generators and reports versions, device, profile and where data and checkpoints go.
import importlib.util, os, subprocess, sys
COURSE_REPO = os.environ.get("COURSE_REPO", "{setting.repository}")
COURSE_BRANCH = os.environ.get("COURSE_BRANCH", "{setting.branch}")
if "google.colab" in sys.modules and importlib.util.find_spec("course_lib") is None:
    _url = f"git+{{COURSE_REPO.removeprefix('git+')}}@{{COURSE_BRANCH}}"
    _pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"course-lib @ {{_url}}"],
                          capture_output=True, text=True)
    if _pip.returncode:
        _why = (_pip.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise SystemExit(f"Could not install course_lib from {{_url}} ({{_why}}). Set COURSE_REPO in this cell "
                         "to your copy of the course (https://github.com/USER/NAME) and run it again.")
%matplotlib inline
from course_lib.core import setup_notebook
ENV = setup_notebook(seed=0)'''


def stamp(nb, setting: Setting, path: str):
    """Give ``nb`` (its repository path is ``path``) the badge as its first cell and the setup cell from ``setting``."""
    badge = nbformat.v4.new_markdown_cell(badge_source(setting, path), metadata={"tags": [BADGE_TAG]})
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "markdown" and BADGE_TAG in first.get("metadata", {}).get("tags", []):
        first.source = badge.source
    else:
        nb.cells.insert(0, badge)
    if nb.nbformat_minor >= 5:
        nb.cells[0].id = BADGE_TAG  # a fixed id: publishing twice writes the same file
    setups = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(SETUP_FIRST_LINE)]
    if len(setups) != 1:
        raise ValueError(f"publish: {path} must have exactly one setup cell starting with {SETUP_FIRST_LINE!r}, "
                         f"found {len(setups)}")
    setups[0].source = setup_source(setting)
    return nb


def notebook_title(nb) -> str:
    for cell in nb.cells:
        m = re.search(r"^# (.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
        if m:
            return m.group(1).strip()
    return "?"


def readme_table(root: Path, setting: Setting) -> str:
    rows = ["| notebook | student (exercises) | instructor (solutions) |", "|---|---|---|"]
    for path in sorted((root / "notebooks").glob("[0-9]*.ipynb")):
        title = notebook_title(nbformat.read(path, as_version=4))
        links = [f"[![Open In Colab]({_BADGE_SVG})]({colab_url(setting, p)}) [`{p}`]({p})"
                 for p in (f"notebooks/student/{path.name}", f"notebooks/{path.name}")]
        rows.append(f"| {title} | {links[0]} | {links[1]} |")
    return "\n".join([_TABLE_BEGIN, *rows, _TABLE_END])


def publish(root: Path = Path("."), setting: Optional[Setting] = None, *, check: bool = False) -> List[str]:
    """Rewrite every notebook's badge and setup cell and the README table from ``setting``.

    ``setting=None`` reads it from ``pyproject.toml`` (a given one is written there first). Returns the
    files that disagreed (with ``check=True`` nothing is written: the list is what ``publish`` would change).
    """
    root = Path(root)
    changed = []
    if setting is None:
        setting = read_setting(root)
    elif _stored_setting(root) != setting:
        changed.append("pyproject.toml")
        if not check:
            write_setting(root, setting)
    folder = root / "notebooks"
    for path in sorted(folder.glob("[0-9]*.ipynb")) + sorted((folder / "student").glob("[0-9]*.ipynb")):
        before = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        after = nbformat.writes(stamp(nbformat.reads(before, as_version=4), setting, rel), version=4)
        after = after if after.endswith("\n") else after + "\n"
        if after != before:
            changed.append(rel)
            if not check:
                atomic_write_text(after, path)
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if _TABLE_BEGIN not in text or _TABLE_END not in text:
        raise ValueError(f"publish: README.md needs the lines {_TABLE_BEGIN} and {_TABLE_END} around the table")
    head, rest = text.split(_TABLE_BEGIN, 1)
    new = head + readme_table(root, setting) + rest.split(_TABLE_END, 1)[1]
    if new != text:
        changed.append("README.md")
        if not check:
            atomic_write_text(new, readme)
    return changed
