"""Interpolation baselines: upscale a low-resolution image without learning anything.

Every super-resolution network is compared with these. ``bicubic`` is the baseline of the benchmark tables;
``nearest`` shows the raw pixels (each repeated ``scale x scale`` times); ``lanczos`` is the sharpest of the
classical kernels and rings at edges. The kernels are PIL's (see :func:`course_lib.superres.degrade.resize`).
"""
from __future__ import annotations

from ..core.checks import check_choice, check_int
from .degrade import _as_batch, _resize

__all__ = ["METHODS", "upscale_interpolate"]

METHODS = ("nearest", "bilinear", "bicubic", "lanczos")


def upscale_interpolate(lr, scale: int, method: str = "bicubic"):
    """Enlarge ``lr`` by an integer ``scale``: ``(..., H, W) -> (..., H * scale, W * scale)``.

    ``lr``: a tensor ``(C, H, W)`` or ``(N, C, H, W)`` in [0, 1], or a PIL image (then a PIL image is returned);
    ``method``: one of :data:`METHODS`. The result is clamped to [0, 1] (cubic and Lanczos overshoot at edges).
    """
    scale = check_int(scale, "upscale_interpolate: scale", minimum=1)
    check_choice(method, METHODS, "upscale_interpolate: method")
    x, back = _as_batch(lr, "upscale_interpolate: lr")
    h, w = x.shape[-2:]
    # antialias only matters when shrinking; for enlarging it selects PIL's kernels (torch's bicubic: a = -0.75)
    return back(_resize(x, h * scale, w * scale, method, antialias=True))
