"""Scoring phase retrieval up to the trivial ambiguities of the Fourier magnitude.

``|F P x|`` does not change when ``x`` is

* multiplied by a global phase ``e^{i c}`` -- for the real, non-negative images here that leaves only ``x``;
* circularly shifted on the padded grid (with padding, only shifts that keep the object inside the support block
  survive the support constraint, but an MNIST digit in its 28 x 28 frame can still move);
* rotated by 180° (the "twin", the conjugate flip ``x[-n]``): ``x[::-1, ::-1]`` (= ``torch.rot90(x, 2)``) is the
  conjugate flip shifted back into the support block (without padding: circularly shifted by one pixel), so it
  has exactly the same magnitude.

A reconstruction is therefore scored against the target with the best of the candidates, **per image and per
metric**:

* ``protocol='prdad'`` (Gugel and Dekel, PR-DAD, arXiv 2204.09051): the best of the prediction and its 180°
  rotation, no registration;
* ``protocol='uelwer'`` (Uelwer, Oberstrass and Harmeling, PRCGAN, ICPR 2020; Uelwer et al., CPR, ICANN 2021;
  also the course's REFERENCE_RESULTS): the best of the prediction and its 180° rotation, each first registered
  to the target by the integer circular shift that maximises the cross-correlation (:func:`register_translation`);
* ``protocol='none'``: the plain metric.

Metrics: MSE and MAE per image (lower is better), SSIM and PSNR from :mod:`course_lib.core.metrics` (11 x 11
Gaussian window, data range 1; higher is better). Images are ``(N, C, H, W)`` (or ``(C, H, W)`` / ``(H, W)``).

Example::

    >>> import torch
    >>> x = torch.rand(3, 1, 16, 16)
    >>> twin = torch.rot90(x, 2, (-2, -1))
    >>> float(rotation_invariant_mse(twin, x).max())
    0.0
    >>> shifted = torch.roll(twin, (2, -3), (-2, -1))
    >>> float(rotation_invariant_mse(shifted, x, register=True).max())
    0.0
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple, Union

import torch

from ..core.checks import InputError, check_choice, check_finite, check_same_shape, check_tensor
from ..core.metrics import psnr as _psnr
from ..core.metrics import ssim as _ssim

__all__ = [
    "PROTOCOLS", "rotate_180", "circular_shift", "register_translation", "best_of_twins", "align_to_target",
    "rotation_invariant_mse", "evaluate_reconstructions",
]

PROTOCOLS = ("uelwer", "prdad", "none")

Metric = Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def _as_batch(pred, target, fn: str) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """The edge check of the public functions: ``(pred, target, single)`` as ``(N, C, H, W)``."""
    for name, t in (("pred", pred), ("target", target)):
        check_finite(check_tensor(t, f"{fn}: {name}", dims=(2, 3, 4), floating=True,
                                  shape_hint="(H, W), (C, H, W) or (N, C, H, W)"), f"{fn}: {name}")
    check_same_shape(pred, target, f"{fn}: pred and target")
    single = pred.dim() < 4
    while pred.dim() < 4:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    return pred, target.to(pred.dtype), single


def _mse(pred, target):
    return (pred.double() - target.double()).square().flatten(1).mean(1)


# name -> (per-image metric on (N, C, H, W), higher is better)
_METRICS: Dict[str, Tuple[Callable, bool]] = {
    "mse": (_mse, False),
    "mae": (lambda p, t: (p.double() - t.double()).abs().flatten(1).mean(1), False),
    "ssim": (lambda p, t: _ssim(p, t, data_range=1.0), True),
    "psnr": (lambda p, t: _psnr(p, t, data_range=1.0), True),
}


def rotate_180(x: torch.Tensor) -> torch.Tensor:
    """``x[..., ::-1, ::-1]``: the 180° rotation (``torch.rot90(x, 2)`` on the last two axes)."""
    return torch.flip(x, (-2, -1))


def circular_shift(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll each image ``(N, C, H, W)`` by its own ``shifts[n] = (dy, dx)``: ``out[n][i, j] = x[n][i - dy, j - dx]``
    (``torch.roll`` with one shift per image: integer pixels, wrapping around)."""
    n, c, h, w = x.shape
    shifts = torch.as_tensor(shifts, device=x.device).long().reshape(n, 2)
    rows = (torch.arange(h, device=x.device)[None, :] - shifts[:, :1]) % h       # (N, H)
    cols = (torch.arange(w, device=x.device)[None, :] - shifts[:, 1:]) % w       # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return x[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def register_translation(pred: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Shift each prediction circularly (integer pixels) to best match its target.

    The shift ``d`` maximises the cross-correlation ``sum_n pred[n - d] target[n]``, computed for all shifts at
    once with the FFT, ``corr = F^-1(conj(F pred) F target)`` (summed over channels). A circular shift does not
    change ``||pred||``, so this is also the shift with the smallest MSE. Returns
    ``(registered (N, C, H, W), shifts (N, 2) as (dy, dx))``.
    """
    pred, target, single = _as_batch(pred, target, "register_translation")
    out, shifts = _register(pred, target)
    return (out[0], shifts[0]) if single else (out, shifts)


def _register(pred: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    spectrum = torch.conj(torch.fft.fft2(pred.double())) * torch.fft.fft2(target.double())
    corr = torch.fft.ifft2(spectrum).real.sum(1)                       # (N, H, W)
    best = corr.flatten(1).argmax(1)
    shifts = torch.stack([best // corr.shape[-1], best % corr.shape[-1]], dim=1)
    return circular_shift(pred, shifts), shifts


def _candidates(pred, target, register: bool):
    cands = [pred, rotate_180(pred)]
    return [_register(c, target)[0] for c in cands] if register else cands


def best_of_twins(pred: torch.Tensor, target: torch.Tensor, metric: Metric = "mse", *, register: bool = False,
                  higher_is_better=None) -> torch.Tensor:
    """Per image, the best value of ``metric`` over ``pred`` and its 180° rotation.

    metric: 'mse', 'mae', 'ssim', 'psnr', or a callable ``(pred, target) -> (N,)`` on ``(N, C, H, W)`` tensors;
        for a callable say ``higher_is_better`` (default False: an error).
    register: register each candidate to the target by a circular shift first (:func:`register_translation`;
        the 'uelwer' protocol).

    Returns ``(N,)`` (a 0-d tensor for a single image).
    """
    pred, target, single = _as_batch(pred, target, "best_of_twins")
    if callable(metric):
        f, higher = metric, bool(higher_is_better)
    else:
        f, higher = _METRICS[check_choice(metric, tuple(_METRICS), "best_of_twins: metric")]
        if higher_is_better is not None and higher_is_better != higher:
            raise InputError(f"best_of_twins: higher_is_better={higher_is_better} contradicts metric {metric!r}")
    values = torch.stack([torch.as_tensor(f(c, target)).reshape(-1) for c in _candidates(pred, target, register)])
    out = values.max(0).values if higher else values.min(0).values
    return out[0] if single else out


def align_to_target(pred: torch.Tensor, target: torch.Tensor, register: bool = True) -> torch.Tensor:
    """The candidate (``pred`` or its 180° rotation, registered if asked) closest to ``target`` in MSE, per image.

    For pictures: shows each reconstruction the way the target is oriented.
    """
    pred, target, single = _as_batch(pred, target, "align_to_target")
    cands = _candidates(pred, target, register)
    pick = torch.stack([_mse(c, target) for c in cands]).argmin(0)
    out = torch.where(pick.view(-1, 1, 1, 1) == 0, cands[0], cands[1])
    return out[0] if single else out


def rotation_invariant_mse(pred: torch.Tensor, target: torch.Tensor, register: bool = False) -> torch.Tensor:
    """Per-image MSE, best over ``pred`` and its 180° rotation (after registration if ``register``).

    The other metrics the same way: ``best_of_twins(pred, target, 'mae' | 'ssim' | 'psnr', register=...)``.
    """
    return best_of_twins(pred, target, "mse", register=register)


def evaluate_reconstructions(pred: torch.Tensor, target: torch.Tensor, protocol: str = "uelwer",
                             per_image: bool = False) -> Dict[str, object]:
    """Mean MSE, MAE, SSIM and PSNR of reconstructions ``(N, C, H, W)`` under a scoring protocol.

    protocol: 'uelwer', 'prdad' or 'none' (see the module docstring); each metric takes its own best candidate.
    per_image: return the ``(N,)`` tensors instead of their means.

    Returns ``{'mse', 'mae', 'ssim', 'psnr'}`` (floats, or tensors with ``per_image``); the mean PSNR is the mean
    of the per-image PSNRs (``inf`` if one reconstruction is exact).
    """
    check_choice(protocol, PROTOCOLS, "evaluate_reconstructions: protocol")
    pred, target, _ = _as_batch(pred, target, "evaluate_reconstructions")
    cands = [pred] if protocol == "none" else _candidates(pred, target, register=protocol == "uelwer")
    out = {}
    for name, (f, higher) in _METRICS.items():
        values = torch.stack([f(c, target) for c in cands])
        best = values.max(0).values if higher else values.min(0).values
        out[name] = best if per_image else float(best.mean())
    return out
