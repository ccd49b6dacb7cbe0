"""The widget cells executed headless, as `make course` and nbconvert execute them.

A headless executor (nbclient) stands in for the front end of an ``ipywidgets.Output``: when the
kernel captures a cell's output into the widget, nbclient syncs the widget's state back over the
shell channel, and a sync that crosses the cell's execute_reply left the reply unread (the cell
then "finished" only when its timeout ran out; notebook 08's phase-swap explorer, 4 runs in 5).
These tests run every explorer in a real kernel under nbclient with a short per-cell limit, several
times, and check both that each cell returns quickly and that its Output widget holds the figure.
"""
import base64
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.core.plotting import show_in_output

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "notebooks"))
import execute  # noqa: E402  (notebooks/execute.py, the lecture build's runner)

CELL_LIMIT = 60  # seconds; each explorer cell takes about 1-3 s on 2 CPU cores

EXPLORERS = {
    "phase swap": "from course_lib.widgets.phase_swap import phase_swap_explorer\nbox = phase_swap_explorer(128)\nbox",
    "degradation": ("from course_lib.widgets.degradation import degradation_explorer\n"
                    "from course_lib.core.images import to_tensor\nfrom skimage import data\n"
                    "box = degradation_explorer(to_tensor(data.astronaut()[:96, :96]))\nbox"),
    "jaccard vs nll": "from course_lib.widgets.jaccard_vs_nll import jaccard_vs_nll_explorer\nbox = jaccard_vs_nll_explorer(size=32)\nbox",
}


def _output_widget_images(nb) -> list:
    """The PNG outputs held by the Output widgets of the executed notebook's widget state."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    images = []
    for model in state.values():
        if model.get("model_name") == "OutputModel":
            for out in model["state"].get("outputs", []):
                if "image/png" in out.get("data", {}):
                    images.append(out["data"]["image/png"])
    return images


@pytest.mark.slow
def test_explorer_cells_return_their_reply_headless(tmp_path):
    repeats = 3
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline")]
    for _ in range(repeats):
        nb.cells += [nbformat.v4.new_code_cell(src) for src in EXPLORERS.values()]
    path = tmp_path / "widgets.ipynb"
    nbformat.write(nb, path)
    t0 = time.monotonic()
    executed, times = execute.execute_notebook(path, cell_timeout=CELL_LIMIT, notebook_timeout=10 * CELL_LIMIT,
                                               env={"COURSE_PROFILE": "ci"})
    assert len(times) == 1 + repeats * len(EXPLORERS)
    slow = [(i, round(t, 1)) for i, t in times if t > CELL_LIMIT / 3]
    assert not slow, f"explorer cells that took a third of their limit or more (a lost reply): {slow}"
    # every explorer cell shows its figure in its Output widget, in the saved widget state too
    images = _output_widget_images(executed)
    assert len(images) == repeats * len(EXPLORERS)
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert time.monotonic() - t0 < 10 * CELL_LIMIT


def test_show_in_output_replaces_the_widget_outputs_with_one_png_or_text():
    import ipywidgets as w
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = w.Output()
    for value in (1, 2):
        fig, ax = plt.subplots()
        ax.plot([0, value])
        show_in_output(out, fig)
        assert len(out.outputs) == 1 and out.outputs[0]["output_type"] == "display_data"
        assert base64.b64decode(out.outputs[0]["data"]["image/png"])[:4] == b"\x89PNG"
        assert not plt.fignum_exists(fig.number), "the figure must be closed once it is shown"
    show_in_output(out, "choose at least one style layer")
    assert out.outputs == ({"output_type": "stream", "name": "stdout", "text": "choose at least one style layer\n"},)
    with pytest.raises(TypeError, match="content must be a matplotlib figure or a str"):
        show_in_output(out, 3)


def test_explorer_redraws_into_its_output_when_a_control_changes():
    from course_lib.widgets.jaccard_vs_nll import jaccard_vs_nll_explorer

    box = jaccard_vs_nll_explorer(size=32)
    out = box.children[-1]
    before = out.outputs[0]["data"]["image/png"]
    box.children[0].children[1].value = 0.6  # the confidence slider
    assert len(out.outputs) == 1 and out.outputs[0]["data"]["image/png"] != before


def test_execute_reports_a_hanging_cell_by_notebook_and_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("text"),
                nbformat.v4.new_code_cell("import time\ntime.sleep(30)")]
    path = tmp_path / "hang.ipynb"
    nbformat.write(nb, path)
    t0 = time.monotonic()
    with pytest.raises(execute.NotebookFailed, match=r"hang.ipynb: cell 2 \('import time'\) did not finish within 3 s"):
        execute.execute_notebook(path, cell_timeout=3, notebook_timeout=60)
    assert time.monotonic() - t0 < 25


def test_execute_notebook_budget_and_errors_name_the_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(2)"), nbformat.v4.new_code_cell("1 / 0")]
    path = tmp_path / "err.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(execute.NotebookFailed, match=r"err.ipynb: cell 1 \('1 / 0'\) raised: ZeroDivisionError"):
        execute.execute_notebook(path, cell_timeout=30, notebook_timeout=60)
    # a notebook budget smaller than the first cell's run: that cell is cut to the budget
    with pytest.raises(execute.NotebookFailed, match=r"err.ipynb: cell 0 .*(did not finish within 1 s|took its whole limit|not started)"):
        execute.execute_notebook(path, cell_timeout=30, notebook_timeout=1.5)
