"""Images in, for the style unit: any image a user passes becomes an RGB tensor ``(3, H, W)`` in [0, 1]
(:func:`as_rgb`, the edge of ``stylize``, ``reconstruct`` and the command line); :func:`resize`,
:func:`fit_longer_side` and :func:`gray` are the resizing and luminance steps of the Gatys optimisation.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checks import InputError, check_tensor
from ..core.images import load_tensor, rgb_to_y, to_tensor

__all__ = ["as_rgb", "resize", "fit_longer_side", "gray"]


def as_rgb(image, name: str = "image") -> torch.Tensor:
    """A path, bytes, PIL image, array or tensor -> RGB tensor ``(3, H, W)`` in [0, 1].

    Grayscale is repeated to three channels; RGBA/LA is composited over white (files go through
    :func:`course_lib.core.images.load_tensor`, which also applies the EXIF orientation).
    """
    if isinstance(image, (str, os.PathLike, bytes, bytearray)) or hasattr(image, "getpixel"):
        return load_tensor(image, mode="RGB")
    if isinstance(image, np.ndarray):
        image = to_tensor(image)
    check_tensor(image, name, dims=(3, 4), channels=(1, 2, 3, 4), floating=True, shape_hint="(C, H, W)")
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise InputError(f"{name}: give one image (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        image = image[0]
    image = image.detach().float()
    if image.shape[0] in (2, 4):  # composite over white
        image = image[:-1] * image[-1:] + (1 - image[-1:])
    return image.expand(3, -1, -1).clone() if image.shape[0] == 1 else image


def resize(x: torch.Tensor, hw) -> torch.Tensor:
    """``(C, H, W)`` to ``hw = (H', W')``, bilinear with antialiasing, clipped to [0, 1]."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x[None], size=tuple(hw), mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)


def fit_longer_side(h: int, w: int, size: int) -> tuple[int, int]:
    """``(H', W')`` with the longer side ``size`` and the aspect ratio of ``(h, w)``."""
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def gray(x: torch.Tensor) -> torch.Tensor:
    """Gray RGB image whose BT.601 luma equals that of ``x`` (full-range Y repeated)."""
    return ((rgb_to_y(x) - 16.0 / 255.0) * (255.0 / 219.0)).clamp(0, 1).expand(3, -1, -1).clone()
