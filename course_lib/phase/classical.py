"""Classical phase retrieval: error reduction (Gerchberg-Saxton), HIO and RAAR.

All three alternate between the two things we know about the padded image
``u = P x`` (see :mod:`course_lib.phase.fourier`):

* **the magnitude** ``|F u| = y``. Its projection ``P_M`` keeps the phase
  and replaces the magnitude: ``P_M(u) = real(F^-1 (y F u / |F u|))``;
* **the object constraints** -- zero outside the support (the padding),
  real, non-negative, at most 1. Their projection ``P_S`` is pixelwise:
  ``P_S(u) = clip(u, 0, 1)`` inside the support, 0 outside.

With ``u' = P_M(u)`` the updates are (pixelwise)

* **ER** (Gerchberg and Saxton 1972; Fienup 1982):
  ``u <- P_S(u')``. The magnitude error never increases, and ER stagnates.
* **HIO** (Fienup, "Phase retrieval algorithms: a comparison", Appl. Opt.
  21, 1982, eq. 22): ``u <- u'`` where ``u'`` satisfies the constraints,
  ``u <- u - beta (u' - P_S(u'))`` where it does not. For the support and
  positivity constraints ``P_S(u') = 0`` there, which is Fienup's
  ``u - beta u'``; for a pixel above 1 the feedback is ``u - beta (u' - 1)``.
* **RAAR** (Luke, "Relaxed averaged alternating reflections for diffraction
  imaging", Inverse Problems 21, 2005, eq. 14): with reflections
  ``R = 2P - I``, ``u <- beta/2 (R_S R_M + I) u + (1 - beta) P_M u``, i.e.
  ``u <- beta P_S(2u' - u) + beta u + (1 - 2 beta) u'``: ``u'`` where
  ``2u' - u`` satisfies the constraints, ``beta u + (1 - 2 beta) u'`` where
  it lies outside the support or below 0 (plus ``beta`` where it is above 1).

The result returned is always the projected image ``P_S(P_M(u))`` of the last
iterate, cropped to ``(h, w)``; its **magnitude error** is
``||(|F P x| - y)|| / ||y||`` (full measurement grid).

How it is made fast (:func:`error_reduction`, :func:`hio`, :func:`raar`):
many images (and restarts) at once, in chunks small enough for the CPU
caches (one worker thread per core, each running torch with one op thread),
with preallocated buffers and in-place arithmetic (and, when numba is
installed, the element-wise passes fused into two compiled loops per
iteration: :mod:`course_lib.phase._kernels`); the constraint logic only
touches the image block (outside it the support is violated everywhere and
the update is one linear pass); and ``rfft2`` / ``irfft2``: the iterate is
real, so its spectrum is Hermitian and half of it (``W // 2 + 1`` columns)
determines the rest -- half the work. The magnitude
constraint is then applied on the half spectrum, which is exact because the
magnitude of a real image is even, ``y[-k] = y[k]``. A noisy measurement
need not be even; there the half-spectrum algorithm uses ``(y[k] + y[-k]) / 2``,
which is exactly what the full-spectrum algorithm does when it takes the real
part of ``F^-1``, and the magnitude errors are still measured against ``y``
itself (the difference is a constant, ``||y - y_even||``).

For the lecture and the exercise: :func:`hio_step` (one step, full ``fft2``,
the student's target), :func:`hio_single` (one image, a loop you can read),
:func:`hio_numpy` (the same loop with ``numpy.fft``, the speed baseline).
All are tested equal to the batched :func:`hio`.

Example::

    >>> import torch
    >>> from course_lib.phase.fourier import fourier_magnitude
    >>> x = torch.zeros(4, 1, 12, 12); x[:, :, 3:9, 4:8] = torch.rand(4, 1, 6, 4)
    >>> res = hio(fourier_magnitude(x, pad=2), pad=2, iters=200, restarts=2)
    >>> res.images.shape, res.history.shape
    (torch.Size([4, 1, 12, 12]), torch.Size([200, 4]))
"""
from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import _kernels
from .fourier import _generator, check_magnitude, image_size

__all__ = [
    "DEFAULT_CONSTRAINTS", "PhaseRetrievalResult", "project_constraints",
    "error_reduction", "gerchberg_saxton", "hio", "raar",
    "hio_step", "hio_single", "hio_numpy", "ENGINES", "available_engines",
]

CONSTRAINTS = ("support", "real", "nonneg", "box")
DEFAULT_CONSTRAINTS = CONSTRAINTS
_TINY = 1e-30  # |F u| is clamped to this before dividing: a coefficient that is exactly 0 stays 0
ENGINES = ("auto", "torch", "numba")

Init = Union[None, str, torch.Tensor]


