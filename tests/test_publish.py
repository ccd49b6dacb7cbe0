"""One repository setting (pyproject ``[tool.course]``) for every notebook's badge and setup cell (issue 14)."""
from __future__ import annotations

import shutil
import sys
import tomllib
import types
from pathlib import Path

import nbformat
import pytest

from course_lib.core import colab_storage
from course_lib.exercises.__main__ import main as exercises_main
from course_lib.exercises.publish import (BADGE_TAG, Setting, colab_url, publish, read_setting, setup_source,
                                          write_setting)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")) + sorted((ROOT / "notebooks" / "student").glob("[0-9]*.ipynb"))


def test_every_notebook_agrees_with_the_setting(monkeypatch):
    monkeypatch.delenv("COURSE_REPO", raising=False)
    monkeypatch.delenv("COURSE_BRANCH", raising=False)
    assert len(NOTEBOOKS) == 20
    assert publish(ROOT, check=True) == [], "run: make publish REPO=<the repository in pyproject.toml>"
    setting = read_setting(ROOT)
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["course"]
    assert setting == Setting(table["repository"], table["branch"])
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        rel = path.relative_to(ROOT).as_posix()
        assert BADGE_TAG in nb.cells[0].metadata.get("tags", []), rel
        assert colab_url(setting, rel) in nb.cells[0].source, rel
        setup = [c for c in nb.cells if c.cell_type == "code"][0]
        assert setup.source == setup_source(setting), rel
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert colab_url(setting, path.relative_to(ROOT).as_posix()) in readme


@pytest.fixture
def repo_copy(tmp_path):
    (tmp_path / "notebooks" / "student").mkdir(parents=True)
    for name in ("00_welcome.ipynb", "06_segmentation_losses.ipynb"):
        shutil.copy2(ROOT / "notebooks" / name, tmp_path / "notebooks" / name)
        shutil.copy2(ROOT / "notebooks" / "student" / name, tmp_path / "notebooks" / "student" / name)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def test_publish_rewrites_notebooks_readme_and_setting(repo_copy, monkeypatch, capsys):
    monkeypatch.delenv("COURSE_REPO", raising=False)
    monkeypatch.delenv("COURSE_BRANCH", raising=False)
    monkeypatch.chdir(repo_copy)
    before = tomllib.loads((repo_copy / "pyproject.toml").read_text())
    assert exercises_main(["publish", "--repo", "https://github.com/lecturer/imaging-2027", "--branch", "spring"]) == 0
    after = tomllib.loads((repo_copy / "pyproject.toml").read_text())
    assert after["tool"]["course"] == {"repository": "https://github.com/lecturer/imaging-2027", "branch": "spring"}
    assert {k: v for k, v in after.items() if k != "tool"} == {k: v for k, v in before.items() if k != "tool"}
    assert after["tool"]["setuptools"] == before["tool"]["setuptools"]
    expected = "https://colab.research.google.com/github/lecturer/imaging-2027/blob/spring/notebooks/student/06_segmentation_losses.ipynb"
    nb = nbformat.read(repo_copy / "notebooks" / "student" / "06_segmentation_losses.ipynb", as_version=4)
    assert expected in nb.cells[0].source
    assert 'os.environ.get("COURSE_REPO", "https://github.com/lecturer/imaging-2027")' in nb.cells[2].source
    assert 'os.environ.get("COURSE_BRANCH", "spring")' in nb.cells[2].source
    assert expected in (repo_copy / "README.md").read_text()
    # publishing twice changes nothing; a hand edit is caught by --check, which names the file
    assert publish(repo_copy, check=True) == []
    text = (repo_copy / "pyproject.toml").read_text()
    other = publish(repo_copy, Setting("https://github.com/other/x"), check=True)
    assert other[0] == "pyproject.toml" and len(other) == 6 and (repo_copy / "pyproject.toml").read_text() == text
    cells = nb.cells
    cells[2].source = cells[2].source.replace("imaging-2027", "imaging-2026")
    nbformat.write(nb, repo_copy / "notebooks" / "student" / "06_segmentation_losses.ipynb")
    capsys.readouterr()
    assert exercises_main(["publish", "--check"]) == 1
    out = capsys.readouterr().out
    assert "notebooks/student/06_segmentation_losses.ipynb" in out and "00_welcome" not in out


