"""The Jaccard-versus-NLL widget: how the two losses see the same mistake.

A synthetic case (:func:`loss_case`): the true mask is a disc covering a chosen fraction of the image; the
prediction makes a chosen kind of mistake (shrunk, grown, shifted, everything called background) with a chosen
confidence.

What it shows: the NLL is an average over *pixels*, so when the background dominates, calling everything
background costs little (its NLL falls with the foreground fraction), and its gradient is spread over the many
easy background pixels. The Jaccard loss is a ratio over the *object*: missing the object costs 1 whatever its
size, and its gradient concentrates on the object and its boundary.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..core.checks import check_choice, check_int, check_number, check_probability
from . import _explorer

__all__ = ["ERRORS", "loss_case", "loss_sweep", "jaccard_vs_nll_figure", "jaccard_vs_nll_explorer"]

#: The kinds of mistake the prediction can make.
ERRORS = ("none", "shrunk", "grown", "shifted", "all background")


def _disc(size: int, radius: float, cx: float, cy: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2)


def loss_case(foreground_fraction: float = 0.1, confidence: float = 0.9, error: str = "shrunk", *,
              amount: float = 0.3, size: int = 64) -> dict:
    """Both losses, the hard IoU and their gradients for one synthetic case.

    ``foreground_fraction``: area of the true disc / image area, in (0, 0.6]. ``confidence``, in (0.5, 1): the
    prediction is ``p̂ = confidence`` inside its predicted region, ``1 - confidence`` outside. ``error``: one of
    :data:`ERRORS`; ``"shrunk"`` / ``"grown"`` change the radius by ``amount`` (a fraction of it, in [0, 1]),
    ``"shifted"`` moves the disc by ``amount`` radii, ``"all background"`` predicts no foreground at all.
    ``size``: the image side in pixels.

    Returns a dict: ``target`` and ``prob`` (``(size, size)`` float arrays), ``bce``, ``jaccard_loss`` (soft,
    ``1 - J``), ``iou`` (hard, at 0.5), ``foreground_fraction``, and ``grad_bce`` / ``grad_jaccard``: the
    gradients of each loss with respect to the logits, ``(size, size)`` arrays.
    """
    from ..segmentation.losses import bce_loss, soft_jaccard_loss
    from ..segmentation.metrics import iou

    check_int(size, "loss_case: size", minimum=16)
    foreground_fraction = check_number(float(foreground_fraction), "loss_case: foreground_fraction (a disc inside "
                                       "the image)", low=0, high=0.6, low_open=True)
    confidence = check_number(float(confidence), "loss_case: confidence", low=0.5, high=1, low_open=True,
                              high_open=True)
    check_choice(error, ERRORS, "loss_case: error")
    amount = check_probability(float(amount), "loss_case: amount")
    r = math.sqrt(foreground_fraction * size * size / math.pi)
    c = size / 2
    target = _disc(size, r, c, c)
    # the predicted disc: its radius (times r) and its shift to the right (in radii); "none" predicts the target
    factor, shift = {"shrunk": (1 - amount, 0), "grown": (1 + amount, 0), "shifted": (1, amount)}.get(error, (1, 0))
    pred = np.zeros_like(target) if error == "all background" else _disc(size, r * factor, c + shift * r, c)
    prob = np.where(pred, confidence, 1 - confidence).astype(np.float64)
    logits = torch.tensor(np.log(prob / (1 - prob)))[None, None].requires_grad_(True)
    t = torch.tensor(target, dtype=torch.float64)[None, None]
    bce = bce_loss(logits, t)
    (g_bce,) = torch.autograd.grad(bce, logits)
    jac = soft_jaccard_loss(logits, t)
    (g_jac,) = torch.autograd.grad(jac, logits)
    hard = iou(torch.tensor(prob)[None, None], t, threshold=0.5)
    return {"target": target.astype(np.float64), "prob": prob, "bce": float(bce.detach()),
            "jaccard_loss": float(jac.detach()), "iou": float(hard.reshape(-1)[0]), "grad_bce": g_bce[0, 0].numpy(),
            "grad_jaccard": g_jac[0, 0].numpy(), "foreground_fraction": float(target.mean())}


def loss_sweep(fractions: Sequence[float] = None, confidence: float = 0.9, error: str = "shrunk", *,
               amount: float = 0.3, size: int = 64) -> dict:
    """:func:`loss_case` over foreground fractions: lists ``fraction``, ``bce``, ``jaccard_loss``, ``iou``."""
    fractions = np.geomspace(0.005, 0.5, 15) if fractions is None else fractions
    cases = [loss_case(float(f), confidence, error, amount=amount, size=size) for f in fractions]
    return {"fraction": [case["foreground_fraction"] for case in cases],
            **{k: [case[k] for case in cases] for k in ("bce", "jaccard_loss", "iou")}}


def jaccard_vs_nll_figure(foreground_fraction: float = 0.05, confidence: float = 0.9, error: str = "all background",
                          *, amount: float = 0.3, size: int = 64):
    """Masks, both gradient maps and a sweep over the foreground fraction; returns ``(figure, case)``."""
    import matplotlib.pyplot as plt

    case = loss_case(foreground_fraction, confidence, error, amount=amount, size=size)
    sweep = loss_sweep(confidence=confidence, error=error, amount=amount, size=size)
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.4), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.6]})
    axes[0].imshow(case["target"], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"truth: {100 * case['foreground_fraction']:.1f}% foreground")
    axes[1].imshow(case["prob"], cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"prediction p̂ ({error})\nIoU {case['iou']:.2f}")
    for ax, (key, loss, name) in zip(axes[2:4], (("grad_bce", "bce", "NLL"),
                                                  ("grad_jaccard", "jaccard_loss", "Jaccard"))):
        g = case[key]
        lim = max(float(np.abs(g).max()), 1e-12)
        ax.imshow(g, cmap="RdBu_r", vmin=-lim, vmax=lim)
        share = float(np.abs(g)[case["target"] > 0].sum() / max(np.abs(g).sum(), 1e-30))
        ax.set_title(f"∂{name}/∂logit (loss {case[loss]:.3f})\n{100 * share:.0f}% of |grad| on the object")
    for ax in axes[:4]:
        ax.set_xticks([]), ax.set_yticks([])
    ax = axes[4]
    ax.plot(sweep["fraction"], sweep["bce"], "o-", label="NLL (BCE)")
    ax.plot(sweep["fraction"], sweep["jaccard_loss"], "s-", label="soft Jaccard loss 1 − J")
    ax.plot(sweep["fraction"], 1 - np.asarray(sweep["iou"]), "k--", label="1 − hard IoU")
    ax.axvline(case["foreground_fraction"], color="gray", lw=0.8)
    ax.set_xscale("log"), ax.set_xlabel("foreground fraction"), ax.set_ylim(bottom=0)
    ax.set_title(f"same mistake ({error}), object size varies")
    ax.legend(fontsize=8), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig, case


def jaccard_vs_nll_explorer(*, size: int = 64):
    """Sliders for :func:`jaccard_vs_nll_figure` (``continuous_update=False``)."""
    import ipywidgets as w

    frac = w.FloatLogSlider(value=0.05, base=10, min=-2.3, max=math.log10(0.5), step=0.1, description="foreground")
    conf = w.FloatSlider(value=0.9, min=0.55, max=0.99, step=0.01, description="confidence")
    err = w.Dropdown(options=list(ERRORS), value="all background", description="mistake")
    amount = w.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05, description="amount")
    return _explorer([[frac, conf], [err, amount]], lambda: jaccard_vs_nll_figure(
        frac.value, conf.value, err.value, amount=amount.value, size=size)[0])
