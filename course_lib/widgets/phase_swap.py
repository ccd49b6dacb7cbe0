"""The phase/magnitude widget: how critical is the phase?

Pick two grayscale images A and B. :func:`phase_swap_figure` shows them, their Fourier magnitudes and phases,
and four reconstructions: |F A| with the phase of B, |F B| with the phase of A, A's magnitude with a random
phase, and A's phase with a random magnitude (Oppenheim and Lim, "The importance of phase in signals", Proc.
IEEE 1981). Under each it prints the correlation with A and with B, so the eye's verdict ("it looks like the
image whose *phase* it carries") is backed by a number. The Fourier work is :mod:`course_lib.phase.fourier`'s.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checks import InputError, check_int, check_tensor
from . import _explorer

__all__ = ["gray_images", "phase_swap_images", "phase_swap_figure", "phase_swap_explorer"]


def gray_images(size: int = 128) -> Dict[str, torch.Tensor]:
    """The offline photographs as ``(size, size)`` grayscale tensors in [0, 1] (centre crops)."""
    from ..core import datasets
    from ..core.images import rgb_to_y, to_tensor

    check_int(size, "gray_images: size", minimum=8)
    out = {}
    for name, img in datasets.offline_natural_images().items():
        x = to_tensor(img)
        h, w = x.shape[-2:]
        s = min(h, w)
        x = x[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        out[name] = rgb_to_y(x)[0].clamp(0, 1)
    return out


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.flatten().double() - a.double().mean()
    b = b.flatten().double() - b.double().mean()
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-12))


def phase_swap_images(a: torch.Tensor, b: torch.Tensor, seed: int = 0) -> Dict[str, torch.Tensor]:
    """The four reconstructions, as ``(H, W)`` tensors (not clipped), and the spectra for display."""
    from ..phase.fourier import magnitude_phase, random_magnitude, random_phase, swap_phase_magnitude

    for name, x in (("a", a), ("b", b)):
        check_tensor(x, f"phase_swap_images: {name} (a grayscale image)", dims=2, shape_hint="(H, W)")
    if a.shape != b.shape:
        raise InputError(f"phase_swap_images: a {tuple(a.shape)} and b {tuple(b.shape)} must have the same size")
    a, b = a.double(), b.double()
    mag_a_phase_b, mag_b_phase_a = swap_phase_magnitude(a, b)
    mag_a, phase_a = magnitude_phase(a)
    mag_b, phase_b = magnitude_phase(b)
    return {"|A| with phase of B": mag_a_phase_b, "|B| with phase of A": mag_b_phase_a,
            "|A| with random phase": random_phase(a, seed=seed),
            "phase of A, random magnitude": random_magnitude(a, seed=seed),
            "_mag_a": mag_a, "_mag_b": mag_b, "_phase_a": phase_a, "_phase_b": phase_b}


def _show(x: torch.Tensor) -> np.ndarray:
    x = x.detach().double()
    lo, hi = torch.quantile(x.flatten(), 0.01), torch.quantile(x.flatten(), 0.99)
    return ((x - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1).numpy()


def phase_swap_figure(a: torch.Tensor, b: torch.Tensor, *, names=("A", "B"), seed: int = 0):
    """Images, spectra and the four reconstructions with their correlations; returns ``(figure, correlations)``."""
    import matplotlib.pyplot as plt

    rec = phase_swap_images(a, b, seed=seed)
    fig, axes = plt.subplots(2, 5, figsize=(15, 6.4))
    top = [(a.numpy(), f"A: {names[0]}"), (b.numpy(), f"B: {names[1]}"),
           (_show(torch.fft.fftshift(torch.log(rec["_mag_a"] + 1e-3))), "log |F A| (centred)"),
           (np.fft.fftshift(rec["_phase_a"].numpy()), "phase of F A (centred)"),
           (np.fft.fftshift(rec["_phase_b"].numpy()), "phase of F B (centred)")]
    for ax, (img, title) in zip(axes[0], top):
        ax.imshow(img, cmap="twilight" if "phase" in title else "gray")
        ax.set_title(title, fontsize=10)
    corrs = {}
    for ax, key in zip(axes[1], [k for k in rec if not k.startswith("_")]):
        ca, cb = _corr(rec[key], a), _corr(rec[key], b)
        corrs[key] = {"corr_with_A": ca, "corr_with_B": cb}
        ax.imshow(_show(rec[key]), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{key}\ncorr A {ca:+.2f} · corr B {cb:+.2f}", fontsize=10)
    axes[1, -1].axis("off")
    axes[1, -1].text(0, 0.5, "Each swapped image looks like\nthe image whose PHASE it carries.\n\n"
                             "Magnitude alone (random phase):\nno image at all.\n"
                             "Phase alone (random magnitude):\nthe edges survive.", fontsize=10, va="center")
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig, corrs


def phase_swap_explorer(size: int = 128):
    """Dropdowns for A and B and a random-seed slider around :func:`phase_swap_figure`."""
    import ipywidgets as w

    images = gray_images(size)
    names = list(images)
    pick_a = w.Dropdown(options=names, value="astronaut" if "astronaut" in images else names[0], description="A")
    pick_b = w.Dropdown(options=names, value="grace_hopper" if "grace_hopper" in images else names[1], description="B")
    seed = w.IntSlider(value=0, min=0, max=20, description="random seed")
    return _explorer([[pick_a, pick_b, seed]], lambda: phase_swap_figure(
        images[pick_a.value], images[pick_b.value], names=(pick_a.value, pick_b.value), seed=seed.value)[0])
