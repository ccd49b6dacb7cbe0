"""Classical phase retrieval: error reduction (Gerchberg-Saxton), HIO and RAAR.

All three alternate between the two things we know about the padded image ``u = P x`` (see
:mod:`course_lib.phase.fourier`), each with its projection:

* the **magnitude** ``|F u| = y``:  ``P_M(u) = real(F^-1 (y * F u / |F u|))`` -- keep the phase;
* the **object** -- 0 outside the support (the padding), real, in [0, 1]:
  ``P_S(u) = clip(u, 0, 1)`` inside the support, 0 outside.

With ``u' = P_M(u)`` one iteration is (pixelwise):

* **ER** (Gerchberg and Saxton 1972; Fienup 1982)::

      u <- P_S(u')

  The magnitude error never increases -- and ER stagnates.
* **HIO** (Fienup, "Phase retrieval algorithms: a comparison", Appl. Opt. 21, 1982, eq. 22)::

      u <- u'                         where u' satisfies the constraints (P_S(u') == u')
      u <- u - beta (u' - P_S(u'))    where it does not

  Outside the support and where ``u' < 0`` that is Fienup's ``u - beta u'``.
* **RAAR** (Luke, "Relaxed averaged alternating reflections for diffraction imaging",
  Inverse Problems 21, 2005, eq. 14), with reflections ``R = 2P - I``::

      u <- beta/2 (R_S R_M + I) u + (1 - beta) P_M(u)
         = beta P_S(2u' - u) + beta u + (1 - 2 beta) u'

The answer is the last iterate projected onto both sets, ``P_S(P_M(u))``; its **magnitude error** is
``||(|F u| - y)|| / ||y||``.

This file is the reference: :func:`er_step`, :func:`hio_step`, :func:`raar_step` and the loop
:func:`alternating_projections` work on one image ``(H, W)`` or a batch ``(N, 1, H, W)`` with the full ``fft2``.
:func:`error_reduction`, :func:`hio` and :func:`raar` -- what the notebooks call -- run many images and restarts
at once on the fast engine (:mod:`.engines`), which is tested equal to the loop here.

Example::

    >>> import torch
    >>> from course_lib.phase.fourier import fourier_magnitude
    >>> x = torch.zeros(4, 1, 12, 12); x[:, :, 3:9, 4:8] = torch.rand(4, 1, 6, 4)
    >>> res = hio(fourier_magnitude(x, pad=2), pad=2, iters=200, restarts=2)
    >>> res.images.shape, res.history.shape
    (torch.Size([4, 1, 12, 12]), torch.Size([200, 4]))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

import torch

from . import _kernels

__all__ = [
    "DEFAULT_CONSTRAINTS", "project_magnitude", "project_constraints", "magnitude_error", "er_step", "hio_step",
    "raar_step", "alternating_projections", "PhaseRetrievalResult", "error_reduction", "gerchberg_saxton", "hio",
    "raar", "ENGINES", "available_engines",
]

CONSTRAINTS = ("support", "real", "nonneg", "box")
DEFAULT_CONSTRAINTS = CONSTRAINTS
TINY = 1e-30  # |F u| is clamped to this before dividing: a coefficient that is exactly 0 stays 0


# ---- The two projections and one step of each algorithm ---------------------

def project_magnitude(u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``P_M(u) = real(F^-1 (y F u / |F u|))``: keep the phase of ``F u``, give it the magnitude ``y``."""
    z = torch.fft.fft2(u, norm="ortho")
    return torch.fft.ifft2(y * z / z.abs().clamp_min(TINY), norm="ortho").real


def project_constraints(u: torch.Tensor, support: Optional[torch.Tensor],
                        constraints: Sequence[str] = DEFAULT_CONSTRAINTS) -> torch.Tensor:
    """``P_S(u)``: clip to [0, 1] ('box') or to >= 0 ('nonneg'), then 0 outside the bool ``support``."""
    lo, hi = bounds(constraints)
    p = u.clamp(lo, hi) if (lo is not None or hi is not None) else u
    return p * support if "support" in constraints and support is not None else p


def er_step(u, y, support, beta=None, constraints=DEFAULT_CONSTRAINTS):
    """One ER step: ``u <- P_S(P_M(u))`` (``beta`` is not used)."""
    return project_constraints(project_magnitude(u, y), support, constraints)


