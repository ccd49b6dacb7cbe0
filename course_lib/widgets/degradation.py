"""The degradation widget: how kernel, scale, blur, noise and JPEG shape the LR input (HR, LR and the bicubic
reconstruction with its PSNR; :func:`degradation_pipeline` turns the settings into a ``Pipeline``).
"""
from __future__ import annotations

import torch

from ..core.checks import check_choice, check_int
from ..core.images import check_image_tensor, to_tensor
from ..core.metrics import psnr
from ..core.plotting import show_images
from ..superres.degrade import JPEG, KERNELS, Downscale, GaussianBlur, GaussianNoise, Pipeline, crop_to_multiple
from ..superres.interpolate import upscale_interpolate
from . import _explorer

__all__ = ["degradation_pipeline", "degradation_figure", "degradation_explorer"]


def degradation_pipeline(scale: int = 3, kernel: str = "bicubic", blur_sigma: float = 0.0,
                         noise_sigma: float = 0.0, jpeg_quality: int = 100, antialias: bool = True) -> Pipeline:
    """Blur (if ``blur_sigma > 0``) -> downscale -> noise (``noise_sigma`` in 1/255) -> JPEG (if quality < 100)."""
    check_choice(kernel, KERNELS, "degradation_pipeline: kernel")
    check_int(int(jpeg_quality), "degradation_pipeline: jpeg_quality (100 = no JPEG)", minimum=1, maximum=100)
    steps = [GaussianBlur(float(blur_sigma))] if blur_sigma > 0 else []
    steps.append(Downscale(int(scale), kernel, antialias=antialias))
    if noise_sigma > 0:
        steps.append(GaussianNoise(float(noise_sigma)))
    if jpeg_quality < 100:
        steps.append(JPEG(int(jpeg_quality)))
    return Pipeline(steps)


def degradation_figure(hr, scale: int = 3, kernel: str = "bicubic", blur_sigma: float = 0.0, noise_sigma: float = 0.0,
                       jpeg_quality: int = 100, antialias: bool = True, seed: int = 0, zoom=None):
    """HR | LR (shown at HR size, nearest) | bicubic upscaling of the LR, with PSNR-Y against HR.

    Returns ``(figure, info)`` where ``info`` holds the PSNR and the pipeline's description.
    """
    hr = to_tensor(hr) if not isinstance(hr, torch.Tensor) else hr
    check_image_tensor(hr, "degradation_figure: hr", channels=3, batched=False)
    pipe = degradation_pipeline(scale, kernel, blur_sigma, noise_sigma, jpeg_quality, antialias)
    hr = crop_to_multiple(hr, scale)
    lr = pipe(hr, seed=seed).clamp(0, 1)
    back = upscale_interpolate(lr, scale, "bicubic")
    value = float(psnr(back, hr, y_channel=True, shave=scale))
    fig = show_images([hr, upscale_interpolate(lr, scale, "nearest"), back],
                      [f"HR {hr.shape[-1]}×{hr.shape[-2]}", f"LR {lr.shape[-1]}×{lr.shape[-2]} (pixels enlarged)",
                       f"bicubic back: PSNR-Y {value:.2f} dB"], ncols=3, zoom=zoom, size=3.6)
    fig.suptitle(" → ".join(pipe.describe()), fontsize=9)
    fig.tight_layout()
    return fig, {"psnr_y": value, "steps": pipe.describe(), "lr_shape": tuple(lr.shape)}


def degradation_explorer(hr, zoom=None, seed: int = 0):
    """Controls for :func:`degradation_figure` (updates when a slider is released)."""
    import ipywidgets as w

    style = {"description_width": "110px"}
    controls = {
        "scale": w.Dropdown(options=[2, 3, 4], value=3, description="scale", style=style),
        "kernel": w.Dropdown(options=list(KERNELS), value="bicubic", description="kernel", style=style),
        "antialias": w.Checkbox(value=True, description="antialias"),
        "blur_sigma": w.FloatSlider(value=0.0, max=3.0, step=0.1, description="blur σ (px)", style=style),
        "noise_sigma": w.FloatSlider(value=0.0, max=30.0, step=1.0, description="noise σ (/255)", style=style),
        "jpeg_quality": w.IntSlider(value=100, min=5, max=100, step=5, description="JPEG quality", style=style),
    }
    rows = [[controls[k] for k in ("scale", "kernel", "antialias")],
            [controls[k] for k in ("blur_sigma", "noise_sigma", "jpeg_quality")]]
    return _explorer(rows, lambda: degradation_figure(hr, seed=seed, zoom=zoom,
                                                      **{k: c.value for k, c in controls.items()})[0])
