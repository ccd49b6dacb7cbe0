"""Portrait effects from a predicted mask: background blur ("portrait mode") and background replacement.

Both composite ``out = alpha * image + (1 - alpha) * background`` with a *soft* alpha: the network's probability map,
or the hard mask, feathered by a Gaussian blur of ``feather`` pixels so that hair and shoulders do not get a cut-out
edge. The blurred background of :func:`blur_background` is computed from the background only (the person is masked
out and the blur renormalised), so the person does not leak a halo into the background around them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checks import InputError, check_number
from ..core.filters import gaussian_blur
from ..core.images import load_image, to_tensor

__all__ = ["soft_alpha", "blur_background", "replace_background"]


def _image(x, fn: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = to_tensor(load_image(x, mode="RGB"))
    if x.dim() != 3 or x.shape[0] != 3:
        raise InputError(f"{fn}: image must be an RGB tensor (3, H, W) in [0, 1] or a PIL image/path, "
                         f"got shape {tuple(x.shape)}")
    return x.float()


def _alpha(mask, shape, feather, fn: str, threshold=None) -> torch.Tensor:
    """The mask checked once (``(H, W)`` of ``shape`` in [0, 1]), binarised at ``threshold`` if given, feathered."""
    mask = torch.as_tensor(np.asarray(mask, dtype=np.float32)) if not isinstance(mask, torch.Tensor) else mask.float()
    mask = mask[0] if mask.dim() == 3 and mask.shape[0] == 1 else mask
    if mask.dim() != 2:
        raise InputError(f"{fn}: mask must be (H, W) or (1, H, W) with values in [0, 1], got shape {tuple(mask.shape)}")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise InputError(f"{fn}: mask {tuple(mask.shape)} and image {tuple(shape)} differ in size")
    if not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise InputError(f"{fn}: mask values must be finite and in [0, 1] (a probability map or a 0/1 mask), "
                         f"got range [{float(mask.min()):.3g}, {float(mask.max()):.3g}]")
    if threshold is not None:
        mask = (mask >= threshold).float()
    return gaussian_blur(mask[None], check_number(feather, f"{fn}: feather (pixels)", low=0))[0].clamp(0, 1)


def soft_alpha(mask, *, feather: float = 2.0, threshold: float | None = None) -> torch.Tensor:
    """A soft matte ``(H, W)`` in [0, 1] from a probability map or a 0/1 mask.

    ``threshold``: binarise first (e.g. 0.5) -- then the edge softness comes
    only from ``feather``, the Gaussian sigma in pixels.
    """
    return _alpha(mask, None, feather, "soft_alpha", threshold)


def blur_background(image, mask, *, sigma: float = 8.0, feather: float = 2.0) -> torch.Tensor:
    """"Portrait mode": the person sharp, the background blurred with a Gaussian of ``sigma`` pixels.

    ``mask``: the person's probability map or 0/1 mask ``(H, W)``. Returns ``(3, H, W)`` in [0, 1].
    """
    img = _image(image, "blur_background")
    alpha = _alpha(mask, img.shape[-2:], feather, "blur_background")
    sigma = check_number(sigma, "blur_background: sigma (pixels)", low=0, low_open=True)
    weight = 1 - alpha
    num = gaussian_blur(img * weight, sigma)
    den = gaussian_blur(weight[None], sigma).clamp_min(1e-4)
    background = torch.where(den > 1e-3, num / den, gaussian_blur(img, sigma))
    return (alpha * img + (1 - alpha) * background).clamp(0, 1)


def replace_background(image, mask, background, *, feather: float = 2.0) -> torch.Tensor:
    """The person composited over ``background`` (resized to the image's size if needed)."""
    img = _image(image, "replace_background")
    alpha = _alpha(mask, img.shape[-2:], feather, "replace_background")
    bg = _image(background, "replace_background")
    if bg.shape[-2:] != img.shape[-2:]:
        bg = F.interpolate(bg[None], size=img.shape[-2:], mode="bilinear", antialias=True, align_corners=False)[0]
    return (alpha * img + (1 - alpha) * bg).clamp(0, 1)