def hio_step(x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, beta: float = 0.8,
             constraints: Sequence[str] = DEFAULT_CONSTRAINTS) -> torch.Tensor:
    """One HIO step on the padded grid: the iterate ``x`` ``(..., H, W)`` -> the next one.

    ``y``: the measured magnitude ``(..., H, W)``; ``support``: a bool mask broadcastable to it.
    """
    x_new = project_magnitude(x, y)                        # keep the phase, replace the magnitude
    p = project_constraints(x_new, support, constraints)   # the nearest image meeting the constraints
    return torch.where(p == x_new, x_new, x - beta * (x_new - p))


def raar_step(u, y, support, beta=0.9, constraints=DEFAULT_CONSTRAINTS):
    """One RAAR step: ``u <- beta P_S(2u' - u) + beta u + (1 - 2 beta) u'`` with ``u' = P_M(u)``."""
    u_new = project_magnitude(u, y)
    return beta * project_constraints(2 * u_new - u, support, constraints) + beta * u + (1 - 2 * beta) * u_new


STEPS = {"error_reduction": er_step, "hio": hio_step, "raar": raar_step}


def bounds(constraints: Sequence[str]) -> Tuple[Optional[float], Optional[float]]:
    """The clip range of the pixelwise constraints: 'box' is [0, 1] (and so implies 'nonneg')."""
    if "box" in constraints:
        return 0.0, 1.0
    return (0.0, None) if "nonneg" in constraints else (None, None)


