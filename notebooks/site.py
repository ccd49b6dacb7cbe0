"""Build the course website: executed notebooks as HTML plus an index (`make site`).

    python notebooks/site.py --profile lecture --out build/site notebooks/0*.ipynb

Each notebook is executed in a fresh kernel by ``execute.py`` (same time limits as ``make course``) and
written with nbconvert to ``<out>/notebooks/<name>.html``; ``<out>/index.html`` holds the course table of
``00_welcome``, every notebook's page and its "Open in Colab" links (from the repository setting in
``pyproject.toml``) and the published-versus-measured table of the README. All links are relative and
nothing is fetched while building, so the folder opens from the file system and on GitHub Pages
(``.nojekyll`` included). A notebook that fails is listed on the index as not built and the exit status is 1.

A public site must only show what may be published: by default (``--data offline``) the notebooks see
only the images that installed packages ship and the public-domain paintings, not the EG1800 portraits
a development machine may hold (Flickr photos of people, for research use); ``--data local`` shows
whatever this machine has (for a site that stays internal).
A repository tool, like ``execute.py``; not part of the installed package.
"""
from __future__ import annotations

import argparse
import html
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from execute import NotebookFailed, execute_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}code{background:#f6f6f6;padding:0 .2em}.failed{color:#a00}"""


def _between(text: str, begin: str, end: str) -> str:
    return text.split(begin, 1)[1].split(end, 1)[0] if begin in text and end in text else ""


def _welcome_table(notebooks) -> str:
    """The markdown table of the 00_welcome notebook's first cell (the course plan)."""
    import nbformat

    for path in notebooks:
        if Path(path).name.startswith("00_"):
            for cell in nbformat.read(path, as_version=4).cells:
                rows = [ln for ln in cell.source.splitlines() if ln.startswith("|")]
                if cell.cell_type == "markdown" and len(rows) > 2:
                    return "\n".join(rows)
    return ""


def index_html(pages: list[tuple[Path, str | None]], seconds: float, profile: str, data: str = "offline") -> str:
    """The index page; ``pages`` holds ``(notebook, html path relative to the index or None if it failed)``."""
    import mistune
    import nbformat

    sys.path.insert(0, str(ROOT))
    from course_lib.exercises.publish import colab_url, notebook_title, read_setting

    setting = read_setting(ROOT)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = []
    for nb_path, page in pages:
        title = html.escape(notebook_title(nbformat.read(nb_path, as_version=4)))
        name = Path(nb_path).name
        cell = f'<a href="{page}">{title}</a>' if page else f'{title} <span class="failed">(not built)</span>'
        colab = [f'<a href="{colab_url(setting, p)}">Open in Colab</a>'
                 for p in (f"notebooks/student/{name}", f"notebooks/{name}")]
        rows.append(f"<tr><td>{cell}</td><td>{colab[0]}</td><td>{colab[1]}</td></tr>")
    results = _between(readme, "<!-- results:begin -->", "<!-- results:end -->")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Deep learning for imaging</title>
<style>{_STYLE}</style></head><body>
<h1>Deep learning for imaging — course and workbook</h1>
<p>Four imaging problems — super-resolution, style transfer, portrait segmentation and phase retrieval — as
Jupyter notebooks built on the tested package <code>course_lib</code>. The pages below are the instructor
notebooks executed in the <code>{html.escape(profile)}</code> profile; open a notebook in Colab to run it
(students: the student version, with the exercises as stubs). Source:
<a href="{html.escape(setting.repository)}">{html.escape(setting.repository)}</a>.</p>
<h2>The course</h2>
{mistune.html(_welcome_table([p for p, _ in pages]))}
<h2>Notebooks</h2>
<table><tr><th>notebook (executed)</th><th>student</th><th>instructor</th></tr>
{chr(10).join(rows)}
</table>
<h2>Published and measured</h2>
{mistune.html(results)}
<p><small>Built in {seconds:.0f} s by <code>make site</code> with {"the offline images only (no local portrait data)"
if data == "offline" else "the data of the machine that built it"}.</small></p>
</body></html>
"""


def build_site(notebooks, out: Path, *, profile: str = "lecture", data: str = "offline", cell_timeout: float = 600,
               notebook_timeout: float = 1800) -> list[str]:
    """Execute ``notebooks`` and write the site into ``out``; returns the failures (one line each)."""
    from nbconvert import HTMLExporter

    out = Path(out)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    pages, failed = [], []
    env = {"COURSE_PROFILE": profile}
    if data == "offline":  # the portrait notebooks fall back to synthetic portraits
        env["COURSE_PORTRAITS"] = str(out / "no-local-portraits")
    for path in map(Path, notebooks):
        t0 = time.monotonic()
        try:
            nb, _ = execute_notebook(path, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                                     env=env)
        except (NotebookFailed, FileNotFoundError) as exc:
            failed.append(str(exc))
            pages.append((path, None))
            print(f"error: {exc}", file=sys.stderr, flush=True)
            continue
        body, _ = HTMLExporter().from_notebook_node(nb)
        page = f"notebooks/{path.stem}.html"
        _write(out / page, body)
        pages.append((path, page))
        print(f"{path.name:45s} {time.monotonic() - t0:7.1f} s", flush=True)
    _write(out / "index.html", index_html(pages, time.monotonic() - start, profile, data))
    _write(out / ".nojekyll", "")
    return failed


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--out", default="build/site")
    p.add_argument("--profile", default="lecture", choices=("ci", "lecture", "full"))
    p.add_argument("--data", default="offline", choices=("offline", "local"),
                   help="offline: only images that may be published (default); local: this machine's data too")
    p.add_argument("--cell-timeout", type=float, default=600)
    p.add_argument("--notebook-timeout", type=float, default=1800)
    args = p.parse_args(argv)
    t0 = time.monotonic()
    failed = build_site(args.notebooks, Path(args.out), profile=args.profile, data=args.data,
                        cell_timeout=args.cell_timeout,
                        notebook_timeout=args.notebook_timeout)
    print(f"site in {Path(args.out) / 'index.html'} ({time.monotonic() - t0:.0f} s)")
    if failed:
        print(f"{len(failed)} notebook(s) failed:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
