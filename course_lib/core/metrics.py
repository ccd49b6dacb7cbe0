"""Image quality metrics shared by the units: PSNR and SSIM.

Both take float tensors in ``[0, data_range]`` of shape ``(C, H, W)`` or
``(N, C, H, W)`` and return one value per image (a tensor of shape ``(N,)``,
or a 0-d tensor for a single image).

PSNR optionally follows the super-resolution protocol: evaluate the luma
channel Y of BT.601 (``y_channel=True``) after shaving ``shave`` pixels from
each border.

SSIM (Wang et al., "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 2004, eq. 13) is written out here in torch so
that it runs batched on the GPU and can be differentiated; it uses an 11x11
Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03 and population
covariances, and averages over the "valid" region. That is exactly
``skimage.metrics.structural_similarity(..., gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)``, which the tests compare against.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .images import check_finite, rgb_to_y

__all__ = ["psnr", "ssim", "mse"]


def _pair(pred, target, fn):
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() not in (2, 3, 4):
            raise ValueError(f"{fn}: {name} must have shape (H, W), (C, H, W) or (N, C, H, W), "
                             f"got {tuple(t.shape)}")
        if t.numel() == 0:
            raise ValueError(f"{fn}: {name} is empty: shape {tuple(t.shape)}")
        check_finite(t, f"{fn}: {name}")  # a NaN pixel would make the score NaN without a word
    if pred.shape != target.shape:
        raise ValueError(f"{fn}: pred and target must have the same shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    single = pred.dim() < 4
    while pred.dim() < 4:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    return pred.double(), target.double(), single


def _prepare(pred, target, y_channel, shave, fn):
    pred, target, single = _pair(pred, target, fn)
    if y_channel:
        if pred.shape[1] != 3:
            raise ValueError(f"{fn}: y_channel=True needs RGB images (3 channels), got {tuple(pred.shape)}")
        pred, target = rgb_to_y(pred), rgb_to_y(target)
    if shave:
        if not isinstance(shave, int) or shave < 0:
            raise ValueError(f"{fn}: shave must be a non-negative int, got {shave!r}")
        if 2 * shave >= min(pred.shape[-2:]):
            raise ValueError(f"{fn}: shave={shave} removes the whole {tuple(pred.shape[-2:])} image")
        pred = pred[..., shave:-shave, shave:-shave]
        target = target[..., shave:-shave, shave:-shave]
    return pred, target, single


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image."""
    pred, target, single = _pair(pred, target, "mse")
    out = ((pred - target) ** 2).flatten(1).mean(1)
    return out[0] if single else out


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
         y_channel: bool = False, shave: int = 0) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB, per image.

    ``y_channel=True`` evaluates BT.601 luma (RGB inputs in [0, 1]); ``shave``
    crops that many pixels from each border first (the SR protocol uses the
    scale factor). Identical images give ``inf``.

    >>> import torch
    >>> a = torch.zeros(1, 4, 4); b = torch.full((1, 4, 4), 0.1)
    >>> round(float(psnr(a, b)), 6)
    20.0
    """
    if not data_range > 0:
        raise ValueError(f"psnr: data_range must be positive, got {data_range!r}")
    pred, target, single = _prepare(pred, target, y_channel, shave, "psnr")
    err = ((pred - target) ** 2).flatten(1).mean(1)
    out = 10.0 * torch.log10(data_range ** 2 / err)
    return out[0] if single else out


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
         y_channel: bool = False, shave: int = 0, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity per image (mean over channels and valid positions).

    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``
    with local statistics from a separable Gaussian window, ``C1 = (k1 L)^2``,
    ``C2 = (k2 L)^2``, ``L = data_range``.
    """
    if not data_range > 0:
        raise ValueError(f"ssim: data_range must be positive, got {data_range!r}")
    if win_size % 2 != 1 or win_size < 3:
        raise ValueError(f"ssim: win_size must be an odd int >= 3, got {win_size!r}")
    pred, target, single = _prepare(pred, target, y_channel, shave, "ssim")
    n, c, h, w = pred.shape
    if h < win_size or w < win_size:
        raise ValueError(f"ssim: images of {h}x{w} are smaller than the {win_size}x{win_size} window")
    g = _gaussian_window(win_size, sigma, pred.dtype, pred.device)
    kh = g.view(1, 1, win_size, 1).expand(c, 1, win_size, 1)
    kw = g.view(1, 1, 1, win_size).expand(c, 1, 1, win_size)

    def blur(x):
        return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)

    mu_x, mu_y = blur(pred), blur(target)
    sxx = blur(pred * pred) - mu_x ** 2
    syy = blur(target * target) - mu_y ** 2
    sxy = blur(pred * target) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    out = s.flatten(1).mean(1)
    return out[0] if single else out
