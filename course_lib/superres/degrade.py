"""The degradation pipeline: how low-resolution inputs are made from ground truth.

A super-resolution network learns to invert whatever made its LR inputs, so
this module is where the "what problem are we solving" decision lives.

Read top to bottom:

1. :func:`resize`, :func:`crop_to_multiple`, :func:`downscale` -- the
   resampling kernels ``nearest | bilinear | bicubic | area | lanczos``.
   ``bicubic`` with ``antialias=True`` is the field's benchmark protocol
   (MATLAB ``imresize``; PIL ``Image.BICUBIC`` matches it to about 55 dB).
2. :func:`gaussian_kernel`, :func:`motion_blur_kernel` -- blur kernels.
3. The steps, small dataclasses whose parameters are a fixed value or a
   ``(low, high)`` range sampled on every call: :class:`Downscale`,
   :class:`GaussianBlur`, :class:`MotionBlur`, :class:`GaussianNoise`,
   :class:`PoissonNoise`, :class:`JPEG`.
4. :class:`Pipeline` -- steps in order, or in random order (BSRGAN), with a
   seed, and :meth:`Pipeline.describe` for what was actually applied.
5. :func:`degrade`, :data:`PRESETS`, :func:`preset_names` -- one call from HR
   to LR: ``"bicubic"``, ``"gaussian"``, ``"jpeg30"``, ``"jpeg"``,
   ``"noisy"``, ``"realistic"``.

Images are float tensors ``(C, H, W)`` or ``(N, C, H, W)`` in ``[0, 1]``;
every public function also accepts a PIL image and then returns one.

Example::

    >>> import torch
    >>> hr = torch.rand(3, 65, 50)
    >>> degrade(hr, scale=4).shape               # cropped to 64 x 48 first
    torch.Size([3, 16, 12])
    >>> pipe = PRESETS["realistic"](4)
    >>> lr = pipe(hr[:, :64, :48], seed=0)
    >>> lr.shape
    torch.Size([3, 16, 12])
    >>> len(pipe.describe())                     # one line per step
    5

How close are we to PIL (measured on ``skimage.data.astronaut``, 8-bit
output, x2/x3/x4): ``bicubic`` never differs from ``Image.BICUBIC`` by more
than 1/255 and is 56.9 / 57.8 / 58.4 dB from it; on float data it equals
PIL's float (mode ``"F"``) resize to about 1e-5. ``lanczos`` and ``bilinear``
likewise never differ from PIL by more than 1/255 (56.5..58.7 dB), nor do
the upscaling kernels in :mod:`course_lib.superres.interpolate`. The last
1/255 is rounding: PIL works in fixed point, we in floating point.
"""
from __future__ import annotations

import io
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..core.images import check_image_tensor, to_pil, to_tensor

__all__ = [
    "KERNELS", "resize", "crop_to_multiple", "downscale",
    "gaussian_kernel", "motion_blur_kernel",
    "Step", "Downscale", "GaussianBlur", "MotionBlur", "GaussianNoise", "PoissonNoise", "JPEG",
    "Pipeline", "degrade", "PRESETS", "preset_names",
]

KERNELS = ("nearest", "bilinear", "bicubic", "area", "lanczos")

Range = Union[float, Tuple[float, float]]
Seed = Union[None, int, np.random.Generator]


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------

def _as_batch(img, name: str, fn: str):
    """Image -> ``(N, C, H, W)`` tensor and a function that gives the result back
    in the caller's form (PIL -> PIL, ``(C, H, W)`` -> ``(C, H, W)``)."""
    if isinstance(img, Image.Image):
        x = to_tensor(img)[None]
        return x, lambda y: to_pil(y[0])
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor (C, H, W) / (N, C, H, W) or a PIL image, "
                        f"got {type(img).__name__}")
    check_image_tensor(img, f"{fn}: {name}")
    if img.numel():
        lo, hi = float(img.min()), float(img.max())
        # A little slack: network outputs and float round-off stray slightly outside.
        if lo < -1e-3 or hi > 1 + 1e-3 or math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{fn}: {name} must have values in [0, 1], got range [{lo:.3g}, {hi:.3g}] "
                             f"(divide 8-bit data by 255)")
    if img.dim() == 3:
        return img[None], lambda y: y[0]
    return img, lambda y: y


def _check_scale(scale, fn: str, name: str = "scale") -> int:
    # bool is an int in Python; scale=True is a bug, not a factor of 1.
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"{fn}: {name} must be an integer >= 1, got {scale!r}")
    return int(scale)


