"""The fast engine behind :func:`~.classical.hio`, :func:`~.classical.error_reduction` and :func:`~.classical.raar`.

The algorithms are those of :mod:`.classical` (the reference, :func:`~.classical.alternating_projections`), and
``tests/test_phase_classical.py`` checks that this engine gives the same iterates (float64: to 1e-9 after 20 HIO
iterations; float32: 1e-5 after 3, as HIO amplifies rounding in its transient). What is different, and why:

* **many images and restarts at once**, in chunks small enough for the CPU caches, one worker thread per core,
  each running torch with one op thread (:func:`_map_chunks`);
* **in-place arithmetic**; the constraint logic only touches the image block (outside it the support is violated
  everywhere and the update is one linear pass);
* **numba** (optional, ``engine='numba'``): the element-wise passes fused into two compiled loops per iteration
  (:mod:`._kernels`);
* **rfft2 / irfft2**: the iterate is real, so half of its spectrum (``W // 2 + 1`` columns) determines the rest.
  The magnitude of a real image is even, ``y[-k] = y[k]``; a noisy ``y`` need not be, and there the engine uses
  ``(y[k] + y[-k]) / 2``, which is what the full-spectrum algorithm does when it takes the real part of ``F^-1``;
  the magnitude errors are still measured against ``y`` itself (they differ by a constant, ``||y - y_even||``).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import numpy as np
import torch

from ..core.checks import InputError, check_choice, check_finite, check_int, check_number, check_tensor, make_generator
from . import _kernels
from .classical import CONSTRAINTS, ENGINES, TINY as _TINY, PhaseRetrievalResult, bounds
from .fourier import check_magnitude, image_size

__all__ = ["solve"]


# ---- Checks and preparation (once per call) ---------------------------------

def check_constraints(constraints, fn: str) -> Tuple[str, ...]:
    try:
        constraints = (constraints,) if isinstance(constraints, str) else tuple(constraints)
    except TypeError:
        raise InputError(f"{fn}: constraints must be a tuple of names from {CONSTRAINTS}, "
                         f"got {constraints!r}") from None
    bad = [c for c in constraints if c not in CONSTRAINTS]
    if bad:
        raise InputError(f"{fn}: unknown constraint(s) {bad}; choose from {CONSTRAINTS}")
    if "real" not in constraints:
        raise InputError(f"{fn}: the 'real' constraint cannot be dropped: the images (and the iterates) here "
                         f"are real; got constraints={constraints}")
    return constraints


def _prepare_support(support, n: int, H: int, W: int, h: int, w: int, pad, device, fn: str) -> torch.Tensor:
    """-> bool ``(1 or N, 1, H, W)`` on the measurement grid, inside the top-left ``h x w`` block."""
    support = check_tensor(torch.ones(h, w, dtype=torch.bool) if support is None else support, f"{fn}: support",
                           dims=(2, 4), shape_hint="(H, W), (1, 1, H, W) or (N, 1, H, W)")
    if support.dtype != torch.bool:
        if support.is_complex() or not bool(((support == 0) | (support == 1)).all()):
            raise InputError(f"{fn}: support must be a bool mask (or 0/1 values), got dtype {support.dtype}")
        support = support != 0
    support = support[None, None] if support.dim() == 2 else support
    if support.shape[1] != 1 or support.shape[0] not in (1, n):
        raise InputError(f"{fn}: support must have shape (H, W), (1, 1, H, W) or (N, 1, H, W) with N={n}, "
                         f"got {tuple(support.shape)}")
    sh, sw = support.shape[-2:]
    if sh > H or sw > W:
        raise InputError(f"{fn}: support of size {sh}x{sw} is larger than the measurement y ({H}x{W})")
    if (sh, sw) == (h, w):  # given on the image grid: place it at the top-left
        support = torch.nn.functional.pad(support, (0, W - w, 0, H - h))
    elif (sh, sw) != (H, W):
        raise InputError(f"{fn}: support of size {sh}x{sw} matches neither the measurement ({H}x{W}) nor the "
                         f"image ({h}x{w} for pad={pad:g})")
    if bool(support[..., h:, :].any()) or bool(support[..., :, w:].any()):
        raise InputError(f"{fn}: support has pixels outside the top-left {h}x{w} block, where P places the image "
                         f"(pad={pad:g}); pass the pad that made y")
    if not bool(support.flatten(1).any(1).all()):
        raise InputError(f"{fn}: support is empty (all False) for at least one image")
    return support.to(device)


def _prepare_init(init, n: int, restarts: int, H: int, W: int, h: int, w: int, support, dtype, device,
                  seed, fn: str) -> torch.Tensor:
    """-> ``(restarts * n, 1, H, W)`` starting iterates, restart-major."""
    g = make_generator(seed, f"{fn}: seed")
    starts = []
    if isinstance(init, torch.Tensor):
        x0 = check_finite(check_tensor(init, f"{fn}: init", floating=True), f"{fn}: init")
        if x0.dim() != 4 or x0.shape[0] != n or x0.shape[1] != 1 or tuple(x0.shape[-2:]) not in ((H, W), (h, w)):
            raise InputError(f"{fn}: init must have shape ({n}, 1, {h}, {w}) (image) or ({n}, 1, {H}, {W}) "
                             f"(padded grid), got {tuple(x0.shape)}")
        x0 = x0.to(device=device, dtype=dtype)
        starts.append(torch.nn.functional.pad(x0, (0, W - x0.shape[-1], 0, H - x0.shape[-2])))
    elif init is not None and init != "random":
        raise InputError(f"{fn}: init must be None, 'random' or a tensor, got {init!r}")
    for _ in range(len(starts), restarts):
        # uniform in [0, 1) on the support: a random image that satisfies the constraints
        starts.append(torch.rand(n, 1, H, W, generator=g, dtype=dtype).to(device) * support)
    return torch.cat(starts)


# ---- Chunks of images, their buffers and one iteration of each algorithm ----

class _Chunk:
    """Buffers and precomputed tensors for one chunk of images; the support lies in the top-left ``(bh, bw)`` block
    (the whole grid without 'support'), and the clipping and the mask only touch that block."""

    def __init__(self, y: torch.Tensor, block: Tuple[int, int], support_block: Optional[torch.Tensor], lo, hi,
                 fused: bool = False):
        n, _, H, W = y.shape
        self.H, self.W, self.Wr = H, W, W // 2 + 1
        self.bh, self.bw = block
        self.lo, self.hi, self.support_block = lo, hi, support_block
        self.whole = block == (H, W)
        dtype = y.dtype
        # the even part of y: y_even[k] = (y[k] + y[-k]) / 2  (= y for noiseless data)
        y_even = 0.5 * (y + torch.roll(torch.flip(y, (-2, -1)), shifts=(1, 1), dims=(-2, -1)))
        self.y_half = y_even[..., : self.Wr].contiguous()
        # sum over the full grid = weighted sum over the half: columns with a mirror twin count twice
        wcol = torch.full((self.Wr,), 2.0, dtype=dtype, device=y.device)
        wcol[0] = 1.0
        if W % 2 == 0:
            wcol[-1] = 1.0
        self.weights = wcol.expand(H, self.Wr).reshape(-1).contiguous()
        self.odd_energy = (y - y_even).square().flatten(1).sum(1)  # ||y - y_even||^2, 0 when y is even
        self.y_energy = y.square().flatten(1).sum(1)
        self.planes = torch.empty(2, n, 1, H, self.Wr, dtype=dtype, device=y.device)
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
        d = mag - self.y_half
        err2 = torch.mv(d.mul_(d).view(d.shape[0], -1), self.weights) + self.odd_energy
        return torch.sqrt(err2.clamp_min(0) / self.y_energy)

    def spectrum_magnitude(self, z: torch.Tensor) -> torch.Tensor:
        # re and im copied out of the interleaved complex layout first: faster than strided views or torch.abs
        self.planes.copy_(torch.view_as_real(z).movedim(-1, 0))
        re, im = self.planes
        return (re * re).addcmul_(im, im).sqrt_()

    def project_magnitude(self, u: torch.Tensor, errors: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``P_M(u)`` (a new tensor); the magnitude error of ``u`` into ``errors`` when given."""
        z = torch.fft.rfft2(u, norm="ortho")
        if self.fused:
            zf = torch.view_as_real(z).view(z.shape[0], -1).numpy()
            _kernels.project_magnitude_error(zf, self.y_np, self.w_np, _TINY, self.err2.numpy())
            if errors is not None:
                errors.copy_(self.err2.add_(self.odd_energy).clamp_min_(0).div_(self.y_energy).sqrt_())
            return torch.fft.irfft2(z, s=(self.H, self.W), norm="ortho")
        mag = self.spectrum_magnitude(z)
        if errors is not None:
            errors.copy_(self.magnitude_error(mag))
        z.mul_(torch.div(self.y_half, mag.clamp_(min=_TINY), out=mag))  # times y / |F u|: the phase kept, magnitude y
        return torch.fft.irfft2(z, s=(self.H, self.W), norm="ortho")

    def clip_block(self, v: torch.Tensor) -> torch.Tensor:
        """``P_S`` inside the block: clip to the bounds, times the support mask (a new tensor)."""
        out = v.clamp(self.lo, self.hi) if self.lo is not None or self.hi is not None else v.clone()
        return out if self.support_block is None else out.mul_(self.support_block)

    def project_constraints(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = P_S(v)`` on the whole grid."""
        if not self.whole:
            out.zero_()  # (for ER only needed once, but cheap next to the FFTs)
        self.block(out).copy_(self.clip_block(self.block(v)))
        return out

    def step(self, algorithm: str, u: torch.Tensor, beta, errors) -> None:
        """One iteration of ``algorithm`` ('error_reduction', 'hio' or 'raar'), in place on the iterate ``u``."""
        xp = self.project_magnitude(u, errors)
        if self.fused:  # the compiled loops of :mod:`._kernels`, on numpy views of u and xp
            u3, x3 = (t.view(t.shape[0], self.H, self.W).numpy() for t in (u, xp))
            box = (self.bh, self.bw, self.lo_f, self.hi_f, self.mask_np)
            if algorithm == "error_reduction":
                _kernels.er_update(u3, x3, *box)
            else:
                (_kernels.hio_update if algorithm == "hio" else _kernels.raar_update)(u3, x3, beta, *box)
        elif algorithm == "error_reduction":
            self.project_constraints(xp, out=u)
        elif algorithm == "hio":
            xi, u_in = self.block(xp), self.block(u)
            u.sub_(xp, alpha=beta)                  # u - beta u': the update wherever the support is violated
            p = self.clip_block(xi)                 # inside the block: P_S(u')
            m = torch.sign(xi - p).square_()        # r = u' - P_S(u') is 0 where the constraints hold: m = 1 where not
            u_in.add_(p, alpha=beta).sub_(xi)       # u - beta u' + beta P_S(u') - u' = u - beta r - u'
            torch.addcmul(xi, m, u_in, out=u_in)    # u' + m (u - beta r - u'): u - beta r where violated
            # (arithmetic rather than torch.where: comparisons to bool are slow on the CPU)
        else:  # RAAR
            xi, u_in = self.block(xp), self.block(u)
            p = self.clip_block(torch.mul(xi, 2.0).sub_(u_in))  # P_S(R_M u), R_M u = 2u' - u; 0 outside the block
            u.mul_(beta).add_(xp, alpha=1.0 - 2.0 * beta)
            u_in.add_(p, alpha=beta)


def _map_chunks(solve, starts, bar, workers: int) -> None:
    """Run ``solve(start, bar)`` for every chunk: in turn, or on ``workers`` threads (0: a GPU, as it is).

    Each CPU thread runs torch with one op thread: on small chunks OpenMP's threads gain little and, on a busy
    machine, wait for each other; whole chunks per thread scale (the FFTs and the arithmetic release the GIL).
    """
    def work(my_starts):
        if workers:
            torch.set_num_threads(1)  # this thread's own op threads (OpenMP settings are per thread)
        with torch.no_grad():
            for start in my_starts:
                solve(start, bar)

    before = torch.get_num_threads()
    try:
        if workers <= 1 or len(starts) == 1:
            work(starts)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for f in [pool.submit(work, starts[i::workers]) for i in range(workers)]:
                    f.result()
    finally:
        torch.set_num_threads(before)


def solve(algorithm: str, y: torch.Tensor, support, *, pad, iters, init, constraints, seed, restarts, history,
          progress, beta, chunk_size, engine="auto") -> PhaseRetrievalResult:
    """The one entry point: check the arguments of ``algorithm`` ('error_reduction', 'hio', 'raar'; see
    :func:`~.classical.hio`) once, at the notebooks' edge, and run it."""
    fn = algorithm
    t0 = time.perf_counter()
    check_magnitude(y, f"{fn}: y")
    if y.dim() != 4 or y.shape[1] != 1:
        raise InputError(f"{fn}: y must have shape (N, 1, H, W) (the Fourier magnitudes of N grey images), "
                         f"got {tuple(y.shape)}")
    constraints = check_constraints(constraints, fn)
    iters = check_int(iters, f"{fn}: iters", minimum=0)
    restarts = check_int(restarts, f"{fn}: restarts", minimum=1)
    if beta is not None:
        beta = check_number(beta, f"{fn}: beta", low=0, high=1, low_open=True)
    device = y.device
    engine = check_choice(engine, ENGINES, f"{fn}: engine")
    if engine == "numba" and not _kernels.AVAILABLE:
        raise InputError(f"{fn}: engine='numba' needs the numba package (pip install numba); "
                         "engine='torch' runs without it")
    if engine == "numba" and device.type != "cpu":
        raise InputError(f"{fn}: engine='numba' runs on the CPU only, but y is on {device}; use engine='torch'")
    if engine == "auto":
        engine = "numba" if _kernels.AVAILABLE and device.type == "cpu" else "torch"
    n, _, H, W = y.shape
    h, w = image_size(H, W, pad, fn)
    dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
    y = y.to(dtype)
    support = _prepare_support(support, n, H, W, h, w, pad, device, fn)
    if not bool((y.flatten(1).square().sum(1) > 0).all()):
        raise InputError(f"{fn}: y is all zeros for at least one image (nothing to retrieve)")
    lo, hi = bounds(constraints)
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
    chunk = total if chunk_size is None else check_int(chunk_size, "chunk_size", minimum=1)
    workers = 0  # a GPU: one stream of work, the whole batch at once
    if device.type == "cpu":
        if chunk_size is None:  # about 0.5 MiB per (H, W) float32 buffer (32 images of 64 x 64): the caches hold it
            chunk = max(1, min(total, (1 << 17) // (H * W)))
        # one thread per core when there are at least two chunks' worth of work, else one
        workers = min(torch.get_num_threads(), max(1, -(-total // chunk)))
        if chunk_size is None and workers > 1:
            chunk = -(-total // max(workers, -(-total // chunk)))  # even chunks, at least one per thread
    hist = torch.empty(iters, total, dtype=dtype, device=device) if history else None
    final_err = torch.empty(total, dtype=dtype, device=device)
    out = torch.empty(total, 1, H, W, dtype=dtype, device=device)
    from tqdm.auto import tqdm

    def solve(start: int, bar) -> None:
        stop = min(total, start + chunk)
        sb = s_block[start:stop] if s_block is not None and s_block.shape[0] > 1 else s_block
        c = _Chunk(y_all[start:stop], block, sb, lo, hi, fused=engine == "numba")
        u = u_all[start:stop].contiguous()
        for k in range(iters):
            c.step(algorithm, u, beta, hist[k, start:stop] if hist is not None else None)
            if progress:
                bar.update(stop - start)
        # the output: the projected image P_S(P_M(u)) and its magnitude error
        c.project_constraints(c.project_magnitude(u), out=out[start:stop])
        final_err[start:stop] = c.magnitude_error(c.spectrum_magnitude(torch.fft.rfft2(out[start:stop], norm="ortho")))

    starts = list(range(0, total, chunk))
    with tqdm(total=iters * total, desc=fn, disable=not progress, unit="img-it", dynamic_ncols=True) as bar:
        _map_chunks(solve, starts, bar, workers)

    # keep, per image, the restart with the lowest magnitude error
    best = final_err.view(restarts, n).argmin(0)
    idx = best * n + torch.arange(n, device=device)
    return PhaseRetrievalResult(
        images=out[idx][..., :h, :w].contiguous(), magnitude_error=final_err[idx],
        history=hist[:, idx] if hist is not None else None, restart=best, algorithm=algorithm, beta=beta,
        iters=iters, seconds=time.perf_counter() - t0, constraints=constraints, engine=engine)