@dataclass
class PhaseRetrievalResult:
    """What :func:`error_reduction`, :func:`hio` and :func:`raar` return.

    images: ``(N, 1, h, w)`` reconstructions, projected onto the constraints.
    magnitude_error: ``(N,)`` ``||(|F P x| - y)|| / ||y||`` of ``images``.
    history: ``(iters, N)`` the magnitude error of the iterate at each
        iteration (of the restart kept), or None. For ER the iterate is the
        projected image; for HIO/RAAR it is the running iterate, which still
        carries the feedback outside the constraints (0 at a solution).
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


# ---------------------------------------------------------------------------
# Checks and preparation
# ---------------------------------------------------------------------------

def _check_constraints(constraints, fn: str) -> Tuple[str, ...]:
    if isinstance(constraints, str):
        constraints = (constraints,)
    try:
        constraints = tuple(constraints)
    except TypeError:
        raise TypeError(f"{fn}: constraints must be a tuple of names from {CONSTRAINTS}, "
                        f"got {constraints!r}") from None
    bad = [c for c in constraints if c not in CONSTRAINTS]
    if bad:
        raise ValueError(f"{fn}: unknown constraint(s) {bad}; choose from {CONSTRAINTS}")
    if "real" not in constraints:
        raise ValueError(f"{fn}: the 'real' constraint cannot be dropped: the images (and the iterates) here "
                         f"are real; got constraints={constraints}")
    return constraints


def _bounds(constraints) -> Tuple[Optional[float], Optional[float]]:
    """Clamp bounds of the pixelwise constraints; 'box' is [0, 1] and so implies 'nonneg'."""
    if "box" in constraints:
        return 0.0, 1.0
    if "nonneg" in constraints:
        return 0.0, None
    return None, None


def _check_beta(beta, fn: str) -> float:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 < beta <= 1:
        raise ValueError(f"{fn}: beta must be a number in (0, 1], got {beta!r}")
    return float(beta)


def _check_int(value, name: str, fn: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _prepare_support(support, n: int, H: int, W: int, h: int, w: int, pad, device, fn: str) -> torch.Tensor:
    """-> bool ``(1 or N, 1, H, W)`` on the measurement grid, inside the top-left ``h x w`` block."""
    if support is None:
        s = torch.zeros(1, 1, H, W, dtype=torch.bool, device=device)
        s[..., :h, :w] = True
        return s
    if not isinstance(support, torch.Tensor):
        raise TypeError(f"{fn}: support must be None or a bool tensor, got {type(support).__name__}")
    if support.dtype != torch.bool:
        if support.is_complex() or not bool(((support == 0) | (support == 1)).all()):
            raise ValueError(f"{fn}: support must be a bool mask (or 0/1 values), got dtype {support.dtype}")
        support = support != 0
    if support.dim() == 2:
        support = support[None, None]
    if support.dim() != 4 or support.shape[1] != 1 or support.shape[0] not in (1, n):
        raise ValueError(f"{fn}: support must have shape (H, W), (1, 1, H, W) or (N, 1, H, W) with N={n}, "
                         f"got {tuple(support.shape)}")
    sh, sw = support.shape[-2:]
    if sh > H or sw > W:
        raise ValueError(f"{fn}: support of size {sh}x{sw} is larger than the measurement y ({H}x{W})")
    if (sh, sw) == (h, w) and (h, w) != (H, W):  # given on the image grid: place it at the top-left
        support = torch.nn.functional.pad(support, (0, W - w, 0, H - h))
    elif (sh, sw) != (H, W):
        raise ValueError(f"{fn}: support of size {sh}x{sw} matches neither the measurement ({H}x{W}) nor the "
                         f"image ({h}x{w} for pad={pad:g})")
    outside = support.clone()
    outside[..., :h, :w] = False
    if bool(outside.any()):
        raise ValueError(f"{fn}: support has pixels outside the top-left {h}x{w} block, where P places the image "
                         f"(pad={pad:g}); pass the pad that made y")
    if not bool(support.flatten(1).any(1).all()):
        raise ValueError(f"{fn}: support is empty (all False) for at least one image")
    return support.to(device)


def _prepare_init(init: Init, n: int, restarts: int, H: int, W: int, h: int, w: int, support, dtype, device,
                  seed, fn: str) -> torch.Tensor:
    """-> ``(restarts * n, 1, H, W)`` starting iterates, restart-major."""
    g = _generator(seed, fn)
    starts = []
    first = 0
    if isinstance(init, torch.Tensor):
        x0 = init
        if x0.is_complex() or not x0.is_floating_point():
            raise TypeError(f"{fn}: init must be a real float tensor, got dtype {x0.dtype}")
        if x0.dim() != 4 or x0.shape[0] != n or x0.shape[1] != 1 or tuple(x0.shape[-2:]) not in ((H, W), (h, w)):
            raise ValueError(f"{fn}: init must have shape ({n}, 1, {h}, {w}) (image) or ({n}, 1, {H}, {W}) "
                             f"(padded grid), got {tuple(x0.shape)}")
        if not bool(torch.isfinite(x0).all()):
            raise ValueError(f"{fn}: init contains NaN or infinite values")
        x0 = x0.to(device=device, dtype=dtype)
        if tuple(x0.shape[-2:]) != (H, W):
            x0 = torch.nn.functional.pad(x0, (0, W - w, 0, H - h))
        starts.append(x0)
        first = 1
    elif init is not None and init != "random":
        raise ValueError(f"{fn}: init must be None, 'random' or a tensor, got {init!r}")
    for _ in range(first, restarts):
        # uniform in [0, 1) on the support: a random image that satisfies the constraints
        r = torch.rand(n, 1, H, W, generator=g, dtype=dtype).to(device)
        starts.append(r * support)
    return torch.cat(starts)


def project_constraints(u: torch.Tensor, support: Optional[torch.Tensor],
                        constraints: Sequence[str] = DEFAULT_CONSTRAINTS) -> torch.Tensor:
    """``P_S(u)``: the nearest image satisfying the constraints (pixelwise clip, then 0 outside the support).

    ``support`` is a bool mask broadcastable to ``u`` (ignored unless 'support' is a constraint).
    """
    constraints = _check_constraints(constraints, "project_constraints")
    lo, hi = _bounds(constraints)
    p = u.clamp(lo, hi) if (lo is not None or hi is not None) else u
    if "support" in constraints and support is not None:
        p = p * support
    return p


# ---------------------------------------------------------------------------
# The batched engine
# ---------------------------------------------------------------------------

class _Chunk:
    """Buffers and precomputed tensors for one chunk of ``n`` images.

    The support lies in the top-left ``(bh, bw)`` block (the image; the whole
    grid when 'support' is not a constraint). Outside that block every pixel
    violates the support constraint, so the updates there are linear and one
    pass over the array does them; the clipping, the tests and the support
    mask only touch the block -- a quarter of the pixels for ``pad = 2``.
    """

    def __init__(self, y: torch.Tensor, block: Tuple[int, int], support_block: Optional[torch.Tensor], lo, hi,
                 fused: bool = False):
        n, _, H, W = y.shape
        self.H, self.W, self.Wr = H, W, W // 2 + 1
        self.bh, self.bw = block
        self.lo, self.hi, self.support_block = lo, hi, support_block
        self.whole = block == (H, W)
        dtype = y.dtype
        # the even part of y: y_even[k] = (y[k] + y[-k]) / 2  (= y for noiseless data)
        y_flip = torch.roll(torch.flip(y, (-2, -1)), shifts=(1, 1), dims=(-2, -1))
        y_even = 0.5 * (y + y_flip)
        self.y_half = y_even[..., : self.Wr].contiguous()
        # sum over the full grid = weighted sum over the half: columns with a mirror twin count twice
        wcol = torch.full((self.Wr,), 2.0, dtype=dtype, device=y.device)
        wcol[0] = 1.0
        if W % 2 == 0:
            wcol[-1] = 1.0
        self.weights = wcol.expand(H, self.Wr).reshape(-1).contiguous()
        self.odd_energy = (y - y_even).square().flatten(1).sum(1)  # ||y - y_even||^2, 0 when y is even
        self.y_energy = y.square().flatten(1).sum(1)
        self.mag = torch.empty(n, 1, H, self.Wr, dtype=dtype, device=y.device)
        self.tmp = torch.empty_like(self.mag)
        self.planes = torch.empty(2, n, 1, H, self.Wr, dtype=dtype, device=y.device)
        self.re, self.im = self.planes[0], self.planes[1]
        self.p = torch.empty(n, 1, self.bh, self.bw, dtype=dtype, device=y.device)
        self.r = torch.empty_like(self.p)
        self.m = torch.empty_like(self.p)
        self.fused = fused
        if fused:  # numpy views for the numba kernels (the same memory)
            big = float(np.finfo(np.float32 if dtype == torch.float32 else np.float64).max)
            self.lo_f = -big if lo is None else float(lo)   # (finite: the kernels assume no infinities)
            self.hi_f = big if hi is None else float(hi)
            self.y_np = self.y_half.view(n, -1).numpy()
            self.w_np = self.weights.numpy()
            self.err2 = torch.empty(n, dtype=dtype)
            mask = support_block if support_block is not None else torch.ones(1, 1, self.bh, self.bw, dtype=dtype)
            self.mask_np = mask.to(dtype).reshape(-1, self.bh, self.bw).contiguous().numpy()

    def block(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.whole else t[..., : self.bh, : self.bw]

    def magnitude_error(self, mag: torch.Tensor) -> torch.Tensor:
        """``||(|F u| - y)|| / ||y||`` per image from ``mag = |F u|`` on the half spectrum."""
        torch.sub(mag, self.y_half, out=self.tmp)
        self.tmp.mul_(self.tmp)
        err2 = torch.mv(self.tmp.view(self.tmp.shape[0], -1), self.weights) + self.odd_energy
        return torch.sqrt(err2.clamp_min(0) / self.y_energy)

    def spectrum_magnitude(self, z: torch.Tensor) -> torch.Tensor:
        # |z| = sqrt(re^2 + im^2), with re and im first copied out of the interleaved complex
        # layout into planes: arithmetic on the strided views is not vectorised, and torch.abs
        # of a complex tensor is slower still (measured 2.5 vs 8 vs 10 us per 64x64 image)
        self.planes.copy_(torch.view_as_real(z).movedim(-1, 0))
        torch.mul(self.re, self.re, out=self.mag)
        return self.mag.addcmul_(self.im, self.im).sqrt_()

    def project_magnitude(self, u: torch.Tensor, errors: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``P_M(u)`` (a new tensor); the magnitude error of ``u`` into ``errors`` when given."""
        # (the FFTs allocate their outputs: with out= torch copies, which is slower)
        z = torch.fft.rfft2(u, norm="ortho")
        if self.fused:
            zf = torch.view_as_real(z).view(z.shape[0], -1).numpy()
            if errors is None:
                _kernels.project_magnitude(zf, self.y_np, _TINY)
            else:
                _kernels.project_magnitude_error(zf, self.y_np, self.w_np, _TINY, self.err2.numpy())
                errors.copy_(self.err2.add_(self.odd_energy).clamp_min_(0).div_(self.y_energy).sqrt_())
            return torch.fft.irfft2(z, s=(self.H, self.W), norm="ortho")
        mag = self.spectrum_magnitude(z)
        if errors is not None:
            errors.copy_(self.magnitude_error(mag))
        mag.clamp_(min=_TINY)
        torch.div(self.y_half, mag, out=mag)                 # y / |F u|
        z.mul_(mag)                                          # keep the phase, magnitude y
        return torch.fft.irfft2(z, s=(self.H, self.W), norm="ortho")

    def clip_block(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``P_S`` inside the block: clip to the bounds, times the support mask."""
        if self.lo is not None or self.hi is not None:
            torch.clamp(v, self.lo, self.hi, out=out)
        elif out is not v:
            out.copy_(v)
        if self.support_block is not None:
            out.mul_(self.support_block)
        return out

    def project_constraints(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = P_S(v)`` on the whole grid."""
        if not self.whole:
            out.zero_()
        self.clip_block(self.block(v), out=self.block(out))
        return out

    def _np3(self, t: torch.Tensor) -> np.ndarray:
        return t.view(t.shape[0], self.H, self.W).numpy()

    # one iteration of each algorithm, in place on the iterate u
    def er(self, u, beta, errors):
        xp = self.project_magnitude(u, errors)
        if self.fused:
            _kernels.er_update(self._np3(u), self._np3(xp), self.bh, self.bw, self.lo_f, self.hi_f, self.mask_np)
            return
        if not self.whole:
            u.zero_()  # (only needed once, but cheap next to the FFTs)
        self.clip_block(self.block(xp), out=self.block(u))

    def hio(self, u, beta, errors):
        xp = self.project_magnitude(u, errors)
        if self.fused:
            _kernels.hio_update(self._np3(u), self._np3(xp), beta, self.bh, self.bw, self.lo_f, self.hi_f,
                                self.mask_np)
            return
        xi, u_in = self.block(xp), self.block(u)
        u.sub_(xp, alpha=beta)                    # u - beta u': the update wherever the support is violated
        p = self.clip_block(xi, out=self.p)       # inside the block: P_S(u')
        torch.sub(xi, p, out=self.r)              # r = u' - P_S(u'): 0 where the constraints hold
        torch.sign(self.r, out=self.m).mul_(self.m)   # m = 1 where violated, else 0
        u_in.add_(p, alpha=beta).sub_(xi)         # u - beta u' + beta P_S(u') - u' = u - beta r - u'
        torch.addcmul(xi, self.m, u_in, out=u_in)  # u' + m (u - beta r - u'): u - beta r where violated
        # (arithmetic rather than torch.where: comparisons to bool are slow on the CPU)

    def raar(self, u, beta, errors):
        xp = self.project_magnitude(u, errors)
        if self.fused:
            _kernels.raar_update(self._np3(u), self._np3(xp), beta, self.bh, self.bw, self.lo_f, self.hi_f,
                                 self.mask_np)
            return
        xi, u_in = self.block(xp), self.block(u)
        torch.mul(xi, 2.0, out=self.r)
        self.r.sub_(u_in)                         # 2u' - u = R_M(u), inside the block
        p = self.clip_block(self.r, out=self.r)   # P_S(R_M u); 0 outside the block
        u.mul_(beta).add_(xp, alpha=1.0 - 2.0 * beta)
        u_in.add_(p, alpha=beta)


def _chunk_size(n_total: int, H: int, W: int, chunk_size, device) -> int:
    if chunk_size is not None:
        return _check_int(chunk_size, "chunk_size", "phase retrieval", 1)
    if device.type != "cpu":
        return n_total  # a GPU wants the whole batch at once
    # about 0.5 MiB per (H, W) float32 buffer (32 images of 64 x 64): the chunk's buffers stay in the
    # caches; measured on a 2-core EPYC, 16..64 images per chunk were best, the whole batch 2-4x slower
    return max(1, min(n_total, (1 << 17) // (H * W)))


def _map_chunks(solve, starts, bar, workers: int) -> None:
    """Run ``solve(start, bar)`` for every chunk: in turn, or on ``workers`` threads.

    On the CPU each thread runs torch with one op thread. The chunks are
    small, so torch's intra-op parallelism (OpenMP) gains little on them and,
    on a machine whose cores are busy, its threads wait for each other:
    measured 10-70x slower with 2 threads than with 1 on a loaded 2-core
    machine. Whole chunks per thread scale without that risk (the FFTs and
    the arithmetic release the GIL). ``workers = 0`` means a GPU: as it is.
    """
    if workers == 0:
        with torch.no_grad():
            for start in starts:
                solve(start, bar)
        return

    def work(my_starts):
        torch.set_num_threads(1)  # this thread's own op threads (OpenMP settings are per thread)
        with torch.no_grad():
            for start in my_starts:
                solve(start, bar)

    before = torch.get_num_threads()
    try:
        if workers == 1 or len(starts) == 1:
            work(starts)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                for f in [pool.submit(work, starts[i::workers]) for i in range(workers)]:
                    f.result()
    finally:
        torch.set_num_threads(before)


def available_engines() -> Tuple[str, ...]:
    """The engines that can run here on the CPU: ``('numba', 'torch')`` with numba installed, else ``('torch',)``."""
    return ("numba", "torch") if _kernels.AVAILABLE else ("torch",)


def _engine(engine, device, fn: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"{fn}: engine must be one of {ENGINES}, got {engine!r}")
    if engine == "numba":
        if not _kernels.AVAILABLE:
            raise ValueError(f"{fn}: engine='numba' needs the numba package (pip install numba); "
                             "engine='torch' runs without it")
        if device.type != "cpu":
            raise ValueError(f"{fn}: engine='numba' runs on the CPU only, but y is on {device}; use engine='torch'")
    if engine == "auto":
        return "numba" if _kernels.AVAILABLE and device.type == "cpu" else "torch"
    return engine


def _run(algorithm: str, y: torch.Tensor, support, *, pad, iters, init, constraints, seed, restarts, history,
         progress, beta, chunk_size, engine="auto") -> PhaseRetrievalResult:
    fn = algorithm
    t0 = time.perf_counter()
    check_magnitude(y, "y", fn)
    if y.dim() != 4 or y.shape[1] != 1:
        raise ValueError(f"{fn}: y must have shape (N, 1, H, W) (the Fourier magnitudes of N grey images), "
                         f"got {tuple(y.shape)}")
    constraints = _check_constraints(constraints, fn)
    iters = _check_int(iters, "iters", fn, 0)
    restarts = _check_int(restarts, "restarts", fn, 1)
    if beta is not None:
        beta = _check_beta(beta, fn)
    engine = _engine(engine, y.device, fn)
    n, _, H, W = y.shape
    if support is not None and isinstance(support, torch.Tensor) and support.dim() >= 2 and \
            (support.shape[-2] > H or support.shape[-1] > W):
        raise ValueError(f"{fn}: support of size {support.shape[-2]}x{support.shape[-1]} is larger than the "
                         f"measurement y ({H}x{W})")
    h, w = image_size(H, W, pad, fn)
    dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
    y = y.to(dtype)
    device = y.device
    support = _prepare_support(support, n, H, W, h, w, pad, device, fn)
    if not bool((y.flatten(1).square().sum(1) > 0).all()):
        raise ValueError(f"{fn}: y is all zeros for at least one image (nothing to retrieve)")
    lo, hi = _bounds(constraints)
    u_all = _prepare_init(init, n, restarts, H, W, h, w, support, dtype, device, seed, fn)
    y_all = y.repeat(restarts, 1, 1, 1)
    # the engine needs the block that holds the support and the mask inside it (None: all of the block)
    block = (h, w) if "support" in constraints else (H, W)
    s_block = None
    if "support" in constraints and not bool(support[..., :h, :w].all()):
        s_block = support[..., :h, :w].to(dtype)
        if s_block.shape[0] > 1:
            s_block = s_block.repeat(restarts, 1, 1, 1)

    total = restarts * n
    chunk = _chunk_size(total, H, W, chunk_size, device)
    workers = 0  # a GPU: one stream of work
    if device.type == "cpu":
        # one thread per core when there are at least two chunks' worth of work, else one
        workers = min(torch.get_num_threads(), max(1, -(-total // chunk)))
        if chunk_size is None and workers > 1:
            chunk = -(-total // max(workers, -(-total // chunk)))  # even chunks, at least one per thread
    hist = torch.empty(iters, total, dtype=dtype, device=device) if history else None
    final_err = torch.empty(total, dtype=dtype, device=device)
    out = torch.empty(total, 1, H, W, dtype=dtype, device=device)
    step = {"error_reduction": _Chunk.er, "hio": _Chunk.hio, "raar": _Chunk.raar}[algorithm]
    from tqdm.auto import tqdm

    def solve(start: int, bar) -> None:
        stop = min(total, start + chunk)
        sb = s_block[start:stop] if s_block is not None and s_block.shape[0] > 1 else s_block
        c = _Chunk(y_all[start:stop], block, sb, lo, hi, fused=engine == "numba")
        u = u_all[start:stop].contiguous()
        for k in range(iters):
            step(c, u, beta, hist[k, start:stop] if hist is not None else None)
            if progress:
                bar.update(stop - start)
        # the output: the projected image P_S(P_M(u)) and its magnitude error
        c.project_constraints(c.project_magnitude(u), out=out[start:stop])
        z = torch.fft.rfft2(out[start:stop], norm="ortho")
        final_err[start:stop] = c.magnitude_error(c.spectrum_magnitude(z))

    starts = list(range(0, total, chunk))
    with tqdm(total=iters * total, desc=fn, disable=not progress, unit="img-it", dynamic_ncols=True) as bar:
        _map_chunks(solve, starts, bar, workers)

    # keep, per image, the restart with the lowest magnitude error
    err = final_err.view(restarts, n)
    best = err.argmin(0)
    idx = best * n + torch.arange(n, device=device)
    images = out[idx][..., :h, :w].contiguous()
    return PhaseRetrievalResult(
        images=images, magnitude_error=final_err[idx], history=hist[:, idx] if hist is not None else None,
        restart=best, algorithm=algorithm, beta=beta, iters=iters, seconds=time.perf_counter() - t0,
        constraints=constraints, engine=engine)


_COMMON_DOC = """
    y: ``(N, 1, H, W)`` measured magnitudes ``|F P x|`` (``norm='ortho'``),
        float32 (computed in float32/complex64) or float64.
    support: None (the top-left ``(H/pad, W/pad)`` block: what the zero
        padding tells us), or a bool mask ``(H, W)`` / ``(N, 1, H, W)`` on the
        measurement grid, or ``(h, w)`` / ``(N, 1, h, w)`` on the image grid
        (e.g. a tighter support); it must lie in the top-left block.
    pad: the oversampling factor that made ``y``; the images are ``(H/pad, W/pad)``.
    iters: iterations per restart.
    init: None or 'random' (uniform in [0, 1) on the support), or a tensor
        ``(N, 1, h, w)`` or ``(N, 1, H, W)`` to start from (e.g. a network's
        output); with ``restarts > 1`` the other restarts start at random.
    constraints: subset of ('support', 'real', 'nonneg', 'box'); 'real' is
        required; 'box' is [0, 1] and implies 'nonneg'.
    seed: int, None or a ``torch.Generator`` for the random starts.
    restarts: independent starts per image, run together as one batch; the
        one with the lowest final magnitude error is kept, per image.
    history: record the magnitude error at every iteration.
    progress: show a tqdm progress bar.
    chunk_size: images processed together (default: about 0.5 MiB per buffer
        on the CPU, so that they stay in the cache; the whole batch on a GPU).
    engine: 'auto' (numba's fused kernels on the CPU when numba is
        installed, else torch), 'torch' (torch ops only; any device) or
        'numba' (CPU only; an error without numba). Same algorithm, same
        results up to float rounding.

    Returns a :class:`PhaseRetrievalResult`.
"""


def error_reduction(y: torch.Tensor, support: Optional[torch.Tensor] = None, *, pad: float = 2,
                    iters: int = 1000, init: Init = None, constraints: Sequence[str] = DEFAULT_CONSTRAINTS,
                    seed=0, restarts: int = 1, history: bool = True, progress: bool = False,
                    chunk_size: Optional[int] = None, engine: str = "auto") -> PhaseRetrievalResult:
    return _run("error_reduction", y, support, pad=pad, iters=iters, init=init, constraints=constraints,
                seed=seed, restarts=restarts, history=history, progress=progress, beta=None,
                chunk_size=chunk_size, engine=engine)


error_reduction.__doc__ = ("""Error reduction (Gerchberg-Saxton, Fienup 1982): ``u <- P_S(P_M(u))``, batched.

    The magnitude error of the iterates never increases (each step is a
    projection onto one set, and the iterate already lies in the other), so
    ``history`` is non-increasing from the first iteration on; ER stagnates
    in a local minimum, which is why HIO exists.
""" + _COMMON_DOC)

gerchberg_saxton = error_reduction


def hio(y: torch.Tensor, support: Optional[torch.Tensor] = None, *, pad: float = 2, iters: int = 1000,
        beta: float = 0.8, init: Init = None, constraints: Sequence[str] = DEFAULT_CONSTRAINTS, seed=0,
        restarts: int = 1, history: bool = True, progress: bool = False,
        chunk_size: Optional[int] = None, engine: str = "auto") -> PhaseRetrievalResult:
    return _run("hio", y, support, pad=pad, iters=iters, init=init, constraints=constraints, seed=seed,
                restarts=restarts, history=history, progress=progress, beta=beta, chunk_size=chunk_size,
                engine=engine)


hio.__doc__ = ("""Hybrid input-output (Fienup 1982), batched: ``u <- u'`` where ``u' = P_M(u)`` meets the
    constraints, ``u <- u - beta (u' - P_S(u'))`` where it does not.

    beta: the feedback, in (0, 1]; 0.8 as in Uelwer et al.'s baseline.
""" + _COMMON_DOC)


def raar(y: torch.Tensor, support: Optional[torch.Tensor] = None, *, pad: float = 2, iters: int = 1000,
         beta: float = 0.9, init: Init = None, constraints: Sequence[str] = DEFAULT_CONSTRAINTS, seed=0,
         restarts: int = 1, history: bool = True, progress: bool = False,
         chunk_size: Optional[int] = None, engine: str = "auto") -> PhaseRetrievalResult:
    return _run("raar", y, support, pad=pad, iters=iters, init=init, constraints=constraints, seed=seed,
                restarts=restarts, history=history, progress=progress, beta=beta, chunk_size=chunk_size,
                engine=engine)


raar.__doc__ = ("""Relaxed averaged alternating reflections (Luke 2005), batched:
    ``u <- beta/2 (R_S R_M + I) u + (1 - beta) P_M(u)`` with ``R = 2P - I``.

    beta: the relaxation in (0, 1]; 0.9 by default (Uelwer et al. use 0.87).
    More robust to noise than HIO.
""" + _COMMON_DOC)


# ---------------------------------------------------------------------------
# For the lecture: one step, one image, numpy
# ---------------------------------------------------------------------------

def _check_single(y, support, fn: str):
    check_magnitude(y, "y", fn)
    if y.dim() != 2:
        raise ValueError(f"{fn}: y must be one measurement of shape (H, W), got {tuple(y.shape)}")
    if not isinstance(support, torch.Tensor) or support.dtype != torch.bool:
        raise TypeError(f"{fn}: support must be a bool tensor (H, W), got "
                        f"{support.dtype if isinstance(support, torch.Tensor) else type(support).__name__}")
    if support.shape != y.shape:
        raise ValueError(f"{fn}: support {tuple(support.shape)} must have the shape of y {tuple(y.shape)}")


def hio_step(x: torch.Tensor, y: torch.Tensor, support: torch.Tensor, beta: float = 0.8,
             constraints: Sequence[str] = DEFAULT_CONSTRAINTS) -> torch.Tensor:
    """One HIO step on the padded grid: ``(..., H, W)`` iterate -> the next iterate.

    ``y`` the measured magnitude ``(..., H, W)``, ``support`` a bool mask
    broadcastable to it. With ``x' = real(F^-1 (y F x / |F x|))``:
    ``x_next = x'`` where ``x'`` satisfies the constraints, else
    ``x - beta (x' - P_S(x'))`` (Fienup's ``x - beta x'`` outside the support
    and where ``x' < 0``).
    """
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2 or t.is_complex():
            raise TypeError(f"hio_step: {name} must be a real tensor (..., H, W)")
    if x.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"hio_step: x {tuple(x.shape)} and y {tuple(y.shape)} must have the same (H, W)")
    if not isinstance(support, torch.Tensor) or support.dtype != torch.bool or support.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"hio_step: support must be a bool mask with the (H, W) of y {tuple(y.shape[-2:])}, got "
                         f"{tuple(support.shape) if isinstance(support, torch.Tensor) else type(support).__name__}")
    beta = _check_beta(beta, "hio_step")
    z = torch.fft.fft2(x, norm="ortho")
    z = z * (y / z.abs().clamp_min(_TINY))                     # keep the phase, replace the magnitude
    x_new = torch.fft.ifft2(z, norm="ortho").real               # back to an image
    p = project_constraints(x_new, support, constraints)        # nearest image meeting the constraints
    return torch.where(p == x_new, x_new, x - beta * (x_new - p))


def hio_single(y: torch.Tensor, support: torch.Tensor, beta: float = 0.8, iters: int = 100,
               x0: Optional[torch.Tensor] = None, constraints: Sequence[str] = DEFAULT_CONSTRAINTS,
               seed: int = 0) -> torch.Tensor:
    """HIO for one image, written as in the lecture. Returns the ``(H, W)`` image ``P_S(P_M(x))``.

    y: ``(H, W)`` measured magnitude; support: bool ``(H, W)`` (e.g.
    :func:`~course_lib.phase.fourier.support_mask`); x0: ``(H, W)`` start
    (default: uniform random on the support). Crop the result to ``(h, w)``
    with :func:`~course_lib.phase.fourier.unpad_image`.
    """
    _check_single(y, support, "hio_single")
    beta = _check_beta(beta, "hio_single")
    constraints = _check_constraints(constraints, "hio_single")
    if x0 is None:
        x0 = torch.rand(y.shape, generator=_generator(seed, "hio_single"), dtype=y.dtype) * support
    if not isinstance(x0, torch.Tensor) or x0.shape != y.shape:
        raise ValueError(f"hio_single: x0 must be a tensor of the shape of y {tuple(y.shape)} (the padded grid), "
                         f"got {tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}")
    x = x0.to(y.dtype).clone()
    for _ in range(iters):
        # 1. to Fourier space: z = F P x (x already lives on the padded grid)
        z = torch.fft.fft2(x, norm="ortho")
        # 2. keep the phase, replace the magnitude by the measured one
        z = y * z / z.abs().clamp_min(_TINY)
        # 3. back to image space; the image is real
        x_new = torch.fft.ifft2(z, norm="ortho").real
        # 4. p = the nearest image that meets the constraints (0 outside the
        #    support, clipped to [0, 1]); accept x_new where it already does,
        #    elsewhere push x away from the violation (Fienup's feedback)
        p = project_constraints(x_new, support, constraints)
        x = torch.where(p == x_new, x_new, x - beta * (x_new - p))
    # the answer: the last iterate projected onto both sets, P_S(P_M(x))
    z = torch.fft.fft2(x, norm="ortho")
    x_new = torch.fft.ifft2(y * z / z.abs().clamp_min(_TINY), norm="ortho").real
    return project_constraints(x_new, support, constraints)


def hio_numpy(y: np.ndarray, support: np.ndarray, beta: float = 0.8, iters: int = 100,
              x0: Optional[np.ndarray] = None, constraints: Sequence[str] = DEFAULT_CONSTRAINTS,
              seed: int = 0) -> np.ndarray:
    """HIO for one image in plain numpy (``numpy.fft``, float64): the per-image baseline.

    Same arguments and result as :func:`hio_single`, with numpy arrays.
    """
    y = np.asarray(y, dtype=np.float64)
    support = np.asarray(support)
    if y.ndim != 2 or support.shape != y.shape or support.dtype != bool:
        raise ValueError(f"hio_numpy: y must be (H, W) and support a bool array of the same shape, got y "
                         f"{y.shape} and support {support.shape} ({support.dtype})")
    if not np.isfinite(y).all() or (y < 0).any():
        raise ValueError("hio_numpy: y must be finite and non-negative (a Fourier magnitude)")
    beta = _check_beta(beta, "hio_numpy")
    constraints = _check_constraints(constraints, "hio_numpy")
    lo, hi = _bounds(constraints)
    use_support = "support" in constraints
    x = np.random.default_rng(seed).random(y.shape) * support if x0 is None else np.array(x0, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"hio_numpy: x0 must have the shape of y {y.shape} (the padded grid), got {x.shape}")

    def project(u):
        p = np.clip(u, lo, hi) if (lo is not None or hi is not None) else u
        return p * support if use_support else p

    def project_magnitude(u):
        z = np.fft.fft2(u, norm="ortho")
        return np.fft.ifft2(y * z / np.maximum(np.abs(z), _TINY), norm="ortho").real

    for _ in range(iters):
        x_new = project_magnitude(x)
        p = project(x_new)
        x = np.where(p == x_new, x_new, x - beta * (x_new - p))
    return project(project_magnitude(x))