def test_badge_is_inserted_once_and_setup_cell_must_exist(repo_copy):
    setting = Setting("https://github.com/a/b")
    path = repo_copy / "notebooks" / "00_welcome.ipynb"
    publish(repo_copy, setting)
    publish(repo_copy, setting)
    nb = nbformat.read(path, as_version=4)
    assert sum(BADGE_TAG in c.metadata.get("tags", []) for c in nb.cells) == 1
    setup = [c for c in nb.cells if c.cell_type == "code"][0]
    setup.source = "import os"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="00_welcome.ipynb must have exactly one setup cell"):
        publish(repo_copy, setting)


def test_setting_errors_are_one_clear_line(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="repository must look like https://github.com/USER/NAME, got 'https://gitlab"):
        colab_url(Setting("https://gitlab.com/a/b"), "notebooks/x.ipynb")
    assert colab_url(Setting("https://github.com/a/b.git", "dev"), "n/x.ipynb") == \
        "https://colab.research.google.com/github/a/b/blob/dev/n/x.ipynb"
    with pytest.raises(FileNotFoundError, match="repository tool"):
        read_setting(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(KeyError, match=r"\[tool.course\] repository"):
        read_setting(tmp_path, environ={})
    monkeypatch.chdir(tmp_path)
    assert exercises_main(["publish", "--check"]) == 2
    write_setting(tmp_path, Setting("https://github.com/x/y"))
    assert read_setting(tmp_path, environ={}) == Setting("https://github.com/x/y", "main")
    assert read_setting(tmp_path, environ={"COURSE_REPO": "https://github.com/fork/y", "COURSE_BRANCH": "b"}) == \
        Setting("https://github.com/fork/y", "b")
    assert tomllib.loads((tmp_path / "pyproject.toml").read_text())["project"] == {"name": "x"}


def test_student_build_links_the_student_path(repo_copy, monkeypatch):
    from course_lib.exercises.builder import build

    monkeypatch.delenv("COURSE_REPO", raising=False)
    setting = Setting("https://github.com/a/b")
    publish(repo_copy, setting)
    for path in build(repo_copy / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        assert colab_url(setting, f"notebooks/student/{path.name}") in nb.cells[0].source
    assert publish(repo_copy, check=True) == []


@pytest.fixture
def fake_colab(monkeypatch):
    mounted = []
    colab = types.ModuleType("google.colab")
    drive = types.ModuleType("google.colab.drive")
    drive.mount = mounted.append
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    for var in ("COURSE_DATA", "COURSE_DRIVE", "CI"):
        monkeypatch.delenv(var, raising=False)
    return mounted


def test_colab_storage_content_drive_and_ci(fake_colab, monkeypatch):
    import os

    assert "/content/course_data" in colab_storage() and os.environ["COURSE_DATA"] == "/content/course_data"
    monkeypatch.delenv("COURSE_DATA")
    message = colab_storage(drive=True)
    assert fake_colab == ["/content/drive"] and os.environ["COURSE_DATA"] == "/content/drive/MyDrive/course_data"
    assert "Google Drive" in message
    monkeypatch.delenv("COURSE_DATA")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("COURSE_DRIVE", "1")
    assert "not mounted under CI" in colab_storage() and fake_colab == ["/content/drive"]
    monkeypatch.setenv("COURSE_DATA", "/somewhere")
    assert colab_storage(drive=True) == "data and checkpoints in /somewhere (COURSE_DATA)"
