"""Execute notebooks headless with time limits, optionally writing HTML (`make course`).

    python notebooks/execute.py notebooks/0*.ipynb --html build --cell-timeout 600 --notebook-timeout 1800

Each notebook runs in a fresh kernel, cell by cell (nbclient). A cell that raises, or that does not
finish within its time limit, stops that notebook with one line naming the notebook, the cell
number and the cell's first line; the other notebooks still run, and the exit status is 1 if any
failed. A hang is caught two ways: the per-cell timeout, and the per-notebook budget (each cell's
limit is cut to what is left of it). Why check the elapsed time as well as the timeout: when a
reply is lost, nbclient can return the cell as if it had succeeded when its timeout runs out, so a
cell that takes its whole limit counts as a hang.

At the end it prints the time of each notebook. Not part of the installed package: it is the
repository's lecture build, like ``benchmarks/``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

__all__ = ["execute_notebook", "main"]


class NotebookFailed(RuntimeError):
    """A notebook stopped: a cell raised or ran out of time (the message names notebook and cell)."""


def _first_line(source: str) -> str:
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return (lines[0] if lines else source.strip()[:60])[:80]


def execute_notebook(path, *, cell_timeout: float = 600, notebook_timeout: float = 1800,
                     kernel_name: str = "python3", env: dict | None = None):
    """Run every code cell of ``path``; returns ``(notebook, seconds per cell)``.

    Raises :class:`NotebookFailed` naming the notebook and the cell when a cell raises or does not
    finish within ``min(cell_timeout, what is left of notebook_timeout)`` seconds.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"execute: no notebook at {path}")
    if not (cell_timeout > 0 and notebook_timeout > 0):
        raise ValueError(f"execute: time limits must be positive, got cell {cell_timeout}, notebook {notebook_timeout}")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=int(cell_timeout), kernel_name=kernel_name, allow_errors=False,
                            startup_timeout=120, resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    times: list[tuple[int, float]] = []
    old_env = dict(os.environ)
    os.environ.update(env or {})
    try:
        with client.setup_kernel():
            client.timeout = 120
            try:
                client.wait_for_reply(client.kc.kernel_info())
            except (TimeoutError, RuntimeError) as exc:
                raise NotebookFailed(f"{path.name}: the kernel did not answer within 120 s of its start ({exc})") from None
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                left = notebook_timeout - (time.monotonic() - start)
                limit = min(cell_timeout, left)
                where = f"{path.name}: cell {index} ({_first_line(cell.source)!r})"
                if limit <= 0:
                    raise NotebookFailed(f"{where} not started: the notebook's budget of {notebook_timeout:.0f} s is spent")
                client.timeout = max(1, int(limit))
                t0 = time.monotonic()
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    raise NotebookFailed(f"{where} did not finish within {client.timeout} s") from None
                except DeadKernelError as exc:
                    raise NotebookFailed(f"{where}: the kernel died ({exc})") from None
                except CellExecutionError as exc:
                    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the traceback's colours
                    last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:]
                    raise NotebookFailed(f"{where} raised: {last[0] if last else exc}") from None
                took = time.monotonic() - t0
                times.append((index, took))
                if took >= 0.98 * client.timeout:
                    raise NotebookFailed(f"{where} took its whole limit of {client.timeout} s "
                                         "(a lost reply or a hang)")
            client.set_widgets_metadata()  # the widgets' state, so that the HTML shows them
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    return nb, times


def _write_html(nb, out: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--html", default=None, help="folder for the executed notebooks as HTML")
    p.add_argument("--profile", default=None, help="COURSE_PROFILE for the kernels (default: as set)")
    p.add_argument("--cell-timeout", type=float, default=600)
    p.add_argument("--notebook-timeout", type=float, default=1800)
    args = p.parse_args(argv)
    env = {"COURSE_PROFILE": args.profile} if args.profile else {}
    failed, rows = [], []
    for name in args.notebooks:
        t0 = time.monotonic()
        try:
            nb, _ = execute_notebook(name, cell_timeout=args.cell_timeout,
                                     notebook_timeout=args.notebook_timeout, env=env)
        except (NotebookFailed, FileNotFoundError) as exc:
            failed.append(str(exc))
            rows.append((Path(name).name, time.monotonic() - t0, "FAILED"))
            print(f"error: {exc}", file=sys.stderr, flush=True)
            continue
        if args.html:
            _write_html(nb, Path(args.html) / (Path(name).stem + ".html"))
        rows.append((Path(name).name, time.monotonic() - t0, "ok"))
        print(f"{Path(name).name:45s} {rows[-1][1]:7.1f} s", flush=True)
    print(f"\n{'notebook':45s} {'seconds':>8s}")
    for name, secs, status in rows:
        print(f"{name:45s} {secs:8.1f}  {status}")
    print(f"{'total':45s} {sum(r[1] for r in rows):8.1f}")
    if failed:
        print(f"{len(failed)} notebook(s) failed:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
