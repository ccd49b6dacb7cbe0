"""The Fourier phase retrieval measurement and the lecture's Fourier toys.

The problem of the unit: recover a real image ``x`` of shape ``(N, 1, h, w)`` with values in ``[0, 1]`` from its
oversampled Fourier magnitude

    y = |F P x|

* ``P`` zero-pads ``x`` to ``(H, W) = (pad * h, pad * w)``, **the image at the top-left corner** (rows
  ``0..h-1``, columns ``0..w-1``), as ``torch.fft.fft2(x, s=(H, W))`` and ``numpy.fft.fft2(x, s=(H, W))`` do;
  the support of the padded image is the top-left ``h x w`` block (:func:`support_mask`). ``pad = 1`` is no
  oversampling; ``pad = 2`` doubles each axis (4x as many measurements as unknowns). Fractional factors work
  when ``pad * h`` is an integer (PR-DAD pads 32 -> 48, ``pad = 1.5``).
* ``F`` is the 2-D DFT with ``norm='ortho'`` (unitary: ``||F x|| = ||x||``),
  ``F[k, l] = (H W)^(-1/2) sum_{m, n} x[m, n] exp(-2 pi i (k m / H + l n / W))``.

What no algorithm can recover (the "trivial ambiguities", see :mod:`course_lib.phase.metrics`): a circular shift
of ``P x`` and its 180° rotation ``x[::-1, ::-1]`` have the same magnitude. (A global sign too, but the images
here are non-negative.)

Read top to bottom: 1. ``P``, ``P^T`` and the support of ``P x``; 2. the measurement ``y``; 3. the DFT written out
(tested equal to ``numpy.fft.fft2``); 4. "how critical is the phase"; 5. noisy measurements.

Example::

    >>> import torch
    >>> x = torch.rand(2, 1, 8, 8)
    >>> y = fourier_magnitude(x, pad=2)
    >>> y.shape
    torch.Size([2, 1, 16, 16])
    >>> bool(torch.allclose(y, fourier_magnitude(torch.rot90(x, 2, (-2, -1)), pad=2), atol=1e-5))
    True
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

from ..core.checks import (InputError, check_choice, check_finite, check_int, check_number, check_same_shape,
                           check_size, check_tensor, make_generator)

__all__ = [
    "check_real", "check_magnitude", "check_pad", "padded_size", "image_size",
    "pad_image", "unpad_image", "support_mask", "fourier_magnitude",
    "dft_matrix", "dft2_matrix", "dft2_sum",
    "magnitude_phase", "combine_magnitude_phase", "swap_phase_magnitude", "random_phase", "random_magnitude",
    "NOISE_KINDS", "add_noise", "snr_db",
]

NOISE_KINDS = ("gaussian", "poisson")

Seed = Union[None, int, torch.Generator]


# ---- Edge checks (the public functions below check their arguments once, with these) ----

def check_real(x, name: str) -> torch.Tensor:
    """``x`` if it is a finite, non-empty, real float tensor ``(..., H, W)``; ``name`` like ``"pad_image: x"``."""
    check_tensor(x, name, floating=True)
    if x.dim() < 2:
        raise InputError(f"{name} must have at least 2 dimensions (..., H, W), got shape {tuple(x.shape)}")
    return check_finite(x, name)


def check_magnitude(y, name: str) -> torch.Tensor:
    """``y`` if it is a Fourier magnitude: :func:`check_real` and non-negative."""
    check_real(y, name)
    if bool((y < 0).any()):
        raise InputError(f"{name} is a Fourier magnitude and must be non-negative, got a minimum of "
                         f"{float(y.min()):.3g}")
    return y


def check_pad(pad, name: str = "pad") -> float:
    """The oversampling factor ``pad`` as a float >= 1."""
    if isinstance(pad, bool) or not isinstance(pad, numbers.Real) or not math.isfinite(pad) or pad < 1:
        raise InputError(f"{name} must be a number >= 1 (1 = no oversampling, 2 = twice the size per axis), "
                         f"got {pad!r}")
    return float(pad)


def _whole(sizes, factor: float, fn: str, what: str) -> Tuple[int, int]:
    out = []
    for n, axis in zip(sizes, ("height", "width")):
        m = n * factor
        if abs(m - round(m)) > 1e-9 or round(m) < 1:
            raise InputError(f"{fn}: {what.format(axis=axis, n=n, m=m)}")
        out.append(int(round(m)))
    return out[0], out[1]


def padded_size(h: int, w: int, pad: float = 2, fn: str = "padded_size") -> Tuple[int, int]:
    """``(H, W) = (pad * h, pad * w)``; raises unless both are whole numbers."""
    pad = check_pad(pad, f"{fn}: pad")
    return _whole((h, w), pad, fn, f"pad={pad:g} times the image {{axis}} {{n}} is {{m:g}}, not a whole number "
                                   "of pixels")


def image_size(H: int, W: int, pad: float = 2, fn: str = "image_size") -> Tuple[int, int]:
    """The image size ``(h, w) = (H / pad, W / pad)`` behind a measurement of size ``(H, W)``."""
    pad = check_pad(pad, f"{fn}: pad")
    return _whole((H, W), 1 / pad, fn, f"a measurement {{axis}} of {{n}} is not pad={pad:g} times a whole number "
                                       "of pixels")


# ---- 1. Padding and support -------------------------------------------------

def pad_image(x: torch.Tensor, pad: float = 2) -> torch.Tensor:
    """``P x``: zero-pad ``(..., h, w)`` to ``(..., pad*h, pad*w)``, the image at the top-left corner.

    >>> pad_image(torch.ones(1, 1, 2, 2), pad=2)[0, 0]
    tensor([[1., 1., 0., 0.],
            [1., 1., 0., 0.],
            [0., 0., 0., 0.],
            [0., 0., 0., 0.]])
    """
    check_real(x, "pad_image: x")
    h, w = x.shape[-2:]
    H, W = padded_size(h, w, pad, "pad_image")
    if (H, W) == (h, w):
        return x
    return torch.nn.functional.pad(x, (0, W - w, 0, H - h))


def unpad_image(x: torch.Tensor, pad: float = 2) -> torch.Tensor:
    """``P^T x``: the top-left ``(H / pad, W / pad)`` block of a padded ``(..., H, W)`` tensor (a view)."""
    check_real(x, "unpad_image: x")
    h, w = image_size(x.shape[-2], x.shape[-1], pad, "unpad_image")
    return x[..., :h, :w]


def support_mask(shape: Sequence[int], pad: float = 2, device=None) -> torch.Tensor:
    """Support of ``P x`` for images of size ``shape = (h, w)``: a bool ``(pad*h, pad*w)`` mask, top-left True.

    >>> support_mask((2, 3), pad=2).int()
    tensor([[1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0]], dtype=torch.int32)
    """
    h, w = check_size(tuple(shape), "support_mask: shape (the image size)")
    H, W = padded_size(h, w, pad, "support_mask")
    mask = torch.zeros(H, W, dtype=torch.bool, device=device)
    mask[:h, :w] = True
    return mask


# ---- 2. The measurement -----------------------------------------------------

def fourier_magnitude(x: torch.Tensor, pad: float = 2) -> torch.Tensor:
    """The measurement ``y = |F P x|``: ``(..., h, w)`` real -> ``(..., pad*h, pad*w)``, non-negative.

    ``F`` is the orthonormal 2-D DFT, so ``sum(y**2) == sum(x**2)`` (Parseval). Computed in the input's precision.

    >>> x = torch.zeros(1, 1, 4, 4); x[..., 0, 0] = 1
    >>> fourier_magnitude(x, pad=2).unique()        # a delta has a flat spectrum, 1/sqrt(64)
    tensor([0.1250])
    """
    check_real(x, "fourier_magnitude: x")
    H, W = padded_size(x.shape[-2], x.shape[-1], pad, "fourier_magnitude")
    return torch.fft.fft2(x, s=(H, W), norm="ortho").abs()


# ---- 3. The DFT written out (teaching) --------------------------------------

def dft_matrix(n: int, norm: str = "ortho", dtype=torch.complex128) -> torch.Tensor:
    """The ``n x n`` DFT matrix ``W[k, m] = c * exp(-2 pi i k m / n)``.

    ``c = 1/sqrt(n)`` for ``norm='ortho'`` (then ``W`` is unitary: ``W^-1 = W^H``), 1 for ``'backward'`` (numpy's
    default), ``1/n`` for ``'forward'``. ``W @ v == numpy.fft.fft(v, norm=norm)``.
    """
    check_int(n, "dft_matrix: n", minimum=1)
    check_choice(norm, ("ortho", "backward", "forward"), "dft_matrix: norm")
    k = torch.arange(n, dtype=torch.float64)
    # k*m mod n keeps the angle small, so large n stays accurate
    angle = (-2 * math.pi / n) * torch.remainder(torch.outer(k, k), n)
    scale = {"ortho": 1 / math.sqrt(n), "backward": 1.0, "forward": 1.0 / n}[norm]
    return (torch.polar(torch.full_like(angle, scale), angle)).to(dtype)


def dft2_matrix(h: int, w: Optional[int] = None, norm: str = "ortho") -> torch.Tensor:
    """The 2-D DFT as one ``(h*w, h*w)`` matrix acting on the row-major flattened image.

    The 2-D DFT is separable, ``F x = W_h x W_w^T``, so its matrix is the Kronecker product ``W_h (x) W_w``:
    ``dft2_matrix(h, w) @ x.reshape(-1) == numpy.fft.fft2(x).reshape(-1)`` (with ``norm``). Only for small
    images: 64 x 64 already needs a 4096 x 4096 complex matrix.
    """
    w = h if w is None else w
    if h * w > 4096:
        raise ValueError(f"dft2_matrix: a {h}x{w} image needs a {h * w}x{h * w} matrix; keep h*w <= 4096 "
                         "(use torch.fft.fft2 for real work)")
    return torch.kron(dft_matrix(h, norm), dft_matrix(w, norm))


def dft2_sum(x: torch.Tensor, norm: str = "ortho") -> torch.Tensor:
    """The 2-D DFT by its definition, ``X[k, l] = c sum_m sum_n x[m, n] exp(-2 pi i (k m / H + l n / W))``.

    ``x`` is ``(..., H, W)`` (real or complex); returns complex128. Slow (``O(H W (H + W))``): for teaching.
    """
    check_tensor(x, "dft2_sum: x")
    check_choice(norm, ("ortho", "backward", "forward"), "dft2_sum: norm")
    H, W = x.shape[-2:]
    wh = dft_matrix(H, norm).to(x.device)  # wh[k, m] = c_H exp(-2 pi i k m / H)
    ww = dft_matrix(W, norm).to(x.device)
    # sum over m (rows) and n (columns): X[k, l] = sum_{m,n} wh[k, m] x[m, n] ww[l, n]
    return torch.einsum("km,...mn,ln->...kl", wh, x.to(torch.complex128), ww)


# ---- 4. How critical is the phase -------------------------------------------

def magnitude_phase(x: torch.Tensor, pad: float = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(|F P x|, angle(F P x))`` of real images ``(..., h, w)``; the phase in ``(-pi, pi]``.

    ``pad=1`` (the default here) transforms the image as it is. :func:`combine_magnitude_phase` inverts it.
    """
    check_real(x, "magnitude_phase: x")
    z = torch.fft.fft2(x, s=padded_size(x.shape[-2], x.shape[-1], pad, "magnitude_phase"), norm="ortho")
    return z.abs(), z.angle()


