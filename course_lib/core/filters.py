"""The one Gaussian blur of the course (degradations, SSIM's window, portrait effects, augmentation).

A Gaussian blur is separable: convolving with ``g(x) g(y)`` is a 1-D convolution along the rows
followed by one along the columns, ``2 (2r + 1)`` multiplications per pixel instead of
``(2r + 1)^2``. Written out (rather than ``torchvision.transforms.functional.gaussian_blur``) so that
the kernel, the radius and the border rule are visible; tested against ``scipy.ndimage.gaussian_filter``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_kernel1d", "gaussian_blur"]


def gaussian_kernel1d(sigma: float, radius: int | None = None, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """``g[t] = exp(-t^2 / (2 sigma^2))`` for ``t = -r..r``, normalised to sum 1; ``r = ceil(3 sigma)`` by default."""
    r = max(1, int(math.ceil(3 * sigma))) if radius is None else int(radius)
    t = torch.arange(-r, r + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, *, border: str = "reflect", radius: int | None = None) -> torch.Tensor:
    """Blur ``x`` of shape ``(..., C, H, W)`` with a Gaussian of std ``sigma`` pixels (``sigma <= 0``: unchanged).

    ``border``: ``"reflect"`` (mirror without repeating the edge; falls back to ``"replicate"`` along
    a side shorter than the radius), ``"replicate"`` (repeat the edge) or ``"zeros"``.
    """
    if sigma <= 0:
        return x
    g = gaussian_kernel1d(sigma, radius, dtype=x.dtype, device=x.device)
    r = (g.numel() - 1) // 2
    shape = x.shape
    y = x.reshape(-1, *shape[-3:])
    c = y.shape[1]

    def pad(t, pads, side):
        if border == "zeros":
            return F.pad(t, pads)
        mode = "reflect" if border == "reflect" and r < side else "replicate"
        return F.pad(t, pads, mode=mode)

    y = F.conv2d(pad(y, (r, r, 0, 0), shape[-1]), g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(pad(y, (0, 0, r, r), shape[-2]), g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y.reshape(shape)
