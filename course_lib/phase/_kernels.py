"""Fused element-wise kernels for :mod:`.engines` (numba), tested equal to its torch path.

An HIO iteration is two FFTs and a dozen element-wise passes; each torch op reads and writes whole arrays, so on
the CPU those passes cost about as much as the FFTs. Here they are two compiled SIMD loops, one over the half
spectrum (magnitude projection and error) and one over the image (the update), in place on numpy views of torch's
CPU buffers. ``error_model='numpy'``: with numba's default a division checks for zero, which stops vectorisation.
"""
from __future__ import annotations

import numpy as np

try:  # optional: without numba the torch path runs
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

AVAILABLE = numba is not None

__all__ = ["AVAILABLE", "project_magnitude_error", "hio_update", "er_update", "raar_update"]


def _jit(fn):
    if numba is None:
        return None
    options = dict(nogil=True, fastmath=True, error_model="numpy")
    try:  # compiled once, then loaded from numba's cache (next to this file, or the user's cache folder)
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError:  # no writable cache location anywhere: compile in every session instead (about 2 s)
        return numba.njit(**options)(fn)


def _project_magnitude_error(z, y, weights, tiny, err2):  # pragma: no cover - compiled by numba
    # z: (n, 2m) interleaved re/im of the half spectra, in place: z <- y z / |z|; y: (n, m) target magnitudes;
    # err2[a] = sum_i weights[i] (|z_ai| - y_ai)^2 before the projection (always computed: it is cheap)
    n, m = y.shape
    t = z.dtype.type(tiny)
    for a in range(n):
        za, ya = z[a], y[a]
        acc = z.dtype.type(0)
        for i in range(m):
            re, im = za[2 * i], za[2 * i + 1]
            r = np.sqrt(re * re + im * im)
            d = r - ya[i]
            acc += weights[i] * d * d
            s = ya[i] / max(r, t)
            za[2 * i] = re * s
            za[2 * i + 1] = im * s
        err2[a] = acc


def _outside(ua, xa, bh, bw, a, c):  # pragma: no cover - compiled by numba
    # outside the top-left (bh, bw) block of one image: u <- a u + c xp
    H, W = ua.shape
    for i in range(bh):
        for j in range(bw, W):
            ua[i, j] = a * ua[i, j] + c * xa[i, j]
    for i in range(bh, H):
        for j in range(W):
            ua[i, j] = a * ua[i, j] + c * xa[i, j]


def _hio_update(u, xp, beta, bh, bw, lo, hi, mask):  # pragma: no cover - compiled by numba
    # u, xp: (n, H, W). Inside the top-left (bh, bw) block: p = clip(xp, lo, hi) * mask, r = xp - p,
    # u <- xp where r == 0 else u - beta r; outside it (the support is violated): u <- u - beta xp.
    # mask: (1 or n, bh, bw) of 0/1; lo, hi finite (fastmath assumes no infinities)
    b, lo_, hi_ = u.dtype.type(beta), u.dtype.type(lo), u.dtype.type(hi)
    for a in range(u.shape[0]):
        ua, xa, ma = u[a], xp[a], mask[a if mask.shape[0] > 1 else 0]
        for i in range(bh):
            for j in range(bw):
                v = xa[i, j]
                r = v - min(max(v, lo_), hi_) * ma[i, j]
                ua[i, j] = v if r == 0 else ua[i, j] - b * r
        _outside_jit(ua, xa, bh, bw, u.dtype.type(1), -b)


def _er_update(u, xp, bh, bw, lo, hi, mask):  # pragma: no cover - compiled by numba
    # u <- P_S(xp): clip(xp) * mask inside the block, 0 outside
    lo_, hi_, zero = u.dtype.type(lo), u.dtype.type(hi), u.dtype.type(0)
    for a in range(u.shape[0]):
        ua, xa, ma = u[a], xp[a], mask[a if mask.shape[0] > 1 else 0]
        for i in range(bh):
            for j in range(bw):
                ua[i, j] = min(max(xa[i, j], lo_), hi_) * ma[i, j]
        _outside_jit(ua, xa, bh, bw, zero, zero)


def _raar_update(u, xp, beta, bh, bw, lo, hi, mask):  # pragma: no cover - compiled by numba
    # u <- beta u + (1 - 2 beta) xp + beta P_S(2 xp - u); P_S is 0 outside the block
    b, c = u.dtype.type(beta), u.dtype.type(1.0 - 2.0 * beta)
    lo_, hi_ = u.dtype.type(lo), u.dtype.type(hi)
    for a in range(u.shape[0]):
        ua, xa, ma = u[a], xp[a], mask[a if mask.shape[0] > 1 else 0]
        for i in range(bh):
            for j in range(bw):
                v = xa[i, j]
                w = ua[i, j]
                p = min(max(2 * v - w, lo_), hi_) * ma[i, j]
                ua[i, j] = b * w + c * v + b * p
        _outside_jit(ua, xa, bh, bw, b, c)


_outside_jit = _jit(_outside)
project_magnitude_error = _jit(_project_magnitude_error)
hio_update = _jit(_hio_update)
er_update = _jit(_er_update)
raar_update = _jit(_raar_update)