def combine_magnitude_phase(magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """``real(F^-1 (magnitude * exp(i phase)))``: a real image from a magnitude and a phase.

    When both come from real images (``magnitude`` even, ``phase`` odd under ``k -> -k``), the inverse is real
    already and nothing is lost by ``real``.
    """
    check_magnitude(magnitude, "combine_magnitude_phase: magnitude")
    check_same_shape(magnitude, check_real(phase, "combine_magnitude_phase: phase"),
                     "combine_magnitude_phase: magnitude and phase")
    return _combine(magnitude, phase)


def _combine(magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(torch.polar(magnitude, phase), norm="ortho").real


def swap_phase_magnitude(a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(|F a| with the phase of F b, |F b| with the phase of F a)``, as real images.

    The classic experiment (Oppenheim and Lim, "The importance of phase in signals", Proc. IEEE 1981): each
    output looks like the image whose *phase* it carries. Applying it twice gives ``(a, b)`` back. Values are
    not clipped to [0, 1]; rescale for display.
    """
    check_same_shape(check_real(a, "swap_phase_magnitude: a"), check_real(b, "swap_phase_magnitude: b"),
                     "swap_phase_magnitude: a and b")
    fa, fb = torch.fft.fft2(a, norm="ortho"), torch.fft.fft2(b, norm="ortho")
    return _combine(fa.abs(), fb.angle()), _combine(fb.abs(), fa.angle())


def _noise_spectrum(x: torch.Tensor, seed: Seed, fn: str) -> torch.Tensor:
    # The spectrum of a real white-noise image: its phase is uniformly random and odd (phase(-k) = -phase(k)), its
    # magnitude flat on average and even, so combining it with half of a real image's spectrum gives a real image.
    noise = torch.rand(x.shape, generator=make_generator(seed, f"{fn}: seed"), dtype=x.dtype).to(x.device)
    return torch.fft.fft2(noise - noise.mean(dim=(-2, -1), keepdim=True), norm="ortho")


def random_phase(x: torch.Tensor, seed: Seed = None) -> torch.Tensor:
    """The magnitude of ``x`` with a random phase (that of white noise): the image is gone.

    ``|F result| == |F x|`` exactly (the random phase is odd, so the result is real).
    """
    check_real(x, "random_phase: x")
    return _combine(torch.fft.fft2(x, norm="ortho").abs(), _noise_spectrum(x, seed, "random_phase").angle())


def random_magnitude(x: torch.Tensor, seed: Seed = None) -> torch.Tensor:
    """The phase of ``x`` with a random magnitude (that of white noise, same energy): edges survive.

    The random magnitude is rescaled so that the result has the energy ``sum(x**2)`` of ``x``;
    ``angle(F result) == angle(F x)`` wherever ``F x != 0``.
    """
    check_real(x, "random_magnitude: x")
    z = torch.fft.fft2(x, norm="ortho")
    mag, noise_mag = z.abs(), _noise_spectrum(x, seed, "random_magnitude").abs()
    # the DC term of the noise is 0 (mean removed): give it x's DC magnitude so the mean brightness stays
    noise_mag[..., 0, 0] = mag[..., 0, 0]
    energy = mag.square().sum(dim=(-2, -1), keepdim=True)
    noise_mag = noise_mag * torch.sqrt(energy / noise_mag.square().sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30))
    return _combine(noise_mag, z.angle())


# ---- 5. Noise ---------------------------------------------------------------

def add_noise(y: torch.Tensor, kind: str = "poisson", level: float = 1.0, *, seed: Seed = None) -> torch.Tensor:
    """Noisy magnitudes ``(..., H, W)`` from clean ones ``y = |F P x|`` (the DFT with ``norm='ortho'``).

    ``kind='poisson'``, ``level = alpha`` -- **the noise model of the unit** (PRCGAN, Uelwer et al. ICPR 2020,
    and CPR, after prDeep, Metzler et al. ICML 2018, whose intensities ``|A x|**2 + w`` have
    ``Var(w) = alpha**2 |A x|**2``), realised with true Poisson counts. The intensities are counted on the scale
    of the *unnormalised* DFT (``numpy.fft.fft2``), ``Y = sqrt(M) y`` with ``M = H W``, so that a [0, 1] image
    has the same photon budget whatever the normalisation of ``F``::

        counts ~ Poisson(Y**2 / alpha**2),      Y_noisy = alpha sqrt(counts),

    returned on the orthonormal scale, ``y_noisy = Y_noisy / sqrt(M)``. Then

        E[Y_noisy**2] = Y**2,   Var[Y_noisy**2] = alpha**2 Y**2
        (E[y_noisy**2] = y**2,  Var[y_noisy**2] = alpha**2 y**2 / M):

    a larger ``alpha`` means fewer photons per unit of intensity and more noise, and the noise of ``Y`` grows like
    ``alpha`` (with many photons ``Y_noisy ~ Y + N(0, alpha**2 / 4)``). So the noise energy is about
    ``alpha**2 / 4`` per image whatever ``pad``, and ``SNR ~ 10 log10(4 sum(x**2) / alpha**2)`` dB; coefficients
    with few photons make it a little lower. Measured with :func:`snr_db` (mean of the per-image SNRs) on the
    1,000 held-out offline MNIST digits (:func:`course_lib.phase.data.offline_digit_split`, 28x28,
    ``sum(x**2) = 90`` on average), the same at ``pad = 1`` and ``pad = 2``: **24.4 dB at alpha 1, 15.4 dB at
    alpha 3** -- the "alpha 1, 24 dB" and "alpha 3, about 16 dB" of REFERENCE_RESULTS and the PRCGAN paper.

    ``kind='gaussian'``, ``level = sigma``: ``y + sigma n``, ``n ~ N(0, 1)`` per coefficient, clipped at 0 (a
    magnitude is never negative). ``sigma`` is in the units of ``y``
    (:func:`course_lib.phase.data.simulate_measurement`'s ``'gaussian:SIGMA'`` scales it by each image's RMS
    magnitude).

    ``seed``: None (torch's global generator), an int or a CPU ``torch.Generator`` (the noise is moved to ``y``).

    >>> y = fourier_magnitude(torch.rand(1, 1, 16, 16))
    >>> snr = float(snr_db(y, add_noise(y, 'poisson', 1.0, seed=0)))
    >>> 15 < snr < 30
    True
    """
    check_magnitude(y, "add_noise: y")
    check_choice(kind, NOISE_KINDS, "add_noise: kind")
    g = make_generator(seed, "add_noise: seed")
    if kind == "gaussian":
        level = check_number(level, "add_noise: level (the Gaussian sigma)", low=0)
        return (y + level * torch.randn(y.shape, generator=g, dtype=y.dtype).to(y.device)).clamp_min(0)
    level = check_number(level, "add_noise: level (the Poisson alpha; the intensity Y**2 is counted in photons "
                                "of alpha**2)", low=0, low_open=True)
    M = y.shape[-1] * y.shape[-2]
    rate = (y.detach().double().cpu() ** 2) * (M / level ** 2)     # Y**2 / alpha**2 photons
    if bool((rate > 1e15).any()):
        raise ValueError(f"add_noise: alpha={level!r} is too small for these magnitudes (more than 1e15 "
                         "photons in a coefficient)")
    counts = torch.poisson(rate, generator=g)
    return (level * torch.sqrt(counts / M)).to(dtype=y.dtype, device=y.device)


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``10 log10(||clean||^2 / ||noisy - clean||^2)`` in dB, per image.

    ``(H, W)`` or ``(C, H, W)`` -> a 0-d tensor; ``(N, ...)`` with 4 or more dimensions -> ``(N,)``. Identical
    inputs give ``inf``.
    """
    check_same_shape(check_real(clean, "snr_db: clean"), check_real(noisy, "snr_db: noisy"), "snr_db: clean and noisy")
    single = clean.dim() < 4
    shape = (1, -1) if single else (len(clean), -1)
    c, n = clean.double().reshape(shape), noisy.double().reshape(shape)
    out = 10 * torch.log10(c.square().sum(1) / (n - c).square().sum(1))
    return out[0] if single else out
