"""Image quality metrics shared by the units: PSNR and SSIM.

Both take float tensors in ``[0, data_range]`` of shape ``(C, H, W)`` or ``(N, C, H, W)`` and return
one value per image (a tensor of shape ``(N,)``, or a 0-d tensor for a single image).

SSIM (Wang et al., "Image quality assessment: from error visibility to structural similarity", IEEE
TIP 2004, eq. 13) is written out in torch so that it runs batched on the GPU and can be
differentiated; with an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, population
covariances and the mean over the "valid" region it is exactly
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``, which the tests compare against.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import InputError, check_finite, check_int, check_number, check_same_shape, check_tensor
from .filters import gaussian_kernel1d
from .images import rgb_to_y

__all__ = ["psnr", "ssim", "mse"]


def _prepare(pred, target, fn, y_channel=False, shave=0):
    """Check the pair once (tensors, same shape, finite) and give them as float64 ``(N, C, H, W)``."""
    for name, t in (("pred", pred), ("target", target)):
        check_tensor(t, f"{fn}: {name}", dims=(2, 3, 4), shape_hint="(H, W), (C, H, W) or (N, C, H, W)")
        check_finite(t, f"{fn}: {name}")  # a NaN pixel would make the score NaN without a word
    check_same_shape(pred, target, f"{fn}: pred and target")
    single = pred.dim() < 4
    while pred.dim() < 4:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    pred, target = pred.double(), target.double()
    if y_channel:
        if pred.shape[1] != 3:
            raise InputError(f"{fn}: y_channel=True needs RGB images (3 channels), got {tuple(pred.shape)}")
        pred, target = rgb_to_y(pred), rgb_to_y(target)
    if check_int(shave, f"{fn}: shave", minimum=0):
        if 2 * shave >= min(pred.shape[-2:]):
            raise InputError(f"{fn}: shave={shave} removes the whole {tuple(pred.shape[-2:])} image")
        pred, target = pred[..., shave:-shave, shave:-shave], target[..., shave:-shave, shave:-shave]
    return pred, target, single


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image."""
    pred, target, single = _prepare(pred, target, "mse")
    out = ((pred - target) ** 2).flatten(1).mean(1)
    return out[0] if single else out


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
         y_channel: bool = False, shave: int = 0) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB, per image.

    ``y_channel=True`` evaluates BT.601 luma (RGB inputs in [0, 1]); ``shave`` crops that many pixels
    from each border first (the SR protocol uses the scale factor). Identical images give ``inf``.

    >>> import torch
    >>> a = torch.zeros(1, 4, 4); b = torch.full((1, 4, 4), 0.1)
    >>> round(float(psnr(a, b)), 6)
    20.0
    """
    check_number(data_range, "psnr: data_range", low=0, low_open=True)
    pred, target, single = _prepare(pred, target, "psnr", y_channel, shave)
    err = ((pred - target) ** 2).flatten(1).mean(1)
    out = 10.0 * torch.log10(data_range ** 2 / err)
    return out[0] if single else out


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, y_channel: bool = False, shave: int = 0,
         win_size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity per image (mean over channels and valid positions).

    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``
    with local statistics from a separable Gaussian window, ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, ``L = data_range``.
    """
    check_number(data_range, "ssim: data_range", low=0, low_open=True)
    if check_int(win_size, "ssim: win_size", minimum=3) % 2 != 1:
        raise InputError(f"ssim: win_size must be an odd int >= 3, got {win_size!r}")
    pred, target, single = _prepare(pred, target, "ssim", y_channel, shave)
    n, c, h, w = pred.shape
    if h < win_size or w < win_size:
        raise ValueError(f"ssim: images of {h}x{w} are smaller than the {win_size}x{win_size} window")
    g = gaussian_kernel1d(sigma, radius=win_size // 2, dtype=pred.dtype, device=pred.device)
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
