"""The degradation pipeline: how low-resolution inputs are made from ground truth.

A super-resolution network learns to invert whatever made its LR inputs, so this module is where the "what
problem are we solving" decision lives. Read top to bottom: resampling with PIL's kernels, blur kernels, the
steps, :class:`Pipeline`, and :func:`degrade` with its :data:`PRESETS`: one call from HR to LR.

Images are float tensors ``(C, H, W)`` or ``(N, C, H, W)`` in ``[0, 1]``; every public function also accepts a
PIL image and then returns one. Arguments are checked once, by the public function a user calls; the steps and
the internals work on checked ``(N, C, H, W)`` tensors.

Example::

    >>> degrade(torch.rand(3, 65, 50), scale=4, preset="realistic", seed=0).shape  # cropped to 64 x 48 first
    torch.Size([3, 16, 12])
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, fields
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..core.checks import InputError, check_choice, check_int, check_number, check_probability, check_size
from ..core.filters import gaussian_blur
from ..core.images import check_image_tensor, to_pil, to_tensor

__all__ = ["KERNELS", "resize", "crop_to_multiple", "downscale", "gaussian_kernel", "motion_blur_kernel", "Step",
           "Downscale", "GaussianBlur", "MotionBlur", "GaussianNoise", "PoissonNoise", "JPEG", "Pipeline", "degrade",
           "PRESETS", "preset_names"]

KERNELS = ("nearest", "bilinear", "bicubic", "area", "lanczos")

Range = Union[float, Tuple[float, float]]
Seed = Union[None, int, np.random.Generator]


def _as_batch(img, name: str):
    """The edge: an image -> a checked ``(N, C, H, W)`` tensor in [0, 1], and a function that gives a
    result back in the caller's form (PIL -> PIL, ``(C, H, W)`` -> ``(C, H, W)``)."""
    if isinstance(img, Image.Image):
        return to_tensor(img)[None], lambda y: to_pil(y[0])
    if not isinstance(img, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor (C, H, W) / (N, C, H, W) or a PIL image, "
                         f"got {type(img).__name__}")
    check_image_tensor(img, name)
    lo, hi = float(img.min()), float(img.max())
    # A little slack: network outputs and float round-off stray slightly outside.
    if not (lo >= -1e-3 and hi <= 1 + 1e-3):
        raise InputError(f"{name} must have values in [0, 1], got range [{lo:.3g}, {hi:.3g}] "
                         "(divide 8-bit data by 255)")
    return (img[None], lambda y: y[0]) if img.dim() == 3 else (img, lambda y: y)


# 1. Resampling -------------------------------------------------------------
# PIL's filters, as in Pillow's libImaging/Resample.c. Each is (function, support).

def _triangle(x):
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _cubic(x, a=-0.5):
    # Keys' cubic convolution with a = -0.5 (PIL and MATLAB); torch's and OpenCV's non-antialiased bicubic: -0.75.
    x = np.abs(x)
    return np.where(x < 1.0, ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
                    np.where(x < 2.0, (((x - 5.0) * x + 8.0) * x - 4.0) * a, 0.0))


def _lanczos3(x):
    # sinc(x) sinc(x / 3) on |x| < 3; np.sinc is the normalised sin(pi x) / (pi x).
    return np.where(np.abs(x) < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)


_PIL_FILTERS = {"bilinear": (_triangle, 1.0), "bicubic": (_cubic, 2.0), "lanczos": (_lanczos3, 3.0)}


