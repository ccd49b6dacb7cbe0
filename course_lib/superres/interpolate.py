"""Interpolation baselines: upscale a low-resolution image without learning anything.

Every super-resolution network is compared with these. ``bicubic`` is the
baseline of the benchmark tables (Set5 x3: 30.39 dB PSNR-Y); ``nearest``
shows the raw pixels; ``lanczos`` is the sharpest of the classical kernels
and rings at edges.

The kernels are PIL's (see :func:`course_lib.superres.degrade.resize`):
``bilinear`` and ``bicubic`` (``a = -0.5``) equal PIL's float resize, and
on 8-bit images differ from PIL's ``Image.resize`` by at most 1/255;
``nearest`` repeats each pixel ``scale x scale`` times (exactly
``np.repeat``); ``lanczos`` is Lanczos-3 with PIL's weights.

Example::

    >>> import torch
    >>> lr = torch.rand(1, 3, 16, 16)
    >>> upscale_interpolate(lr, 3, "bicubic").shape
    torch.Size([1, 3, 48, 48])
"""
from __future__ import annotations

from ..core.checks import check_choice, check_int
from .degrade import _as_batch, _resize

__all__ = ["METHODS", "upscale_interpolate"]

METHODS = ("nearest", "bilinear", "bicubic", "lanczos")


def upscale_interpolate(lr, scale: int, method: str = "bicubic"):
    """Enlarge ``lr`` by an integer ``scale``: ``(..., H, W) -> (..., H * scale, W * scale)``.

    Args:
        lr: tensor ``(C, H, W)`` or ``(N, C, H, W)`` in [0, 1], or a PIL image
            (then a PIL image is returned).
        scale: integer factor >= 1.
        method: one of :data:`METHODS`.

    Returns:
        The upscaled image, clamped to [0, 1] (the cubic and Lanczos kernels
        overshoot at edges).

    Example:
        >>> x = torch.tensor([[[0.0, 1.0]]])
        >>> upscale_interpolate(x, 2, "nearest")
        tensor([[[0., 0., 1., 1.],
                 [0., 0., 1., 1.]]])
    """
    scale = check_int(scale, "upscale_interpolate: scale", minimum=1)
    check_choice(method, METHODS, "upscale_interpolate: method")
    x, back = _as_batch(lr, "upscale_interpolate: lr")
    h, w = x.shape[-2:]
    # antialias only matters when shrinking; for enlarging it selects PIL's
    # kernels (torch's non-antialiased bicubic is a = -0.75 with edge padding).
    return back(_resize(x, h * scale, w * scale, method, antialias=True))
