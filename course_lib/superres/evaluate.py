"""Evaluation by the field's protocol (Shi et al. 2016 and the benchmark tables follow it).

For every HR image: crop it so its sides divide by the scale, make the LR input with the degradation, upscale
it with each method, and score against the HR on the luma channel Y (BT.601) after shaving ``scale`` pixels
from every border: PSNR-Y and SSIM-Y, averaged over images.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch

from ..core.checks import InputError, check_int
from ..core.images import check_image_tensor
from ..core.metrics import psnr, ssim
from .degrade import crop_to_multiple, degrade
from .inference import upscale
from .interpolate import upscale_interpolate

__all__ = ["evaluate_images", "sr_methods"]


def sr_methods(model=None, deblock_pipeline=None, interpolations=("bicubic",)) -> dict[str, Callable]:
    """``{name: lr -> sr}`` for the interpolation baselines and the given models."""
    methods: dict[str, Callable] = {}
    for m in interpolations:
        methods[m] = (lambda method: (lambda lr, r: upscale_interpolate(lr, r, method)))(m)
    if model is not None:
        methods["espcn"] = lambda lr, r: upscale(model, lr)
    if deblock_pipeline is not None:
        methods["deblock+espcn"] = lambda lr, r: upscale(deblock_pipeline, lr)
    return methods


def evaluate_images(images: Mapping[str, torch.Tensor], scale: int, methods: Mapping[str, Callable],
                    degradation="bicubic", seed: int = 0) -> dict:
    """Score each method on each image; returns ``{"per_image": [...], "mean": {method: {...}}}``.

    ``images``: ``{name: (3, H, W) tensor in [0, 1]}``; ``methods``: ``{name: f(lr, scale) -> sr}``.
    The LR of image ``k`` is made with seed ``seed + k``, so every method sees the same input.
    """
    if not isinstance(images, Mapping) or not images:
        raise InputError("evaluate_images: images must be a non-empty {name: tensor} dict")
    check_int(scale, "evaluate_images: scale", minimum=1)
    rows = []
    for k, (name, img) in enumerate(images.items()):
        check_image_tensor(img, f"evaluate_images: image {name!r}", channels=3, batched=False)
        if min(img.shape[-2:]) < 2 * scale + 11 * scale:
            raise InputError(f"evaluate_images: image {name!r} of {tuple(img.shape[-2:])} is too small "
                             f"for scale {scale} (SSIM needs 11x11 pixels after the shave)")
        hr = crop_to_multiple(img, scale)
        lr = degrade(hr, scale, degradation, seed=seed + k)
        for method, fn in methods.items():
            sr = fn(lr, scale).clamp(0, 1)
            if sr.shape != hr.shape:
                raise ValueError(f"evaluate_images: method {method!r} returned {tuple(sr.shape)} for HR {tuple(hr.shape)}")
            rows.append({"image": name, "method": method,
                         "psnr_y": float(psnr(sr, hr, y_channel=True, shave=scale)),
                         "ssim_y": float(ssim(sr, hr, y_channel=True, shave=scale))})
    mean = {m: {k: sum(r[k] for r in rows if r["method"] == m) / len(images) for k in ("psnr_y", "ssim_y")}
            for m in methods}
    return {"scale": scale, "degradation": degradation if isinstance(degradation, str) else repr(degradation),
            "images": list(images), "per_image": rows, "mean": mean}