def _resample_weights(in_size: int, out_size: int, kernel: str, antialias: bool):
    """Tap indices and weights ``(out_size, K)`` of a 1-D resampling, as PIL computes them.

    Output pixel ``i`` is centred at ``(i + 0.5) * in/out`` in input coordinates. When shrinking with
    ``antialias`` the kernel is stretched by the factor, so it averages over the input pixels each output
    pixel covers (a low-pass filter) instead of point-sampling and aliasing. Weights are renormalised where
    the kernel hangs over the border (no padding).
    """
    fn, support = _PIL_FILTERS[kernel]
    scale = in_size / out_size
    stretch = max(scale, 1.0) if antialias else 1.0
    support = support * stretch
    center = (np.arange(out_size) + 0.5) * scale
    # np.trunc, not floor: PIL casts with (int), which rounds towards zero.
    lo = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    hi = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)
    taps = int(math.ceil(support)) * 2 + 1
    idx = lo[:, None] + np.arange(taps)[None, :]
    w = fn((idx - center[:, None] + 0.5) / stretch) * (idx < hi[:, None])
    w = w / w.sum(axis=1, keepdims=True)
    return np.minimum(idx, in_size - 1), w


def _resample_axis(x: torch.Tensor, out_size: int, dim: int, kernel: str, antialias: bool,
                   by_hand: bool = False) -> torch.Tensor:
    """Resample ``x`` along ``dim`` (-1 or -2) with PIL's ``kernel``: by hand (always for Lanczos, which torch
    lacks), one ``index_select`` + multiply-add per tap, so the memory is one output, not a dense ``(out, in)``
    matrix; otherwise ``F.interpolate(antialias=True)``, which uses the same weights (tested) and is faster.
    """
    if kernel != "lanczos" and not by_hand:
        size = (out_size, x.shape[-1]) if dim == -2 else (x.shape[-2], out_size)
        return F.interpolate(x, size=size, mode=kernel, align_corners=False, antialias=True)
    idx, w = _resample_weights(x.shape[dim], out_size, kernel, antialias)
    idx = torch.from_numpy(idx).to(x.device)
    w = torch.from_numpy(w).to(device=x.device, dtype=x.dtype)
    shape = (-1, 1) if dim == -2 else (-1,)
    return sum(x.index_select(dim, idx[:, k]) * w[:, k].reshape(shape) for k in range(idx.shape[1]))


def _resize(x: torch.Tensor, h: int, w: int, kernel: str, antialias: bool) -> torch.Tensor:
    if kernel in ("nearest", "area"):
        y = F.interpolate(x, size=(h, w), mode="nearest-exact" if kernel == "nearest" else "area")
    elif kernel != "lanczos" and not antialias:
        y = F.interpolate(x, size=(h, w), mode=kernel, align_corners=False, antialias=False)
    else:  # width first, then height, clipping in between as PIL's 8-bit intermediate image does
        y = _resample_axis(x, w, -1, kernel, antialias).clamp(0, 1) if w != x.shape[-1] else x
        y = _resample_axis(y, h, -2, kernel, antialias) if h != x.shape[-2] else y
    return y.clamp(0, 1)


def resize(img, size: Tuple[int, int], kernel: str = "bicubic", antialias: bool = True):
    """Resize ``img`` (``(C, H, W)``, ``(N, C, H, W)`` in [0, 1], or PIL) to ``size = (height, width)`` like PIL.

    * ``"nearest"`` -- the input pixel whose centre is nearest: PIL ``NEAREST`` (torch ``"nearest-exact"``;
      plain ``"nearest"`` is off by half a pixel).
    * ``"bilinear"``, ``"bicubic"`` -- PIL's kernels (bicubic ``a = -0.5``), written out in :func:`_resample_weights`.
      ``antialias=False`` (ignored by nearest and area) does not widen the kernel when shrinking, which aliases:
      ``F.interpolate``'s and OpenCV's default (their bicubic uses ``a = -0.75``), *not* the benchmark protocol.
    * ``"area"`` -- the mean over the input pixels each output pixel covers; for an integer factor, the block mean.
    * ``"lanczos"`` -- Lanczos-3 windowed sinc with PIL's ``LANCZOS`` weights (torch has no Lanczos).

    Like PIL, the two axes are resampled one after the other (width first) and the intermediate image is
    clipped to [0, 1]: PIL keeps it as 8-bit, which clips the overshoot of the cubic and Lanczos kernels at
    sharp edges. Returns the resized image in [0, 1], in the type and batch form of ``img``.
    """
    x, back = _as_batch(img, "resize: img")
    check_choice(kernel, KERNELS, "resize: kernel")
    h, w = check_size(size, "resize: size")
    return back(_resize(x, h, w, kernel, antialias))