def _check_choice(value, choices, fn: str, name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{fn}: unknown {name} {value!r}; valid names are {', '.join(choices)}")
    return value


# ---------------------------------------------------------------------------
# 1. Resampling
# ---------------------------------------------------------------------------
# PIL's filters, as in Pillow's libImaging/Resample.c. Each is (function, support).

def _triangle(x):
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _cubic(x, a=-0.5):
    # Keys' cubic convolution with a = -0.5 (PIL and MATLAB); torch's and
    # OpenCV's non-antialiased bicubic use a = -0.75 instead.
    x = np.abs(x)
    return np.where(x < 1.0, ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
                    np.where(x < 2.0, (((x - 5.0) * x + 8.0) * x - 4.0) * a, 0.0))


def _lanczos3(x):
    # sinc(x) sinc(x / 3) on |x| < 3; np.sinc is the normalised sin(pi x) / (pi x).
    return np.where(np.abs(x) < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)


_PIL_FILTERS = {"bilinear": (_triangle, 1.0), "bicubic": (_cubic, 2.0), "lanczos": (_lanczos3, 3.0)}


def _resample_weights(in_size: int, out_size: int, kernel: str, antialias: bool):
    """Tap indices and weights ``(out_size, K)`` of a 1-D resampling, as PIL computes them.

    Output pixel ``i`` has its centre at ``(i + 0.5) * in/out`` in input
    coordinates. When shrinking with ``antialias`` the kernel is stretched by
    the factor, so it averages over the input pixels each output pixel covers
    (a low-pass filter) instead of point-sampling and aliasing. Weights are
    renormalised where the kernel hangs over the border (no padding).
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


def _resample_axis(x: torch.Tensor, out_size: int, dim: int, kernel: str, antialias: bool) -> torch.Tensor:
    """Resample ``x`` along ``dim`` (-1 or -2) with PIL's kernel, one tap at a time.

    A loop over the K taps (``index_select`` + multiply-add) needs memory for
    one output only; a dense ``(out, in)`` matrix would need 266 MB for a
    DIV2K row upscaled x4.
    """
    idx, w = _resample_weights(x.shape[dim], out_size, kernel, antialias)
    idx = torch.from_numpy(idx).to(x.device)
    w = torch.from_numpy(w).to(device=x.device, dtype=x.dtype)
    shape = (-1, 1) if dim == -2 else (-1,)
    out = None
    for k in range(idx.shape[1]):
        term = x.index_select(dim, idx[:, k]) * w[:, k].reshape(shape)
        out = term if out is None else out + term
    return out


def resize(img, size: Tuple[int, int], kernel: str = "bicubic", antialias: bool = True):
    """Resize an image to ``size = (height, width)``, PIL-compatibly.

    Kernels:

    * ``"nearest"`` -- the input pixel whose centre is nearest; equals PIL
      ``NEAREST`` (torch ``"nearest-exact"``; plain ``"nearest"`` is off by half a pixel).
    * ``"bilinear"``, ``"bicubic"`` -- ``F.interpolate(..., antialias=True)``,
      which uses PIL's kernels (bicubic ``a = -0.5``) and equals PIL's float
      resize to about 1e-5. With ``antialias=False`` the kernel is not widened when
      shrinking, which aliases: that is ``F.interpolate``'s and OpenCV's default
      (and their bicubic uses ``a = -0.75``), *not* the benchmark protocol.
    * ``"area"`` -- the mean over the input pixels each output pixel covers
      (``F.interpolate(mode="area")``); for an integer factor, the block mean.
    * ``"lanczos"`` -- Lanczos-3 windowed sinc with PIL's ``LANCZOS`` weights,
      computed here (torch has no Lanczos).

    Like PIL, the two axes are resampled one after the other (width first) and
    the intermediate image is clipped to [0, 1]: PIL keeps it as 8-bit, which
    clips the overshoot of the cubic and Lanczos kernels at sharp edges.
    Without this clip a few edge pixels of astronaut differ from PIL by up to
    6/255; with it, none differs by more than 1/255.

    Args:
        img: tensor ``(C, H, W)`` or ``(N, C, H, W)`` in [0, 1], or a PIL image.
        size: output ``(height, width)``, positive ints.
        kernel: one of :data:`KERNELS`.
        antialias: widen the kernel when shrinking (ignored by nearest and area).

    Returns:
        The resized image in [0, 1], same type and batch form as ``img``.

    Example:
        >>> resize(torch.rand(3, 32, 48), (16, 24)).shape
        torch.Size([3, 16, 24])
    """
    x, back = _as_batch(img, "img", "resize")
    _check_choice(kernel, KERNELS, "resize", "kernel")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"resize: size must be (height, width) with positive ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    if kernel == "nearest":
        y = F.interpolate(x, size=(h, w), mode="nearest-exact")
    elif kernel == "area":
        y = F.interpolate(x, size=(h, w), mode="area")
    elif kernel in ("bilinear", "bicubic") and not antialias:
        y = F.interpolate(x, size=(h, w), mode=kernel, align_corners=False, antialias=False)
    else:
        y = x
        if w != x.shape[-1]:
            y = _resize_width(y, w, kernel, antialias).clamp(0, 1)
        if h != x.shape[-2]:
            y = _resize_height(y, h, kernel, antialias)
    return back(y.clamp(0, 1))


def _resize_width(x, w, kernel, antialias):
    if kernel == "lanczos":
        return _resample_axis(x, w, -1, kernel, antialias)
    return F.interpolate(x, size=(x.shape[-2], w), mode=kernel, align_corners=False, antialias=True)


def _resize_height(x, h, kernel, antialias):
    if kernel == "lanczos":
        return _resample_axis(x, h, -2, kernel, antialias)
    return F.interpolate(x, size=(h, x.shape[-1]), mode=kernel, align_corners=False, antialias=True)


def crop_to_multiple(img, scale: int):
    """Crop the bottom and right edges so that height and width divide by ``scale``.

    The benchmark protocol ("modcrop"): the LR image is then exactly
    ``(H // scale, W // scale)`` and each LR pixel covers ``scale x scale``
    HR pixels, so HR and upscaled LR align pixel for pixel.

    Example:
        >>> crop_to_multiple(torch.rand(3, 65, 50), 4).shape
        torch.Size([3, 64, 48])
    """
    scale = _check_scale(scale, "crop_to_multiple")
    x, back = _as_batch(img, "img", "crop_to_multiple")
    h, w = x.shape[-2:]
    if h < scale or w < scale:
        raise ValueError(f"crop_to_multiple: the image of {h}x{w} pixels is smaller than scale={scale}")
    return back(x[..., : h - h % scale, : w - w % scale])


def downscale(img, scale: int, kernel: str = "bicubic", antialias: bool = True):
    """Crop to a multiple of ``scale``, then shrink by ``scale``: ``(H, W) -> (H // s, W // s)``.

    ``kernel="bicubic"`` (the default) with ``antialias=True`` is the
    benchmark protocol and matches PIL ``Image.BICUBIC``; ``"area"`` is the
    mean of each ``s x s`` block; ``"nearest"`` keeps one pixel per block
    (index ``s // 2``, as PIL). See :func:`resize` for all kernels.

    Example:
        >>> downscale(torch.rand(1, 3, 97, 64), 3).shape
        torch.Size([1, 3, 32, 21])
    """
    scale = _check_scale(scale, "downscale")
    _check_choice(kernel, KERNELS, "downscale", "kernel")
    x, back = _as_batch(img, "img", "downscale")
    x = crop_to_multiple(x, scale)
    h, w = x.shape[-2:]
    return back(resize(x, (h // scale, w // scale), kernel=kernel, antialias=antialias))


# ---------------------------------------------------------------------------
# 2. Blur kernels and filtering
# ---------------------------------------------------------------------------
# Angles are in degrees, counter-clockwise as seen on screen (rows go down).

def _direction(angle_deg: float):
    t = math.radians(angle_deg)
    return math.cos(t), -math.sin(t)  # (x, row) components; minus because rows point down


def gaussian_kernel(sigma: float, sigma_y: Optional[float] = None, angle: float = 0.0,
                    truncate: float = 3.0, dtype=torch.float32) -> torch.Tensor:
    """A normalised 2-D Gaussian kernel ``(2r+1, 2r+1)``, ``r = ceil(truncate * max(sigma, sigma_y))``.

    ``k(d) ∝ exp(-d^T Σ^{-1} d / 2)`` with covariance
    ``Σ = sigma^2 u u^T + sigma_y^2 v v^T``, where ``u`` points at ``angle``
    degrees (counter-clockwise on screen) and ``v`` is perpendicular to it.
    ``sigma_y=None`` gives the isotropic kernel. The sum is 1, so flat regions
    keep their brightness. ``d = (x, row)`` offsets from the centre.

    Example:
        >>> k = gaussian_kernel(2.0, sigma_y=0.5, angle=30)
        >>> k.shape, round(float(k.sum()), 6)
        (torch.Size([13, 13]), 1.0)
    """
    sx = _check_number(sigma, "gaussian_kernel", "sigma", lambda v: v > 0, "> 0")
    sy = sx if sigma_y is None else _check_number(sigma_y, "gaussian_kernel", "sigma_y", lambda v: v > 0, "> 0")
    _check_number(angle, "gaussian_kernel", "angle", lambda v: True, "a number")
    _check_number(truncate, "gaussian_kernel", "truncate", lambda v: v > 0, "> 0")
    r = int(math.ceil(truncate * max(sx, sy)))
    ux, uy = _direction(angle)
    rows, cols = torch.meshgrid(torch.arange(-r, r + 1, dtype=torch.float64),
                                torch.arange(-r, r + 1, dtype=torch.float64), indexing="ij")
    du = cols * ux + rows * uy         # coordinate along u
    dv = -cols * uy + rows * ux        # along v, perpendicular to u
    k = torch.exp(-0.5 * ((du / sx) ** 2 + (dv / sy) ** 2))
    return (k / k.sum()).to(dtype)


def motion_blur_kernel(length: float, angle: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    """A normalised line kernel: a camera (or object) moving ``length`` pixels at ``angle`` degrees.

    Each kernel pixel gets weight ``max(0, 1 - distance to the segment)``
    (an anti-aliased line through the centre, ``length`` pixels long), then
    the weights are divided by their sum. ``angle=0`` is horizontal; with an
    integer length it is exactly a row of ``length`` equal weights.

    Example:
        >>> motion_blur_kernel(5, 0)[2]
        tensor([0.2000, 0.2000, 0.2000, 0.2000, 0.2000])
    """
    length = _check_number(length, "motion_blur_kernel", "length", lambda v: v >= 1, ">= 1")
    _check_number(angle, "motion_blur_kernel", "angle", lambda v: True, "a number")
    half = (length - 1) / 2
    r = int(math.ceil(half)) + 1
    ux, uy = _direction(angle)
    rows, cols = torch.meshgrid(torch.arange(-r, r + 1, dtype=torch.float64),
                                torch.arange(-r, r + 1, dtype=torch.float64), indexing="ij")
    t = (cols * ux + rows * uy).clamp(-half, half)   # nearest point of the segment
    dist = torch.sqrt((cols - t * ux) ** 2 + (rows - t * uy) ** 2)
    k = (1 - dist).clamp(min=0)
    # Drop all-zero outer rings so that the convolution does no useless work.
    nz = torch.nonzero(k > 0)
    r_used = int((nz - r).abs().max())
    k = k[r - r_used: r + r_used + 1, r - r_used: r + r_used + 1]
    return (k / k.sum()).to(dtype)


def _symmetric_index(n: int, pad: int, device) -> torch.Tensor:
    # Half-sample symmetric reflection (d c b a | a b c d | d c b a), scipy's
    # mode="reflect", computed by index so that it works for any pad, even one
    # wider than the image (torch's F.pad(mode="reflect") requires pad < n).
    i = torch.arange(-pad, n + pad, device=device).remainder(2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _filter2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of ``x (N, C, H, W)`` with an odd 2-D ``kernel``; same-size output."""
    kh, kw = kernel.shape
    n, c, h, w = x.shape
    xp = x.index_select(-2, _symmetric_index(h, kh // 2, x.device))
    xp = xp.index_select(-1, _symmetric_index(w, kw // 2, x.device))
    # conv2d is a correlation; flipping makes it a convolution (the same for
    # the symmetric kernels here, but right for any kernel a student passes).
    weight = kernel.flip(-1, -2).to(x.dtype).to(x.device)[None, None]
    y = F.conv2d(xp.reshape(n * c, 1, *xp.shape[-2:]), weight)
    return y.reshape(n, c, h, w)


# ---------------------------------------------------------------------------
# 3. Steps
# ---------------------------------------------------------------------------

def _check_number(value, fn, name, ok, expect):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"{fn}: {name} must be a number {expect}, got {value!r}")
    return float(value)


def _check_range(value, fn, name, ok, expect, integer=False):
    """A fixed value or a ``(low, high)`` range with ``low <= high``, every end satisfying ``ok``."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{fn}: {name} must be {kind} {expect} or a (low, high) pair, got {value!r}")
        lo, hi = value
        for v in (lo, hi):
            _check_param_value(v, fn, name, ok, expect, integer, value)
        if lo > hi:
            raise ValueError(f"{fn}: {name} range must have low <= high, got {value!r}")
        return (lo, hi)
    _check_param_value(value, fn, name, ok, expect, integer, value)
    return value


def _check_param_value(v, fn, name, ok, expect, integer, shown):
    kind = "an integer" if integer else "a number"
    bad_type = isinstance(v, bool) or not isinstance(v, numbers.Integral if integer else numbers.Real)
    if bad_type or not math.isfinite(v) or not ok(v):
        raise ValueError(f"{fn}: {name} must be {kind} {expect} or a (low, high) pair of them, got {shown!r}")


def _sample(value, rng: np.random.Generator, integer=False):
    """Draw from a ``(low, high)`` range (uniform; integers inclusive), or return the fixed value."""
    if isinstance(value, tuple):
        lo, hi = value
        return int(rng.integers(lo, hi + 1)) if integer else float(rng.uniform(lo, hi))
    return int(value) if integer else float(value)


def _torch_generator(rng: np.random.Generator, device) -> torch.Generator:
    # Noise is drawn by torch on the image's device (fast on a GPU), seeded from
    # the numpy stream so that one seed still fixes everything.
    g = torch.Generator(device=device)
    g.manual_seed(int(rng.integers(0, 2 ** 63 - 1)))
    return g


def _check_p(p, fn):
    return _check_number(p, fn, "p", lambda v: 0 <= v <= 1, "in [0, 1] (the probability the step is applied)")


class Step:
    """Base of the degradation steps.

    A step is used in two stages, so that :class:`Pipeline` can report what it
    drew: ``params = step.sample(rng)`` draws this call's parameters from the
    ranges, ``step.apply(x, params, rng)`` applies them to ``x (N, C, H, W)``,
    ``step.describe(params)`` says it in words. Parameters are drawn once per
    call and shared by a batch; noise differs per image. ``p`` (where a step
    has it) is the probability that the step is applied at all.

    Calling a step on an image runs it alone: ``GaussianBlur(2.0)(img, seed=0)``.
    """

    p: float = 1.0

    def sample(self, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: dict, rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError

    def describe(self, params: dict) -> str:
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        return f"{type(self).__name__}({inner})"

    def __call__(self, img, seed: Seed = None):
        return Pipeline([self])(img, seed=seed)


def _fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else repr(v) if isinstance(v, str) else str(v)


@dataclass
class Downscale(Step):
    """Shrink by an integer ``scale`` with ``kernel`` (see :func:`downscale`).

    ``kernel`` may be a list of names; one is chosen at random on each call
    (Real-ESRGAN draws among area, bilinear and bicubic so that the network
    does not overfit to one kernel). Always applied (no ``p``): the LR size
    must not depend on chance.

    Example:
        >>> Downscale(2, ["area", "bicubic"])(torch.rand(3, 8, 8), seed=0).shape
        torch.Size([3, 4, 4])
    """
    scale: int = 4
    kernel: Union[str, Sequence[str]] = "bicubic"
    antialias: bool = True

    def __post_init__(self):
        self.scale = _check_scale(self.scale, "Downscale")
        names = [self.kernel] if isinstance(self.kernel, str) else list(self.kernel) \
            if isinstance(self.kernel, (list, tuple)) else [self.kernel]
        if not names:
            raise ValueError(f"Downscale: kernel list is empty; valid names are {', '.join(KERNELS)}")
        for k in names:
            _check_choice(k, KERNELS, "Downscale", "kernel")

    @property
    def p(self):
        return 1.0

    def sample(self, rng):
        if isinstance(self.kernel, str):
            return {"scale": self.scale, "kernel": self.kernel}
        return {"scale": self.scale, "kernel": self.kernel[int(rng.integers(len(self.kernel)))]}

    def apply(self, x, params, rng):
        return downscale(x, params["scale"], params["kernel"], self.antialias)

    def describe(self, params):
        return f"Downscale(x{params['scale']}, kernel={params['kernel']})"


@dataclass
class GaussianBlur(Step):
    """Gaussian blur (lens defocus, optics): isotropic or anisotropic and rotated.

    ``sigma`` (pixels) is the spread along ``angle`` (degrees,
    counter-clockwise), ``sigma_y`` across it; ``sigma_y=None`` is isotropic.
    Each may be a ``(low, high)`` range. With ``sigma_y`` given,
    ``isotropic_prob`` is the chance of drawing an isotropic kernel instead
    (Real-ESRGAN mixes both). Kernel: :func:`gaussian_kernel` (radius
    ``ceil(3 max(sigma, sigma_y))``); borders are reflected (scipy's
    ``mode="reflect"``).

    Example:
        >>> blur = GaussianBlur(sigma=(0.2, 3.0), sigma_y=(0.2, 3.0), angle=(-90, 90))
        >>> blur(torch.rand(3, 32, 32), seed=1).shape
        torch.Size([3, 32, 32])
    """
    sigma: Range = 1.0
    sigma_y: Optional[Range] = None
    angle: Range = 0.0
    isotropic_prob: float = 0.0
    p: float = 1.0

    def __post_init__(self):
        fn = "GaussianBlur"
        self.sigma = _check_range(self.sigma, fn, "sigma", lambda v: v > 0, "> 0")
        if self.sigma_y is not None:
            self.sigma_y = _check_range(self.sigma_y, fn, "sigma_y", lambda v: v > 0, "> 0")
        self.angle = _check_range(self.angle, fn, "angle", lambda v: True, "(degrees)")
        self.isotropic_prob = _check_number(self.isotropic_prob, fn, "isotropic_prob",
                                            lambda v: 0 <= v <= 1, "in [0, 1]")
        self.p = _check_p(self.p, fn)

    def sample(self, rng):
        sigma = _sample(self.sigma, rng)
        if self.sigma_y is None or rng.random() < self.isotropic_prob:
            return {"sigma": sigma}
        return {"sigma": sigma, "sigma_y": _sample(self.sigma_y, rng), "angle": _sample(self.angle, rng)}

    def apply(self, x, params, rng):
        if "sigma_y" not in params:
            # Isotropic: separable, two 1-D passes instead of one 2-D kernel.
            g = gaussian_kernel(params["sigma"], dtype=torch.float64).sum(0)  # its 1-D factor
            return _filter2d(_filter2d(x, g[None, :]), g[:, None]).clamp(0, 1)
        k = gaussian_kernel(params["sigma"], params["sigma_y"], params["angle"], dtype=torch.float64)
        return _filter2d(x, k).clamp(0, 1)


@dataclass
class MotionBlur(Step):
    """Linear motion blur: convolution with :func:`motion_blur_kernel` (``length`` pixels at ``angle`` degrees).

    Example:
        >>> MotionBlur(length=(3, 15), angle=(0, 180))(torch.rand(3, 32, 32), seed=0).shape
        torch.Size([3, 32, 32])
    """
    length: Range = 5.0
    angle: Range = 0.0
    p: float = 1.0

    def __post_init__(self):
        self.length = _check_range(self.length, "MotionBlur", "length", lambda v: v >= 1, ">= 1 (pixels)")
        self.angle = _check_range(self.angle, "MotionBlur", "angle", lambda v: True, "(degrees)")
        self.p = _check_p(self.p, "MotionBlur")

    def sample(self, rng):
        return {"length": _sample(self.length, rng), "angle": _sample(self.angle, rng)}

    def apply(self, x, params, rng):
        return _filter2d(x, motion_blur_kernel(params["length"], params["angle"], dtype=torch.float64)).clamp(0, 1)


@dataclass
class GaussianNoise(Step):
    """Additive white Gaussian noise (sensor read noise): ``y = clip(x + n, 0, 1)``, ``n ~ N(0, (sigma/255)^2)``.

    ``sigma`` is in units of 1/255 like Real-ESRGAN (which draws 1..30).
    ``gray`` makes the noise the same in every channel (luminance noise);
    a number in [0, 1] is the probability of gray noise on each call
    (Real-ESRGAN: 0.4). Clipping to [0, 1] as a camera does lowers the
    measured spread near black and white.

    Example:
        >>> GaussianNoise(sigma=(1, 30), gray=0.4)(torch.full((3, 8, 8), 0.5), seed=0).shape
        torch.Size([3, 8, 8])
    """
    sigma: Range = 10.0
    gray: Union[bool, float] = False
    p: float = 1.0

    def __post_init__(self):
        self.sigma = _check_range(self.sigma, "GaussianNoise", "sigma", lambda v: 0 <= v <= 255,
                                  "in [0, 255] (units of 1/255)")
        if not isinstance(self.gray, bool):
            self.gray = _check_number(self.gray, "GaussianNoise", "gray", lambda v: 0 <= v <= 1,
                                      "in [0, 1] or a bool")
        self.p = _check_p(self.p, "GaussianNoise")

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

    ``scale`` is the expected photon count of a white pixel; the noise has
    mean 0 and variance ``x / scale``, so it grows with brightness and
    shrinks as more light is collected (``scale`` larger).

    Example:
        >>> y = PoissonNoise(scale=100)(torch.full((1, 64, 64), 0.5), seed=0)
        >>> abs(float(y.mean()) - 0.5) < 0.01
        True
    """
    scale: Range = 100.0
    p: float = 1.0

    def __post_init__(self):
        self.scale = _check_range(self.scale, "PoissonNoise", "scale", lambda v: v > 0,
                                  "> 0 (photons at white)")
        self.p = _check_p(self.p, "PoissonNoise")

    def sample(self, rng):
        return {"scale": _sample(self.scale, rng)}

    def apply(self, x, params, rng):
        g = _torch_generator(rng, x.device)
        s = params["scale"]
        return (torch.poisson(x.clamp(0, 1) * s, generator=g) / s).clamp(0, 1)


@dataclass
class JPEG(Step):
    """JPEG compression artefacts: encode and decode with PIL at ``quality`` (1..100).

    Each image is rounded to 8 bits, saved as JPEG (PIL's defaults: 4:2:0
    chroma subsampling) and read back, exactly as a JPEG file on disk would
    be. Low quality shows 8x8 blocks and ringing. 1 or 3 channels.

    Example:
        >>> JPEG(quality=(30, 95))(torch.rand(3, 16, 16), seed=0).shape
        torch.Size([3, 16, 16])
    """
    quality: Union[int, Tuple[int, int]] = 75
    p: float = 1.0

    def __post_init__(self):
        self.quality = _check_range(self.quality, "JPEG", "quality", lambda v: 1 <= v <= 100,
                                    "in 1..100", integer=True)
        self.p = _check_p(self.p, "JPEG")

    def sample(self, rng):
        return {"quality": _sample(self.quality, rng, integer=True)}

    def apply(self, x, params, rng):
        if x.shape[1] not in (1, 3):
            raise ValueError(f"JPEG: images must have 1 or 3 channels, got shape {tuple(x.shape)}")
        out = []
        for img in x:
            buf = io.BytesIO()
            to_pil(img).save(buf, format="JPEG", quality=params["quality"])
            buf.seek(0)
            with Image.open(buf) as decoded:
                out.append(to_tensor(decoded.convert("L" if x.shape[1] == 1 else "RGB")))
        return torch.stack(out).to(device=x.device, dtype=x.dtype)


# ---------------------------------------------------------------------------
# 4. Pipeline
# ---------------------------------------------------------------------------

@dataclass
class Pipeline(Step):
    """A sequence of steps applied in order, or in a random order per call (``shuffle=True``).

    ``pipeline(img, seed)`` is deterministic for an int ``seed`` (a
    ``numpy.random.Generator`` is used and advanced; ``None`` draws fresh
    entropy). The draws per call, in order: the permutation (if shuffled),
    then for each step whether it is applied (``p``), its parameters, and its
    noise. A pipeline can itself be a step of another pipeline, e.g. a
    shuffled block followed by a final JPEG.

    :meth:`describe` lists what the last call applied with the sampled values
    (before any call: the configured steps).

    Random order follows BSRGAN (Zhang et al., "Designing a Practical
    Degradation Model for Deep Blind Image Super-Resolution", ICCV 2021):
    blur before or after the downscale, noise before or after blur, are all
    plausible real histories of a photo.

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
            raise TypeError(f"Pipeline: steps must be a list of steps, got {type(self.steps).__name__}")
        for i, s in enumerate(self.steps):
            if not isinstance(s, Step):
                raise TypeError(f"Pipeline: steps[{i}] must be a step (Downscale, GaussianBlur, MotionBlur, "
                                f"GaussianNoise, PoissonNoise, JPEG or Pipeline), got {type(s).__name__}")
        if not isinstance(self.shuffle, bool):
            raise TypeError(f"Pipeline: shuffle must be a bool, got {self.shuffle!r}")
        self.steps = list(self.steps)
        self._history: Optional[List[str]] = None

    @property
    def p(self):
        return 1.0

    @property
    def total_scale(self) -> int:
        """The product of the ``Downscale`` factors: the LR is this many times smaller."""
        s = 1
        for step in self.steps:
            if isinstance(step, Downscale):
                s *= step.scale
            elif isinstance(step, Pipeline):
                s *= step.total_scale
        return s

    def _run(self, x, rng, log):
        order = rng.permutation(len(self.steps)) if self.shuffle else range(len(self.steps))
        for i in order:
            step = self.steps[int(i)]
            if isinstance(step, Pipeline):
                x = step._run(x, rng, log)
                continue
            # Always draw, so that p does not change which numbers later steps get.
            applied = rng.random() < step.p
            if not applied:
                log.append(f"{type(step).__name__}: skipped (p={step.p:g})")
                continue
            params = step.sample(rng)
            x = step.apply(x, params, rng)
            log.append(step.describe(params))
        return x

    def __call__(self, img, seed: Seed = None):
        x, back = _as_batch(img, "img", "Pipeline")
        try:
            rng = np.random.default_rng(seed)
        except (TypeError, ValueError):
            raise TypeError(f"Pipeline: seed must be None, an int or a numpy.random.Generator, "
                            f"got {seed!r}") from None
        s = self.total_scale
        if s > 1:
            # Crop once up front so that every Downscale divides exactly,
            # whatever the order the steps come in.
            x = crop_to_multiple(x, s)
        log: List[str] = []
        y = self._run(x, rng, log)
        self._history = log
        return back(y.clamp(0, 1))

    def describe(self, params: Optional[dict] = None) -> List[str]:
        """What the last call applied, one readable line per step (with the sampled values)."""
        if self._history is not None:
            return list(self._history)
        return [repr(s) for s in self.steps]

    def sample(self, rng):  # a nested pipeline is run by its parent's _run
        return {}

    def apply(self, x, params, rng):
        return self._run(x, rng, [])


# ---------------------------------------------------------------------------
# 5. Presets and degrade()
# ---------------------------------------------------------------------------

def _bicubic(scale):
    return Pipeline([Downscale(scale, "bicubic")])


def _gaussian(scale):
    # ESPCN's training data: Gaussian blur, then keep one pixel per block.
    # sigma = scale / 2 (the "BD" protocol of SRMD/RDN uses 1.6 at x3).
    return Pipeline([GaussianBlur(sigma=0.5 * scale), Downscale(scale, "nearest")])


def _jpeg30(scale):
    return Pipeline([Downscale(scale, "bicubic"), JPEG(30)])


def _jpeg(scale):
    return Pipeline([Downscale(scale, "bicubic"), JPEG((30, 95))])


def _noisy(scale):
    return Pipeline([Downscale(scale, "bicubic"), GaussianNoise(sigma=(1, 30))])


def _realistic(scale):
    # Real-ESRGAN (Wang et al. 2021) / BSRGAN (Zhang et al. 2021) style.
    # Blur, resize and noise in random order; JPEG last, as in both papers:
    # a photo is compressed when it is saved, after everything else.
    # Gaussian noise (p=0.6) and Poisson noise (p=0.4) are drawn
    # independently (Real-ESRGAN picks one of the two with these odds).
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
    "bicubic": _bicubic,        # the benchmark protocol (crop + PIL-compatible bicubic)
    "gaussian": _gaussian,      # ESPCN paper: Gaussian blur, then subsample
    "jpeg30": _jpeg30,          # bicubic, then JPEG at quality 30
    "jpeg": _jpeg,              # bicubic, then JPEG at quality 30..95
    "noisy": _noisy,            # bicubic, then Gaussian noise sigma 1..30 (/255)
    "realistic": _realistic,    # Real-ESRGAN / BSRGAN-style random degradations
}
"""Preset name -> function ``scale -> Pipeline``."""


def preset_names() -> Tuple[str, ...]:
    """The names :func:`degrade` accepts as ``preset``."""
    return tuple(PRESETS)


def degrade(hr, scale: int, preset: Union[str, Step] = "bicubic", seed: Seed = None):
    """Make the low-resolution input of a super-resolution pair from its ground truth.

    ``hr`` is cropped so that its sides divide by ``scale`` (use
    :func:`crop_to_multiple` to get the matching HR); the result is exactly
    ``(H // scale, W // scale)``, clamped to [0, 1].

    Args:
        hr: ``(C, H, W)`` or ``(N, C, H, W)`` in [0, 1], or a PIL image (then a PIL image is returned).
        scale: integer factor >= 1.
        preset: a name from :func:`preset_names` or a :class:`Pipeline` whose
            ``Downscale`` steps multiply to ``scale``.
        seed: int, ``numpy.random.Generator`` or None; fixes every random choice.

    Example:
        >>> degrade(torch.rand(3, 30, 31), 3, "jpeg30").shape
        torch.Size([3, 10, 10])
    """
    scale = _check_scale(scale, "degrade")
    if isinstance(preset, str):
        _check_choice(preset, preset_names(), "degrade", "preset")
        pipeline = PRESETS[preset](scale)
    elif isinstance(preset, Pipeline):
        pipeline = preset
    elif isinstance(preset, Step):
        pipeline = Pipeline([preset])
    else:
        raise ValueError(f"degrade: preset must be one of {', '.join(preset_names())} or a Pipeline, "
                         f"got {type(preset).__name__}")
    if pipeline.total_scale != scale:
        raise ValueError(f"degrade: the pipeline downscales by {pipeline.total_scale} in all, but scale={scale}; "
                         f"include Downscale steps whose factors multiply to {scale}")
    x, back = _as_batch(hr, "hr", "degrade")
    h, w = x.shape[-2:]
    if h < scale or w < scale:
        raise ValueError(f"degrade: hr of {h}x{w} pixels is smaller than scale={scale}")
    x = crop_to_multiple(x, scale)
    lr = pipeline(x, seed=seed)
    expected = (x.shape[-2] // scale, x.shape[-1] // scale)
    if tuple(lr.shape[-2:]) != expected:  # only a custom step that resizes could cause this
        raise RuntimeError(f"degrade: the pipeline produced {tuple(lr.shape[-2:])}, expected {expected}")
    return back(lr.clamp(0, 1))
