"""The shipped phase-retrieval networks, one per method and measurement regime, and HIO/ER refinement.

Three regimes, the three situations of the unit (see notebook 09 and ``benchmarks/results/phase.md``):

============== ===== ================ ===========================================================
regime          pad   noise            what happens to the classical algorithms
============== ===== ================ ===========================================================
``pad1``        1     none             no oversampling (the Uelwer protocol): no support constraint,
                                       HIO stagnates (MSE ~0.02-0.04 on MNIST)
``pad2``        2     none             2x oversampling per axis: HIO recovers digits almost exactly,
                                       but needs hundreds of iterations
``pad2_poisson3`` 2   Poisson alpha 3  oversampled, with shot noise (~15-16 dB SNR): HIO degrades
============== ===== ================ ===========================================================

Every regime has an end-to-end MLP, a PR-DAD I and a PR-DAD II for 28 x 28 digits, trained on the 4,000 offline
MNIST training digits by ``python -m course_lib.phase train`` (the sidecar next to each file records the command,
the data, the steps and the held-out metrics). :func:`pretrained` picks the one that matches ``(pad, noise)``;
``python -m course_lib.phase evaluate --method prdad1 --pad 2`` does the same when no ``--checkpoint`` is given.

:func:`refine` runs HIO then ER *started from* a network's output (the "optional refinement" of the unit): the
network supplies a good initial phase, the iterations enforce the measurement.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ..core.checks import InputError, check_choice, check_int, check_number, check_tensor, make_generator
from .classical import error_reduction, hio
from .data import parse_noise
from .fourier import check_magnitude, check_pad, padded_size

__all__ = ["REGIMES", "CHECKPOINT_DIR", "regime_name", "shipped_path", "available", "pretrained",
           "magnitude_error", "refine"]

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
#: regime tag -> (pad, noise) of the measurements the shipped networks were trained on
REGIMES: Dict[str, Tuple[float, Optional[Tuple[str, float]]]] = {
    "pad1": (1.0, None), "pad2": (2.0, None), "pad2_poisson3": (2.0, ("poisson", 3.0))}
_METHODS = ("mlp", "prdad1", "prdad2")


def regime_name(pad=1, noise=None) -> str:
    """The regime tag (``'pad1'``, ``'pad2'``, ``'pad2_poisson3'``) of measurements made with ``pad`` and ``noise``.

    ``noise``: None / ``'none'``, ``'poisson:3'`` or ``('poisson', 3.0)``. Raises ``ValueError`` naming the
    regimes that exist when there is no shipped network for this one.
    """
    pad = check_pad(pad, "regime_name: pad")
    noise = parse_noise(tuple(noise) if isinstance(noise, list) else noise)
    for tag, (p, n) in REGIMES.items():
        if abs(p - pad) < 1e-9 and (n == noise or (n is not None and noise is not None and n[0] == noise[0]
                                                   and abs(n[1] - noise[1]) < 1e-9)):
            return tag
    have = ", ".join(f"{t} (pad {p:g}, noise {'none' if n is None else f'{n[0]}:{n[1]:g}'})"
                     for t, (p, n) in REGIMES.items())
    said = "none" if noise is None else f"{noise[0]}:{noise[1]:g}"
    raise ValueError(f"no shipped phase-retrieval network for pad {pad:g} with noise {said}; the shipped regimes "
                     f"are {have}. Train one with `python -m course_lib.phase train --pad {pad:g}"
                     f"{'' if noise is None else f' --noise {said}'} --out PATH` and pass --checkpoint PATH")


def shipped_path(method: str, pad=1, noise=None) -> Path:
    """Where the shipped ``method`` network for ``(pad, noise)`` lives (it may be missing: see :func:`available`)."""
    check_choice(method, _METHODS, "shipped_path: method")
    return CHECKPOINT_DIR / f"phase_{method}_{regime_name(pad, noise)}.pt"


def available() -> Dict[str, Tuple[str, ...]]:
    """``{regime: (methods with a shipped checkpoint, ...)}``."""
    return {tag: tuple(m for m in _METHODS if (CHECKPOINT_DIR / f"phase_{m}_{tag}.pt").is_file()) for tag in REGIMES}


def pretrained(method: str = "prdad1", pad=1, noise=None):
    """``(model, sidecar)``: the shipped ``method`` network for measurements with ``pad`` and ``noise``, eval mode.

    >>> model, info = pretrained("prdad1", pad=1)              # doctest: +SKIP
    >>> info["heldout"]["mse"]                                  # doctest: +SKIP
    """
    from ..core.checkpoints import load_pretrained
    from .prdad import build_model

    path = shipped_path(method, pad, noise)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained: no shipped checkpoint {path.name} (in {path.parent}); train one with "
                                f"`python -m course_lib.phase train --method {method} --pad {float(pad):g} "
                                f"--out {path}`")
    model, info = load_pretrained(path, build_model, arch=f"phase_{method}")
    return model.eval(), info


def magnitude_error(x: torch.Tensor, y: torch.Tensor, pad=2) -> torch.Tensor:
    """``(N,)`` relative misfit ``||(|F P x| - y)|| / ||y||`` of images ``x (N, 1, h, w)`` to magnitudes ``y``.

    What the classical algorithms minimise, and all one can check without the ground truth.
    """
    check_magnitude(y, "magnitude_error: y")
    check_tensor(x, "magnitude_error: x", dims=4, shape_hint="(N, 1, h, w)")
    shape = (*x.shape[:-2], *padded_size(x.shape[-2], x.shape[-1], pad, "magnitude_error"))
    if shape != tuple(y.shape):
        raise InputError(f"magnitude_error: images {tuple(x.shape)} at pad {float(pad):g} give magnitudes "
                         f"{shape}, but y has shape {tuple(y.shape)}")
    return _misfit(x, y)


def _misfit(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    fx = torch.fft.fft2(x.to(y.dtype), s=y.shape[-2:], norm="ortho").abs()
    return (fx - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1).clamp_min(1e-30)


def refine(y: torch.Tensor, start: torch.Tensor, *, pad=2, hio_iters: int = 200, er_iters: int = 100,
           beta: float = 0.8, starts: int = 4, jitter: float = 0.15, seed=0,
           keep_better: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """HIO then ER started from ``start`` (e.g. a network's output), keeping what fits the magnitude best.

    y: ``(N, 1, H, W)`` measured magnitudes; start: ``(N, 1, h, w)`` images. HIO (``hio_iters``, feedback
    ``beta``) moves away from the start towards a point that fits the magnitude; ER (``er_iters``) then settles
    into the nearest such point that meets the constraints.

    starts: how many runs per image, all in one batch: the first from ``start`` itself, the others from ``start``
    plus Gaussian noise of standard deviation ``jitter`` (clipped to [0, 1]; ``seed``). Without oversampling one
    start often stagnates where a nearby one does not.

    Per image the candidate with the lowest :func:`magnitude_error` is kept -- among the refined runs and, with
    ``keep_better``, the (clipped) start itself, so the result never fits the measurement worse than the start
    (a choice made from the data alone, not from the ground truth). Returns ``(images, refined)``: ``refined``
    is a bool ``(N,)``, True where a refined run was kept.
    """
    check_magnitude(y, "refine: y")
    if not isinstance(start, torch.Tensor) or start.dim() != 4 or start.shape[0] != y.shape[0]:
        raise InputError(f"refine: start must be images (N, 1, h, w) with N = {y.shape[0]} (one per magnitude), got "
                         f"{tuple(start.shape) if isinstance(start, torch.Tensor) else type(start).__name__}")
    hio_iters, er_iters = check_int(hio_iters, "refine: hio_iters", 0), check_int(er_iters, "refine: er_iters", 0)
    starts = check_int(starts, "refine: starts", 1)
    jitter = check_number(jitter, "refine: jitter", low=0)
    g = make_generator(seed, "refine: seed")
    n = len(y)
    start = start.detach().to(y.dtype).clamp(0, 1)
    inits = [start] + [(start + jitter * torch.randn(start.shape, generator=g, dtype=start.dtype).to(start.device))
                       .clamp(0, 1) for _ in range(starts - 1)]
    ys = y.repeat(starts, 1, 1, 1)
    out = torch.cat(inits)
    if hio_iters:
        out = hio(ys, pad=pad, iters=hio_iters, beta=beta, init=out, history=False).images
    if er_iters:
        out = error_reduction(ys, pad=pad, iters=er_iters, init=out, history=False).images
    candidates = list(out.split(n)) + ([start] if keep_better else [])
    best = torch.stack([_misfit(c, y) for c in candidates]).argmin(0)  # the misfits are (K, N)
    images = torch.stack(candidates)[best, torch.arange(n)]
    return images, best < starts