def _crop(x: torch.Tensor, scale: int, name: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h < scale or w < scale:
        raise InputError(f"{name}: the image of {h}x{w} pixels is smaller than scale={scale}")
    return x[..., : h - h % scale, : w - w % scale]


def crop_to_multiple(img, scale: int):
    """Crop the bottom and right edges so that height and width divide by ``scale``.

    The benchmark protocol ("modcrop"): the LR image is then exactly ``(H // scale, W // scale)`` and each LR
    pixel covers ``scale x scale`` HR pixels, so HR and upscaled LR align pixel for pixel.
    """
    scale = check_int(scale, "crop_to_multiple: scale", minimum=1)
    x, back = _as_batch(img, "crop_to_multiple: img")
    return back(_crop(x, scale, "crop_to_multiple"))


def downscale(img, scale: int, kernel: str = "bicubic", antialias: bool = True):
    """Crop to a multiple of ``scale``, then shrink by ``scale``: ``(H, W) -> (H // s, W // s)``.

    ``kernel="bicubic"`` (the default) with ``antialias=True`` is the benchmark protocol and matches PIL
    ``Image.BICUBIC``; ``"area"`` is the mean of each ``s x s`` block; ``"nearest"`` keeps one pixel per block
    (index ``s // 2``, as PIL). See :func:`resize` for all kernels.
    """
    scale = check_int(scale, "downscale: scale", minimum=1)
    check_choice(kernel, KERNELS, "downscale: kernel")
    x, back = _as_batch(img, "downscale: img")
    x = _crop(x, scale, "downscale")
    return back(_resize(x, x.shape[-2] // scale, x.shape[-1] // scale, kernel, antialias))


# 2. Blur kernels and filtering ---------------------------------------------
# Angles are in degrees, counter-clockwise as seen on screen (rows go down).

def _grid(r: int, angle_deg: float):
    """Row and column offsets on a ``(2r+1, 2r+1)`` grid, and the unit vector ``(ux, uy)`` of the angle."""
    t = math.radians(angle_deg)
    ux, uy = math.cos(t), -math.sin(t)  # (x, row) components; minus because rows point down
    rows, cols = torch.meshgrid(torch.arange(-r, r + 1, dtype=torch.float64),
                                torch.arange(-r, r + 1, dtype=torch.float64), indexing="ij")
    return rows, cols, ux, uy


def gaussian_kernel(sigma: float, sigma_y: Optional[float] = None, angle: float = 0.0,
                    truncate: float = 3.0, dtype=torch.float32) -> torch.Tensor:
    """A normalised 2-D Gaussian kernel ``(2r+1, 2r+1)``, ``r = ceil(truncate * max(sigma, sigma_y))``.

    ``k(d) ∝ exp(-d^T Σ^{-1} d / 2)`` with covariance ``Σ = sigma^2 u u^T + sigma_y^2 v v^T``, where ``u`` points at
    ``angle`` degrees (counter-clockwise on screen) and ``v`` is perpendicular to it. ``sigma_y=None`` gives the
    isotropic kernel. The sum is 1, so flat regions keep their brightness. ``d = (x, row)`` offsets from the centre.
    """
    sx = check_number(sigma, "gaussian_kernel: sigma", low=0, low_open=True)
    sy = sx if sigma_y is None else check_number(sigma_y, "gaussian_kernel: sigma_y", low=0, low_open=True)
    angle = check_number(angle, "gaussian_kernel: angle")
    truncate = check_number(truncate, "gaussian_kernel: truncate", low=0, low_open=True)
    rows, cols, ux, uy = _grid(int(math.ceil(truncate * max(sx, sy))), angle)
    du = cols * ux + rows * uy         # coordinate along u
    dv = -cols * uy + rows * ux        # along v, perpendicular to u
    k = torch.exp(-0.5 * ((du / sx) ** 2 + (dv / sy) ** 2))
    return (k / k.sum()).to(dtype)


def motion_blur_kernel(length: float, angle: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    """A normalised line kernel: a camera (or object) moving ``length`` pixels at ``angle`` degrees.

    Each kernel pixel gets weight ``max(0, 1 - distance to the segment)`` (an anti-aliased line through the
    centre, ``length`` pixels long), then the weights are divided by their sum. ``angle=0`` is horizontal;
    with an integer length it is exactly a row of ``length`` equal weights.
    """
    length = check_number(length, "motion_blur_kernel: length", low=1)
    half = (length - 1) / 2
    r = int(math.ceil(half)) + 1
    rows, cols, ux, uy = _grid(r, check_number(angle, "motion_blur_kernel: angle"))
    t = (cols * ux + rows * uy).clamp(-half, half)   # nearest point of the segment
    k = (1 - torch.sqrt((cols - t * ux) ** 2 + (rows - t * uy) ** 2)).clamp(min=0)
    # Drop all-zero outer rings so that the convolution does no useless work.
    r_used = int((torch.nonzero(k > 0) - r).abs().max())
    k = k[r - r_used: r + r_used + 1, r - r_used: r + r_used + 1]
    return (k / k.sum()).to(dtype)


def _filter2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of ``x (N, C, H, W)`` with an odd 2-D ``kernel``; same size, mirrored borders
    as in :func:`course_lib.core.filters.gaussian_blur` (scipy's ``"mirror"``)."""
    n, c, h, w = x.shape
    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    mode = "reflect" if ry < h and rx < w else "replicate"
    xp = F.pad(x.reshape(n * c, 1, h, w), (rx, rx, ry, ry), mode=mode)
    # conv2d correlates; the flip makes it a convolution (the same for the symmetric kernels here, right for any).
    return F.conv2d(xp, kernel.flip(-1, -2).to(x)[None, None]).reshape(n, c, h, w)


# 3. Steps ------------------------------------------------------------------

def _ranged(default, label: str, **bounds):
    """A step parameter, a value or a ``(low, high)`` range checked and drawn by :class:`Step`, named ``label``."""
    return field(default=default, metadata={"range": (label, bounds)})


def _value_or_range(value, name: str, integer: bool = False, **bounds):
    """A fixed value or a ``(low, high)`` range with ``low <= high``, each end within ``bounds``."""
    if integer:
        check = lambda v: check_int(v, name, minimum=bounds.get("low"), maximum=bounds.get("high"))  # noqa: E731
    else:
        check = lambda v: check_number(v, name, **bounds)  # noqa: E731
    if not isinstance(value, (tuple, list)):
        return check(value)
    if len(value) != 2:
        raise InputError(f"{name} must be a value or a (low, high) pair, got {value!r}")
    lo, hi = check(value[0]), check(value[1])
    if lo > hi:
        raise InputError(f"{name} range must have low <= high, got {tuple(value)!r}")
    return (lo, hi)


def _sample(value, rng: np.random.Generator):
    """Draw from a ``(low, high)`` range (uniform; an int range inclusive), or return the fixed value."""
    if not isinstance(value, tuple):
        return value
    lo, hi = value
    return int(rng.integers(lo, hi + 1)) if isinstance(lo, int) else float(rng.uniform(lo, hi))


def _torch_generator(rng: np.random.Generator, device) -> torch.Generator:
    # noise is drawn by torch on the image's device, seeded from the numpy stream: one seed fixes everything
    return torch.Generator(device=device).manual_seed(int(rng.integers(0, 2 ** 63 - 1)))


class Step:
    """Base of the degradation steps, used in two stages so that :class:`Pipeline` can report what it drew.

    ``params = step.sample(rng)`` draws this call's parameters (those declared with ``_ranged``, checked once
    when the step is made, drawn in declaration order), ``step.apply(x, params, rng)`` applies them to
    ``x (N, C, H, W)``, ``step.describe(params)`` says it in words. Parameters are drawn once per call and shared
    by a batch; noise differs per image. ``p`` (where a step has it) is the probability that the step is applied.
    Calling a step on an image runs it alone: ``GaussianBlur(2.0)(img, seed=0)``.
    """

    p: float = 1.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if "range" in f.metadata and value is not None:
                label, bounds = f.metadata["range"]
                setattr(self, f.name, _value_or_range(value, f"{type(self).__name__}: {label}", **bounds))
        self.p = check_probability(self.p, f"{type(self).__name__}: p")

    def sample(self, rng: np.random.Generator) -> dict:
        return {f.name: _sample(getattr(self, f.name), rng) for f in fields(self) if "range" in f.metadata}

    def apply(self, x: torch.Tensor, params: dict, rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError

    def describe(self, params: dict) -> str:
        inner = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({inner})"

    def __call__(self, img, seed: Seed = None):
        return Pipeline([self])(img, seed=seed)


@dataclass
class Downscale(Step):
    """Shrink by an integer ``scale`` with ``kernel`` (see :func:`downscale`).

    ``kernel`` may be a list of names; one is chosen at random on each call (Real-ESRGAN draws among area,
    bilinear and bicubic so that the network does not overfit to one kernel). Always applied (no ``p``): the
    LR size must not depend on chance.
    """
    scale: int = 4
    kernel: Union[str, Sequence[str]] = "bicubic"
    antialias: bool = True

    def __post_init__(self):
        self.scale = check_int(self.scale, "Downscale: scale", minimum=1)
        names = list(self.kernel) if isinstance(self.kernel, (list, tuple)) else [self.kernel]
        if not names:
            raise InputError(f"Downscale: the kernel list is empty; use names from {', '.join(KERNELS)}")
        for k in names:
            check_choice(k, KERNELS, "Downscale: kernel")

    def sample(self, rng):
        kernel = self.kernel if isinstance(self.kernel, str) else self.kernel[int(rng.integers(len(self.kernel)))]
        return {"scale": self.scale, "kernel": kernel}

    def apply(self, x, params, rng):  # (Pipeline crops x to a multiple of all the scales first)
        h, w = x.shape[-2] // params["scale"], x.shape[-1] // params["scale"]
        return _resize(x, h, w, params["kernel"], self.antialias)

    def describe(self, params):
        return f"Downscale(x{params['scale']}, kernel={params['kernel']})"


@dataclass
class GaussianBlur(Step):
    """Gaussian blur (lens defocus, optics): isotropic or anisotropic and rotated.

    ``sigma`` (pixels) is the spread along ``angle`` (degrees, counter-clockwise), ``sigma_y`` across it;
    ``sigma_y=None`` is isotropic. Each may be a ``(low, high)`` range. With ``sigma_y`` given,
    ``isotropic_prob`` is the chance of drawing an isotropic kernel instead (Real-ESRGAN mixes both).
    Isotropic: :func:`course_lib.core.filters.gaussian_blur` (separable); anisotropic: :func:`gaussian_kernel`.
    Radius ``ceil(3 max(sigma, sigma_y))``; borders are mirrored (scipy's ``mode="mirror"``).
    """
    sigma: Range = _ranged(1.0, "sigma", low=0, low_open=True)
    sigma_y: Optional[Range] = _ranged(None, "sigma_y", low=0, low_open=True)
    angle: Range = _ranged(0.0, "angle (degrees)")
    isotropic_prob: float = 0.0
    p: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        self.isotropic_prob = check_probability(self.isotropic_prob, "GaussianBlur: isotropic_prob")

    def sample(self, rng):
        sigma = _sample(self.sigma, rng)
        if self.sigma_y is None or rng.random() < self.isotropic_prob:
            return {"sigma": sigma}
        return {"sigma": sigma, "sigma_y": _sample(self.sigma_y, rng), "angle": _sample(self.angle, rng)}

    def apply(self, x, params, rng):
        if "sigma_y" not in params:
            return gaussian_blur(x, params["sigma"], border="reflect").clamp(0, 1)
        k = gaussian_kernel(params["sigma"], params["sigma_y"], params["angle"], dtype=torch.float64)
        return _filter2d(x, k).clamp(0, 1)


@dataclass
class MotionBlur(Step):
    """Linear motion blur: convolution with :func:`motion_blur_kernel` (``length`` pixels at ``angle`` degrees)."""
    length: Range = _ranged(5.0, "length (pixels)", low=1)
    angle: Range = _ranged(0.0, "angle (degrees)")
    p: float = 1.0

    def apply(self, x, params, rng):
        return _filter2d(x, motion_blur_kernel(params["length"], params["angle"], dtype=torch.float64)).clamp(0, 1)


@dataclass
class GaussianNoise(Step):
    """Additive white Gaussian noise (sensor read noise): ``y = clip(x + n, 0, 1)``, ``n ~ N(0, (sigma/255)^2)``.

    ``sigma`` is in units of 1/255 like Real-ESRGAN (which draws 1..30). ``gray`` makes the noise the same in
    every channel (luminance noise); a number in [0, 1] is the probability of gray noise on each call
    (Real-ESRGAN: 0.4). Clipping to [0, 1] as a camera does lowers the measured spread near black and white.
    """
    sigma: Range = _ranged(10.0, "sigma (units of 1/255)", low=0, high=255)
    gray: Union[bool, float] = False
    p: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.gray, bool):
            self.gray = check_probability(self.gray, "GaussianNoise: gray (a bool or a probability)")

    def sample(self, rng):
        gray = self.gray if isinstance(self.gray, bool) else bool(rng.random() < self.gray)
        return {"sigma": _sample(self.sigma, rng), "gray": gray}

    def apply(self, x, params, rng):
        g = _torch_generator(rng, x.device)
        n, c, h, w = x.shape
        noise = torch.randn((n, 1 if params["gray"] else c, h, w), generator=g, device=x.device, dtype=x.dtype)
        return (x + noise * (params["sigma"] / 255.0)).clamp(0, 1)

    def describe(self, params):
        return f"GaussianNoise(sigma={params['sigma']:.3g}/255, {'gray' if params['gray'] else 'colour'})"


@dataclass
class PoissonNoise(Step):
    """Shot noise: ``y = Poisson(x * scale) / scale``, clipped to [0, 1].

    ``scale`` is the expected photon count of a white pixel; the noise has mean 0 and variance ``x / scale``,
    so it grows with brightness and shrinks as more light is collected (``scale`` larger).
    """
    scale: Range = _ranged(100.0, "scale (photons at white)", low=0, low_open=True)
    p: float = 1.0

    def apply(self, x, params, rng):
        g = _torch_generator(rng, x.device)
        s = params["scale"]
        return (torch.poisson(x.clamp(0, 1) * s, generator=g) / s).clamp(0, 1)


@dataclass
class JPEG(Step):
    """JPEG compression artefacts: encode and decode with PIL at ``quality`` (1..100).

    Each image is rounded to 8 bits, saved as JPEG (PIL's defaults: 4:2:0 chroma subsampling) and read back,
    exactly as a JPEG file on disk would be. Low quality shows 8x8 blocks and ringing. 1 or 3 channels.
    """
    quality: Union[int, Tuple[int, int]] = _ranged(75, "quality", integer=True, low=1, high=100)
    p: float = 1.0

    def apply(self, x, params, rng):
        if x.shape[1] not in (1, 3):
            raise InputError(f"JPEG: images must have 1 or 3 channels, got shape {tuple(x.shape)}")
        out = []
        for img in x:
            buf = io.BytesIO()
            to_pil(img).save(buf, format="JPEG", quality=params["quality"])
            buf.seek(0)
            with Image.open(buf) as decoded:
                out.append(to_tensor(decoded.convert("L" if x.shape[1] == 1 else "RGB")))
        return torch.stack(out).to(device=x.device, dtype=x.dtype)


# 4. Pipeline ---------------------------------------------------------------

@dataclass
class Pipeline(Step):
    """A sequence of steps applied in order, or in a random order per call (``shuffle=True``).

    ``pipeline(img, seed)`` is deterministic for an int ``seed`` (a ``numpy.random.Generator`` is used and
    advanced; ``None`` draws fresh entropy). The draws per call, in order: the permutation (if shuffled), then
    for each step whether it is applied (``p``), its parameters, and its noise. A pipeline can itself be a
    step of another pipeline, e.g. a shuffled block followed by a final JPEG.

    Random order follows BSRGAN (Zhang et al., ICCV 2021): blur before or after the downscale, noise before or
    after blur, are all plausible real histories of a photo.

    Example:
        >>> pipe = Pipeline([GaussianBlur((0.5, 2)), Downscale(2), JPEG((30, 95))])
        >>> pipe(torch.rand(3, 32, 32), seed=0).shape
        torch.Size([3, 16, 16])
        >>> pipe.describe()[1]
        'Downscale(x2, kernel=bicubic)'
    """
    steps: Sequence[Step] = field(default_factory=list)
    shuffle: bool = False

    def __post_init__(self):
        if isinstance(self.steps, Step) or not isinstance(self.steps, (list, tuple)):
            raise InputError(f"Pipeline: steps must be a list of steps, got {type(self.steps).__name__}")
        for i, s in enumerate(self.steps):
            if not isinstance(s, Step):
                raise InputError(f"Pipeline: steps[{i}] must be a step (Downscale, GaussianBlur, MotionBlur, "
                                 f"GaussianNoise, PoissonNoise, JPEG or Pipeline), got {type(s).__name__}")
        self.steps = list(self.steps)
        self._history: Optional[List[str]] = None

    @property
    def total_scale(self) -> int:
        """The product of the ``Downscale`` factors: the LR is this many times smaller."""
        return math.prod(s.scale if isinstance(s, Downscale) else s.total_scale if isinstance(s, Pipeline) else 1
                         for s in self.steps)

    def _run(self, x, rng, log):
        order = rng.permutation(len(self.steps)) if self.shuffle else range(len(self.steps))
        for i in order:
            step = self.steps[int(i)]
            if isinstance(step, Pipeline):
                x = step._run(x, rng, log)
            elif rng.random() < step.p:  # always drawn, so that p does not change which numbers later steps get
                params = step.sample(rng)
                x = step.apply(x, params, rng)
                log.append(step.describe(params))
            else:
                log.append(f"{type(step).__name__}: skipped (p={step.p:g})")
        return x

    def _degrade(self, x: torch.Tensor, seed: Seed) -> torch.Tensor:
        """The pipeline on a checked ``(N, C, H, W)`` tensor."""
        try:
            rng = np.random.default_rng(seed)
        except (TypeError, ValueError):
            raise InputError(f"Pipeline: seed must be None, an int or a numpy.random.Generator, got {seed!r}") from None
        x = _crop(x, self.total_scale, "Pipeline")  # once up front: every Downscale divides exactly, in any order
        log: List[str] = []
        y = self._run(x, rng, log)
        self._history = log
        return y.clamp(0, 1)

    def __call__(self, img, seed: Seed = None):
        x, back = _as_batch(img, "Pipeline: img")
        return back(self._degrade(x, seed))

    def describe(self, params: Optional[dict] = None) -> List[str]:
        """What the last call applied, one line per step with the sampled values (before any call: the steps)."""
        return list(self._history) if self._history is not None else [repr(s) for s in self.steps]


# 5. Presets and degrade() --------------------------------------------------

def _realistic(scale):
    # Real-ESRGAN (Wang et al. 2021) / BSRGAN (Zhang et al. 2021) style. Blur, resize and noise in random order;
    # JPEG last, as in both papers: a photo is compressed when it is saved, after everything else. Gaussian noise
    # (p=0.6) and Poisson noise (p=0.4) are drawn independently (Real-ESRGAN picks one of the two with these odds).
    return Pipeline([
        Pipeline([
            GaussianBlur(sigma=(0.2, 3.0), sigma_y=(0.2, 3.0), angle=(-90.0, 90.0), isotropic_prob=0.5),
            Downscale(scale, ["area", "bilinear", "bicubic"]),
            GaussianNoise(sigma=(1, 30), gray=0.4, p=0.6),
            PoissonNoise(scale=(30, 1000), p=0.4),
        ], shuffle=True),
        JPEG((30, 95)),
    ])


PRESETS: Dict[str, Callable[[int], Pipeline]] = {
    # the benchmark protocol (crop + PIL-compatible bicubic)
    "bicubic": lambda scale: Pipeline([Downscale(scale, "bicubic")]),
    # ESPCN's training data: Gaussian blur, then keep one pixel per block; sigma = scale / 2
    # (the "BD" protocol of SRMD/RDN uses 1.6 at x3)
    "gaussian": lambda scale: Pipeline([GaussianBlur(sigma=0.5 * scale), Downscale(scale, "nearest")]),
    "jpeg30": lambda scale: Pipeline([Downscale(scale, "bicubic"), JPEG(30)]),
    "jpeg": lambda scale: Pipeline([Downscale(scale, "bicubic"), JPEG((30, 95))]),
    "noisy": lambda scale: Pipeline([Downscale(scale, "bicubic"), GaussianNoise(sigma=(1, 30))]),
    "realistic": _realistic,
}
"""Preset name -> function ``scale -> Pipeline``."""


def preset_names() -> Tuple[str, ...]:
    """The names :func:`degrade` accepts as ``preset``."""
    return tuple(PRESETS)


def degrade(hr, scale: int, preset: Union[str, Step] = "bicubic", seed: Seed = None):
    """Make the low-resolution input of a super-resolution pair from its ground truth ``hr``.

    ``hr`` is cropped so that its sides divide by ``scale`` (:func:`crop_to_multiple` gives the matching HR); the
    result is exactly ``(H // scale, W // scale)``, clamped to [0, 1]. ``preset``: a name from :func:`preset_names` or a
    :class:`Pipeline` whose ``Downscale`` steps multiply to ``scale``. ``seed`` (int, ``numpy.random.Generator``
    or None) fixes every random choice.
    """
    scale = check_int(scale, "degrade: scale", minimum=1)
    if isinstance(preset, str):
        pipeline = PRESETS[check_choice(preset, preset_names(), "degrade: preset")](scale)
    elif isinstance(preset, Step):
        pipeline = preset if isinstance(preset, Pipeline) else Pipeline([preset])
    else:
        raise InputError(f"degrade: preset must be one of {', '.join(preset_names())} or a Pipeline, "
                         f"got {type(preset).__name__}")
    if pipeline.total_scale != scale:
        raise InputError(f"degrade: the pipeline downscales by {pipeline.total_scale} in all, but scale={scale}; "
                         f"include Downscale steps whose factors multiply to {scale}")
    x, back = _as_batch(hr, "degrade: hr")
    return back(pipeline._degrade(_crop(x, scale, "degrade"), seed))
