"""Figures the notebooks share: image grids with zoom insets, training curves, tables."""
from __future__ import annotations

import base64
import html
import io
import math
from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = ["show_images", "plot_history", "results_table", "as_display_array", "show_in_output"]


def as_display_array(img) -> np.ndarray:
    """Tensor ``(C, H, W)``/``(H, W)``, PIL image or array -> array for ``imshow``."""
    from PIL import Image

    if isinstance(img, Image.Image):
        return np.asarray(img)
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu().float()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() == 3:
            if t.shape[0] not in (1, 3):
                raise ValueError(f"show_images: tensor images must be (1|3, H, W), got {tuple(t.shape)}")
            t = t[0] if t.shape[0] == 1 else t.permute(1, 2, 0)
        elif t.dim() != 2:
            raise ValueError(f"show_images: tensor images must be (C, H, W) or (H, W), got {tuple(t.shape)}")
        return t.clamp(0, 1).numpy()
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ValueError(f"show_images: arrays must be (H, W) or (H, W, C), got {arr.shape}")
    return arr


def show_images(images: Sequence, titles: Sequence[str] | None = None, *, ncols: int | None = None,
                zoom: tuple[int, int, int, int] | None = None, zoom_factor: float = 0.42, size: float = 3.2,
                cmap: str = "gray", suptitle: str | None = None, interpolation: str = "nearest"):
    """Show images side by side; returns the matplotlib figure.

    ``zoom=(top, left, height, width)`` draws a magnified inset of that region in the lower-right
    corner of every image (coordinates relative to the *first* image and scaled to each image's size,
    so LR and HR images line up), with a rectangle marking the region: where the fine detail of SR
    shows. ``interpolation="nearest"`` shows pixels as they are (no display smoothing).
    """
    import matplotlib.pyplot as plt

    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError("show_images: images must be a non-empty list")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"show_images: got {len(titles)} titles for {len(images)} images")
    arrays = [as_display_array(im) for im in images]
    n = len(arrays)
    ncols = ncols or min(n, 4)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    ref_h, ref_w = arrays[0].shape[:2]
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        arr = arrays[i]
        style = dict(cmap=cmap if arr.ndim == 2 else None, vmin=0, vmax=1 if arr.dtype != np.uint8 else 255,
                     interpolation=interpolation)
        ax.imshow(arr, **style)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        if zoom is not None:
            top, left, hh, ww = zoom
            sy, sx = arr.shape[0] / ref_h, arr.shape[1] / ref_w
            y0, x0, y1, x1 = top * sy, left * sx, (top + hh) * sy, (left + ww) * sx
            ins = ax.inset_axes([1 - zoom_factor, 0, zoom_factor, zoom_factor])
            ins.imshow(arr, **style)
            ins.set(xlim=(x0 - 0.5, x1 - 0.5), ylim=(y1 - 0.5, y0 - 0.5), xticks=[], yticks=[])
            ins.spines[:].set_edgecolor("yellow")
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       edgecolor="yellow", linewidth=1))
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_history(history: Mapping, keys: Sequence[str] = ("loss",), *, smooth: int = 20, ax=None,
                 logy: bool = False, label: str | None = None):
    """Training curves from :func:`course_lib.core.training.fit`'s history: train values raw (faint) and
    as a running mean over ``smooth`` steps, validation values as markers. Returns the axes (one per key)."""
    import matplotlib.pyplot as plt

    if not isinstance(history, Mapping) or "train" not in history:
        raise ValueError("plot_history: history must be the dict returned by fit (keys 'train', 'val')")
    keys = list(keys)
    if ax is None:
        ax = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)[1].ravel()
    axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    prefix = f"{label} " if label else ""
    for key, a in zip(keys, axes):
        rows = [r for r in history["train"] if key in r]
        if rows:
            steps = np.array([r["step"] for r in rows])
            vals = np.array([r[key] for r in rows], dtype=float)
            smoothed = smooth > 1 and len(vals) > smooth
            a.plot(steps, vals, alpha=0.25 if smoothed else 1.0, lw=0.8,
                   label=None if smoothed else f"{prefix}train {key}")
            if smoothed:
                kernel = np.ones(smooth) / smooth
                a.plot(steps[smooth - 1:], np.convolve(vals, kernel, mode="valid"), label=f"{prefix}train {key}")
        vrows = [r for r in history.get("val", []) if key in r]
        if vrows:
            a.plot([r["step"] for r in vrows], [r[key] for r in vrows], "o-", label=f"{prefix}val {key}")
        a.set(xlabel="step", ylabel=key)
        if logy:
            a.set_yscale("log")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    return axes


class _Table:
    """A table that renders as HTML in Jupyter and as markdown in text."""

    def __init__(self, rows, columns, floatfmt):
        self.rows, self.columns, self.floatfmt = rows, columns, floatfmt

    def _fmt(self, v):
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = float(v)
        if isinstance(v, float):
            return format(v, self.floatfmt)
        return "" if v is None else str(v)

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(self._fmt(r.get(c)) for c in self.columns) + " |" for r in self.rows]
        return "\n".join(lines)

    __repr__ = to_markdown

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(self._fmt(r.get(c)))}</td>" for c in self.columns)
                       + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def results_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None, floatfmt: str = ".2f"):
    """A list of dicts as a table (HTML in Jupyter, markdown as text)."""
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Mapping) for r in rows):
        raise ValueError("results_table: rows must be a list of dicts")
    columns = list(dict.fromkeys(k for r in rows for k in r)) if columns is None else columns  # first-seen order
    return _Table(list(rows), list(columns), floatfmt)


def show_in_output(out, content) -> None:
    """Make an ``ipywidgets.Output`` show one matplotlib figure (closed afterwards) or one line of text.

    The widget's ``outputs`` are replaced in one assignment from the kernel. The usual idiom,
    ``with out: out.clear_output(wait=True); display(fig)``, goes through the front end, and under a
    headless executor (nbclient, hence nbconvert, nbval and ``make course``) its state sync can cross
    the cell's execute_reply so that the notebook waits for ever. Setting the state directly has no
    round trip, no flicker, and works in JupyterLab, Colab and the HTML.
    """
    if isinstance(content, str):
        outputs = ({"output_type": "stream", "name": "stdout", "text": content + "\n"},)
    else:
        import matplotlib.pyplot as plt

        if not hasattr(content, "savefig"):
            raise TypeError("show_in_output: content must be a matplotlib figure or a str, "
                            f"got {type(content).__name__}")
        buf = io.BytesIO()
        content.savefig(buf, format="png", bbox_inches="tight")
        plt.close(content)
        outputs = ({"output_type": "display_data", "metadata": {},
                    "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                             "text/plain": repr(content)}},)
    out.outputs = outputs