def magnitude_error(u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||(|F u| - y)|| / ||y||`` per image (over the last two dimensions)."""
    a = torch.fft.fft2(u, norm="ortho").abs()
    return torch.linalg.vector_norm(a - y, dim=(-2, -1)) / torch.linalg.vector_norm(y, dim=(-2, -1))


def alternating_projections(y: torch.Tensor, support: torch.Tensor, x0: torch.Tensor, *, algorithm: str = "hio",
                            beta: float = 0.8, iters: int = 100,
                            constraints: Sequence[str] = DEFAULT_CONSTRAINTS) -> torch.Tensor:
    """ER, HIO or RAAR as in the lecture: ``iters`` steps from ``x0``, then ``P_S(P_M(u))``.

    ``y``: measured magnitude ``(H, W)`` or ``(N, 1, H, W)``; ``support``: bool, broadcastable to it (e.g.
    :func:`~course_lib.phase.fourier.support_mask`); ``x0``: the start on the padded grid, shaped like ``y``;
    ``algorithm``: 'error_reduction', 'hio' or 'raar'. Crop the result to ``(h, w)`` with
    :func:`~course_lib.phase.fourier.unpad_image`.
    """
    step = STEPS[algorithm]
    u = x0
    for _ in range(iters):
        u = step(u, y, support, beta, constraints)
    return er_step(u, y, support, constraints=constraints)


# ---- What the notebooks call: many images and restarts, checked, on the fast engine ----

ENGINES = ("auto", "torch", "numba")
Init = Union[None, str, torch.Tensor]


@dataclass
class PhaseRetrievalResult:
    """What :func:`error_reduction`, :func:`hio` and :func:`raar` return.

    images: ``(N, 1, h, w)`` reconstructions, projected onto the constraints.
    magnitude_error: ``(N,)`` ``||(|F P x| - y)|| / ||y||`` of ``images``.
    history: ``(iters, N)`` the magnitude error of the iterate before each step (of the restart kept), or None.
        For ER the iterate is the projected image; for HIO/RAAR it is the running iterate, which still carries
        the feedback outside the constraints (0 at a solution).
    restart: ``(N,)`` which restart was kept (lowest final magnitude error).
    engine: 'numba' (fused element-wise kernels) or 'torch' (torch ops only).
    """
    images: torch.Tensor
    magnitude_error: torch.Tensor
    history: Optional[torch.Tensor]
    restart: torch.Tensor
    algorithm: str
    beta: Optional[float]
    iters: int
    seconds: float
    constraints: Tuple[str, ...] = field(default=DEFAULT_CONSTRAINTS)
    engine: str = "torch"


def available_engines() -> Tuple[str, ...]:
    """The engines that can run here on the CPU: ``('numba', 'torch')`` with numba installed, else ``('torch',)``."""
    return ("numba", "torch") if _kernels.AVAILABLE else ("torch",)


def hio(y: torch.Tensor, support: Optional[torch.Tensor] = None, *, pad: float = 2, iters: int = 1000,
        beta: float = 0.8, init: Init = None, constraints: Sequence[str] = DEFAULT_CONSTRAINTS, seed=0,
        restarts: int = 1, history: bool = True, progress: bool = False,
        chunk_size: Optional[int] = None, engine: str = "auto") -> PhaseRetrievalResult:
    """Hybrid input-output (Fienup 1982) on a batch: :func:`hio_step` ``iters`` times, then ``P_S(P_M(u))``.

    y: ``(N, 1, H, W)`` measured magnitudes ``|F P x|`` (``norm='ortho'``), float32 or float64.
    support: None (the top-left ``(H/pad, W/pad)`` block: what the zero padding tells us), or a bool mask
        ``(H, W)`` / ``(N, 1, H, W)`` on the measurement grid, or ``(h, w)`` / ``(N, 1, h, w)`` on the image grid
        (e.g. a tighter support) inside that block.
    pad: the oversampling factor that made ``y``; the images are ``(H/pad, W/pad)``.
    iters: iterations per restart. beta: the feedback in (0, 1]; 0.8 as in Uelwer et al.
    init: None or 'random' (uniform in [0, 1) on the support), or a tensor ``(N, 1, h, w)`` or ``(N, 1, H, W)``
        to start from (e.g. a network's output); other restarts start at random.
    constraints: subset of ('support', 'real', 'nonneg', 'box'); 'real' is required.
    seed: int, None or a ``torch.Generator`` for the random starts.
    restarts: independent starts per image, run as one batch; per image the one with the lowest final magnitude
        error is kept.
    history: record the magnitude error at every iteration. progress: a tqdm bar.
    chunk_size: images per chunk (default: about 0.5 MiB per buffer on the CPU; all on a GPU).
    engine: 'auto' (numba on the CPU when installed, else torch), 'torch' (any device) or 'numba'.
    """
    from .engines import solve  # the engine is built on this module, so it is imported when needed
    return solve("hio", y, support, pad=pad, iters=iters, beta=beta, init=init, constraints=constraints, seed=seed,
                 restarts=restarts, history=history, progress=progress, chunk_size=chunk_size, engine=engine)


def error_reduction(y: torch.Tensor, support: Optional[torch.Tensor] = None, *, pad: float = 2,
                    iters: int = 1000, init: Init = None, constraints: Sequence[str] = DEFAULT_CONSTRAINTS,
                    seed=0, restarts: int = 1, history: bool = True, progress: bool = False,
                    chunk_size: Optional[int] = None, engine: str = "auto") -> PhaseRetrievalResult:
    """Error reduction (Gerchberg-Saxton) on a batch: :func:`er_step` ``iters`` times. Arguments as :func:`hio`.

    ``history`` is non-increasing: each step projects onto one set, and the iterate already lies in the other.
    """
    from .engines import solve
    return solve("error_reduction", y, support, pad=pad, iters=iters, beta=None, init=init, constraints=constraints,
                 seed=seed, restarts=restarts, history=history, progress=progress, chunk_size=chunk_size, engine=engine)


gerchberg_saxton = error_reduction


def raar(y: torch.Tensor, support: Optional[torch.Tensor] = None, *, pad: float = 2, iters: int = 1000,
         beta: float = 0.9, init: Init = None, constraints: Sequence[str] = DEFAULT_CONSTRAINTS, seed=0,
         restarts: int = 1, history: bool = True, progress: bool = False,
         chunk_size: Optional[int] = None, engine: str = "auto") -> PhaseRetrievalResult:
    """RAAR (Luke 2005) on a batch: :func:`raar_step` ``iters`` times. Arguments as :func:`hio`.

    beta: the relaxation in (0, 1]; 0.9 by default (Uelwer et al. use 0.87). More robust to noise than HIO.
    """
    from .engines import solve
    return solve("raar", y, support, pad=pad, iters=iters, beta=beta, init=init, constraints=constraints, seed=seed,
                 restarts=restarts, history=history, progress=progress, chunk_size=chunk_size, engine=engine)
