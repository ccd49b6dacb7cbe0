"""Portrait segmentation data: masks (:func:`load_mask`), paired folders (:class:`PortraitFolder`, skipping and
counting unreadable files; :func:`train_val_split`), joint augmentation (:class:`PortraitAugment`), synthetic
portraits and a rare-foreground task (:func:`synthetic_portraits`, :func:`imbalanced_blobs`), and EG1800
(:func:`shared_portraits`: a prepared copy at ``$COURSE_PORTRAITS``; :func:`eg1800`: the downloaded layout).

Example
-------
>>> data = synthetic_portraits(8, size=(96, 64), seed=0)
>>> image, mask = data[0]
>>> tuple(image.shape), tuple(mask.shape)
((3, 96, 64), (1, 96, 64))
"""
from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from tqdm.auto import tqdm

from ..core import datasets as _datasets
from ..core.checks import (InputError, check_choice, check_int, check_number, check_probability, check_size,
                           check_tensor, make_generator)
from ..core.filters import gaussian_blur
from ..core.images import IMAGE_EXTENSIONS, ImageTooLargeError, load_tensor
from ..core.images import open_image as _open_image

__all__ = [
    "load_mask", "PortraitFolder", "train_val_split", "PortraitAugment", "synthetic_portraits", "SyntheticPortraits",
    "imbalanced_blobs", "shared_portraits", "eg1800", "MaskSizeError", "MASK_EXTENSIONS", "ENV_VAR", "SHARED_PORTRAITS",
]

MASK_EXTENSIONS = IMAGE_EXTENSIONS + (".mat",)
#: Environment variable naming a prepared portrait folder (``images/`` + ``masks/``).
ENV_VAR = "COURSE_PORTRAITS"
#: Where the course's development machines keep EG1800's training split: ``shared/`` beside the
#: repository's folder (``<repo>/../shared/data/portraits_eg1800_train``).
SHARED_PORTRAITS = Path(__file__).resolve().parents[3] / "shared" / "data" / "portraits_eg1800_train"

PathLike = Union[str, os.PathLike]
Size = Union[int, Tuple[int, int]]


# =========================================================================== masks
def _mat_variables(path: Path) -> dict:
    """The variables of a MATLAB file (``scipy.io.loadmat``), or a ``ValueError`` naming the file."""
    import scipy.io  # scipy comes with scikit-image

    try:
        data = scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise ValueError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read: re-save it "
                         f"in MATLAB with save(..., '-v7') or read it with h5py") from None
    except Exception as exc:
        raise ValueError(f"{path} is not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from None
    return {k: v for k, v in data.items() if not k.startswith("__")}


def _read_mat(path: Path, mat_key: Optional[str]) -> np.ndarray:
    """The 2-D numeric array of a MATLAB file (the variable ``mat_key``, or the only one)."""
    variables = _mat_variables(path)

    def as_2d(v):
        if not isinstance(v, np.ndarray) or not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            return None
        v = v[..., 0] if v.ndim == 3 and v.shape[2] == 1 else v
        return v if v.ndim == 2 and min(v.shape) > 1 else None

    listing = ", ".join(f"{k}: {getattr(v, 'shape', '?')} {getattr(v, 'dtype', type(v).__name__)}"
                        for k, v in variables.items()) or "none"
    if mat_key is not None and mat_key not in variables:
        raise ValueError(f"{path} has no variable {mat_key!r} (variables: {listing})")
    found = {k: a for k in ([mat_key] if mat_key is not None else variables) if (a := as_2d(variables[k])) is not None}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise ValueError(f"{path} holds no 2-D numeric array that could be a mask"
                         + (f" in {mat_key!r}" if mat_key else "") + f" (variables: {listing})")
    raise ValueError(f"{path} holds several 2-D arrays ({listing}); pass mat_key= to choose the mask")


def _pil_array(img: Image.Image) -> Tuple[np.ndarray, bool]:
    """(array, is_palette) keeping what the mask means: indices, alpha, 16-bit values."""
    if img.mode == "P":
        return np.asarray(img), True
    if img.mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16), False
    if img.mode not in ("1", "L", "LA", "RGB", "RGBA", "I", "F"):
        img = img.convert("RGBA" if img.mode == "PA" else "RGB")  # PA, CMYK, YCbCr, ...
    return np.asarray(img), False


def _full_scale(arr: np.ndarray, hi) -> float:
    if arr.dtype in (np.uint8, np.uint16):
        return float(np.iinfo(arr.dtype).max)
    return 1.0 if hi <= 1 else 255.0 if hi <= 255 else 65535.0


def _binarize(arr: np.ndarray, name: str, threshold: float, foreground, palette: bool) -> tuple:
    """A label array -> ({0, 1} uint8 mask, warning text or None)."""
    if arr.ndim == 3 and arr.shape[2] in (1, 2, 4):
        alpha = arr[..., -1]
        if arr.shape[2] > 1 and alpha.min() != alpha.max():
            arr = alpha  # an alpha matte: transparency is the mask
        else:
            arr = arr[..., :3] if arr.shape[2] == 4 else arr[..., 0]  # opaque: the colour is the mask
    if arr.ndim == 3 and arr.shape[2] == 3:
        scale = _full_scale(arr, arr.max(initial=0))
        spread = arr.max(axis=2).astype(np.float32) - arr.min(axis=2)
        gray = np.count_nonzero(spread > 0.1 * scale) <= 0.001 * spread.size
        if foreground is not None and not gray:
            colours = np.atleast_2d(np.asarray(foreground, dtype=np.float64))
            if colours.ndim != 2 or colours.shape[1] != 3 or colours.shape[0] == 0:
                raise ValueError(f"{name} is a colour mask: foreground must be an (r, g, b) colour or a "
                                 f"list of colours, got {foreground!r}")
            # within a tolerance, so that JPEG-compressed colour labels still match
            distance = np.abs(arr.astype(np.float64)[:, :, None] - colours).max(axis=3)
            return (distance <= 0.25 * scale).any(axis=2).astype(np.uint8), None
        if not gray:
            raise ValueError(f"{name} is a colour (non-gray) RGB mask; pass foreground=(r, g, b) or a list of colours "
                             f"that mean foreground (LFW Part Labels: foreground=[(255, 0, 0), (0, 255, 0)] for hair "
                             f"and skin)")
        mean = arr.astype(np.float64).mean(axis=2)
        arr = np.round(mean).astype(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else mean
    if arr.ndim != 2 or min(arr.shape) == 0:
        raise ValueError(f"{name}: a mask must be a non-empty 2-D (H, W) array (or gray/RGB/RGBA), "
                         f"got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.uint8), None
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: a mask must be numeric or bool, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name}: the mask holds NaN or infinite values")
    if foreground is not None:
        values = np.asarray(foreground)
        if values.ndim > 1:
            raise ValueError(f"{name} is a single-channel mask: foreground must be a value or a list of "
                             f"values, got {foreground!r}")
        return np.isin(arr, values.ravel()).astype(np.uint8), None
    if palette:
        return (arr > 0).astype(np.uint8), None
    lo, hi = arr.min(), arr.max()
    if lo < 0:
        raise ValueError(f"{name}: a mask cannot hold negative values (min {lo})")
    nonzero = arr != 0
    between = int(np.count_nonzero(nonzero & (arr != hi)))
    if between == 0:  # two levels, 0 and one positive value (0/1, 0/255, 0/65535, 0/1.0)
        return nonzero.astype(np.uint8), None
    if np.issubdtype(arr.dtype, np.integer) and hi <= 16 and np.unique(arr).size <= 8:
        raise ValueError(f"{name} looks like a label map with values {np.unique(arr).tolist()}, not a binary "
                         f"mask; pass foreground= the value(s) that mean foreground (an Oxford-IIIT "
                         f"Pet trimap: foreground=1, or (1, 3) to count the border as pet)")
    scale = _full_scale(arr, hi)
    note = (f"{name} is not binary: {between} of {arr.size} pixels ({100.0 * between / arr.size:.2g}%) "
            f"are neither 0 nor {hi:g} (JPEG compression or a soft matte); thresholded at "
            f"{threshold:g} x {scale:g}")
    return (arr >= threshold * scale).astype(np.uint8), note


def _decode_mask(source, threshold: float, foreground, mat_key: Optional[str]) -> Tuple[np.ndarray, Optional[str]]:
    palette = False
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() == ".mat":
            if not path.is_file():
                raise FileNotFoundError(f"load_mask: mask file {path} does not exist")
            arr = _read_mat(path, mat_key)
        else:  # FileNotFoundError / ValueError / ImageTooLargeError naming the file
            img = _open_image(path)
            try:
                img = ImageOps.exif_transpose(img)  # the same orientation as load_image gives the photo
            except Exception:
                pass
            arr, palette = _pil_array(img)
    elif isinstance(source, Image.Image):
        arr, palette = _pil_array(source)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        arr = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else source
        if isinstance(source, torch.Tensor) and source.dim() == 3 and source.shape[0] == 1:
            arr = arr[0]
    else:
        raise TypeError(f"load_mask: source must be a path, a PIL image, a numpy array or a tensor, "
                        f"got {type(source).__name__}")
    name = str(source) if isinstance(source, (str, os.PathLike)) else f"the {type(source).__name__} mask"
    return _binarize(arr, name, threshold, foreground, palette)


def load_mask(source, *, threshold: float = 0.5, foreground=None, mat_key: Optional[str] = None) -> np.ndarray:
    """Read a segmentation mask as a ``uint8`` array ``(H, W)`` with values {0, 1} (1 = foreground).

    ``source``: a path (image file or MATLAB ``.mat``), a PIL image, a numpy array or a tensor
    ``(H, W)`` / ``(1, H, W)``. Decoding:

    * two levels, 0 and one positive value (0/255, 0/1, 0/65535 16-bit, 0/1.0): nonzero is foreground;
    * palette PNG: index > 0 is foreground, unless ``foreground`` lists the foreground indices;
    * RGB whose channels are equal (a gray mask saved as RGB, also after JPEG): as gray; a colour-coded
      label image needs ``foreground=(r, g, b)`` or a list of colours (matched within 25% of full scale);
    * RGBA / LA: the alpha channel when it varies (an alpha matte), else the colour;
    * ``.mat`` (``scipy.io.loadmat``): the single 2-D numeric array inside (or ``mat_key``);
    * ``foreground`` given for a single-channel mask: pixels equal to one of those values
      (an Oxford-IIIT Pet trimap: ``foreground=1``; 2 is background, 3 the unclassified border);
    * anything else with intermediate values (JPEG-compressed masks, soft mattes): pixels
      ``>= threshold x full scale`` (255, 65535 or 1.0) are foreground, with a warning that says how
      many pixels were neither 0 nor the maximum. A small-integer label map (e.g. values 1, 2, 3)
      is an error asking for ``foreground=`` instead; so are unreadable masks (``ValueError``, naming the file).

    >>> load_mask(np.array([[0, 255], [255, 0]], dtype=np.uint8)).tolist()
    [[0, 1], [1, 0]]
    """
    threshold = check_number(threshold, "load_mask: threshold", low=0, high=1, low_open=True)
    mask, note = _decode_mask(source, threshold, foreground, mat_key)
    if note:
        warnings.warn(f"load_mask: {note}", stacklevel=2)
    return mask


def _resize_pair(image: torch.Tensor, mask: torch.Tensor, size: Tuple[int, int]):
    """Image ``(3, H, W)`` bilinear with antialiasing; mask ``(1, H, W)`` by area, thresholded at 0.5."""
    if tuple(image.shape[-2:]) != tuple(size):
        image = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True,
                              align_corners=False)[0].clamp(0, 1)
    if tuple(mask.shape[-2:]) != tuple(size):
        mask = (F.interpolate(mask[None].float(), size=size, mode="area")[0] >= 0.5).float()
    return image, mask


# =========================================================================== augmentation
class PortraitAugment:
    """Joint augmentation of an image and its mask with ``torchvision.transforms.v2``, output exactly ``size``.

    The image travels as a ``tv_tensors.Image`` and the mask as a ``tv_tensors.Mask``, so every geometric step
    moves both alike (the mask with nearest-neighbour sampling: it stays {0, 1}); photometric steps touch the image:

    1. ``Resize(size)``: the input onto the output frame (the aspect ratio follows ``size``);
    2. ``RandomAffine``: a zoom by a factor in ``scale`` (> 1 zooms in), a rotation by up to ``rotate`` degrees
       and a shift by up to ``translate`` x the size; outside the input is 0 (black image, background mask);
    3. ``RandomHorizontalFlip(hflip)``;
    4. ``ColorJitter``: brightness, contrast and saturation factors in ``[1 - j, 1 + j]`` for
       ``jitter = (brightness, contrast, saturation)`` (or one ``j`` for all three);
    5. with probability ``blur_p``, :func:`~course_lib.core.filters.gaussian_blur` of sigma in ``blur_sigma`` px.

    Randomness: ``__call__(image, mask, generator=None)`` with a ``torch.Generator`` or an int seed is
    reproducible (the transforms draw from torch's generator seeded from it, inside ``torch.random.fork_rng``,
    which leaves the global state as it was); ``None`` draws from torch's global generator, which
    :func:`~course_lib.core.training.fit` seeds and resumes. The geometry is drawn first, so a seed gives the
    same geometry with or without jitter and blur.

    ``image (3, H, W)`` float in [0, 1], ``mask (1, H, W)`` or ``(H, W)`` in {0, 1} -> ``(image (3, h, w),
    mask (1, h, w))`` with ``(h, w) = size``.

    >>> aug = PortraitAugment((64, 48))
    >>> img, m = aug(torch.rand(3, 80, 60), torch.ones(1, 80, 60), generator=0)
    >>> tuple(img.shape), tuple(m.shape)
    ((3, 64, 48), (1, 64, 48))
    """

    def __init__(self, size: Size, scale: Tuple[float, float] = (0.75, 1.25), rotate: float = 10.0, hflip: float = 0.5,
                 translate: float = 0.1, jitter: Union[float, Tuple[float, float, float]] = (0.3, 0.3, 0.3),
                 blur_p: float = 0.2, blur_sigma: Tuple[float, float] = (0.4, 1.2)):
        self.size = check_size(size, "PortraitAugment: size")
        self.scale = _range(scale, "PortraitAugment: scale")
        self.rotate = check_number(rotate, "PortraitAugment: rotate (degrees)", low=0, high=180)
        self.hflip = check_probability(hflip, "PortraitAugment: hflip")
        self.translate = check_probability(translate, "PortraitAugment: translate (a fraction of the size)")
        jitter = (jitter,) * 3 if isinstance(jitter, (int, float)) else jitter
        if not isinstance(jitter, (tuple, list)) or len(jitter) != 3:
            raise InputError(f"PortraitAugment: jitter must be (brightness, contrast, saturation), got {jitter!r}")
        self.jitter = tuple(check_number(j, "PortraitAugment: jitter", low=0, high=1, high_open=True) for j in jitter)
        self.blur_p = check_probability(blur_p, "PortraitAugment: blur_p")
        self.blur_sigma = _range(blur_sigma, "PortraitAugment: blur_sigma")

        steps = [v2.Resize(self.size, antialias=True)]
        if self.scale != (1.0, 1.0) or self.rotate > 0 or self.translate > 0:
            steps.append(v2.RandomAffine(degrees=self.rotate, translate=(self.translate, self.translate),
                                         scale=self.scale, interpolation=v2.InterpolationMode.BILINEAR, fill=0))
        steps.append(v2.RandomHorizontalFlip(self.hflip))
        if any(self.jitter):
            steps.append(v2.ColorJitter(*self.jitter))
        self.transforms = v2.Compose(steps)

    def __repr__(self) -> str:
        return (f"PortraitAugment(size={self.size}, scale={self.scale}, rotate={self.rotate}, hflip={self.hflip}, "
                f"translate={self.translate}, jitter={self.jitter}, blur_p={self.blur_p})")

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, generator=None):
        check_tensor(image, "PortraitAugment: image", dims=3, channels=3, shape_hint="(3, H, W)", floating=True)
        mask = mask[None] if isinstance(mask, torch.Tensor) and mask.dim() == 2 else mask
        if not isinstance(mask, torch.Tensor) or mask.shape != (1, *image.shape[-2:]):
            raise InputError(f"PortraitAugment: mask must be (1, H, W) or (H, W) matching the image "
                             f"{tuple(image.shape)}, got {tuple(getattr(mask, 'shape', ())) or type(mask).__name__}")
        g = make_generator(generator, "PortraitAugment: generator")
        if g is None:
            return self._apply(image, mask)
        seed = int(torch.randint(0, 2 ** 62, (), generator=g))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._apply(image, mask)

    def _apply(self, image: torch.Tensor, mask: torch.Tensor):
        img, m = self.transforms(tv_tensors.Image(image.float()), tv_tensors.Mask(mask.float()))
        img, m = img.as_subclass(torch.Tensor).clamp(0, 1), m.as_subclass(torch.Tensor)
        if float(torch.rand(())) < self.blur_p:
            lo, hi = self.blur_sigma
            img = gaussian_blur(img, lo + (hi - lo) * float(torch.rand(()))).clamp(0, 1)
        return img.contiguous(), m.contiguous()


def _range(pair, name: str, fraction: bool = False) -> Tuple[float, float]:
    """``(lo, hi)`` with ``0 < lo <= hi``; a ``fraction``: one value means +- 0.02, and ``0 < lo < hi < 1``."""
    if fraction and isinstance(pair, (int, float)) and not isinstance(pair, bool):
        pair = (max(0.0, pair - 0.02), min(1.0, pair + 0.02))
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
            or not (0 < pair[0] < pair[1] < 1 if fraction else 0 < pair[0] <= pair[1])):
        raise InputError(f"{name} must be (lo, hi) with " + ("0 < lo < hi < 1 (or one fraction)" if fraction
                                                            else "0 < lo <= hi") + f", got {pair!r}")
    return float(pair[0]), float(pair[1])


# =========================================================================== paired folders
class MaskSizeError(ValueError):
    """A mask whose size differs from its image's (a data error: fix it, or ``resize_masks=True``)."""


def _list_files(folder: Path, extensions: Sequence[str]) -> list:
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and p.suffix.lower() in extensions and p.is_file())


def _image_size(path: Path) -> Tuple[int, int]:
    """(H, W) of an image file from its header, after the EXIF rotation that load_image applies."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError.from_pil(str(path), exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable image ({type(exc).__name__}: {exc})") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _examples(items, k: int = 3) -> str:
    items = sorted(str(i) for i in items)
    more = f", ... ({len(items) - k} more)" if len(items) > k else ""
    return ", ".join(items[:k]) + more


def _augment_arg(augment, size, fn: str):
    if augment == "train":
        if size is None:
            raise ValueError(f"{fn}: augment='train' needs size=(H, W)")
        return PortraitAugment(size)
    if augment is not None and not callable(augment):
        raise ValueError(f"{fn}: augment must be None, 'train' or a callable (image, mask) -> (image, mask), "
                         f"got {augment!r}")
    return augment


class PortraitFolder(Dataset):
    """(image, mask) pairs from a folder of images and a folder of masks (or one folder with both).

    Parameters
    ----------
    images: folder of photos (``.jpg``, ``.png``, ...).
    masks: folder of masks; ``None``: the same folder, where masks need a non-empty suffix
        (``x_mask.png``) or are ``.mat`` files.
    size: ``(H, W)`` (or one int): every sample is resized to it (image bilinear with antialiasing,
        mask by area then thresholded at 0.5; the aspect ratio follows ``size``). ``None``: native size.
    augment: ``None``; ``"train"`` for :class:`PortraitAugment` ``(size)`` with its defaults; or a callable
        ``(image, mask) -> (image, mask)`` (a :class:`PortraitAugment`, say); its output is resized to
        ``size`` if it differs.
    mask_suffixes: a mask of image ``x.jpg`` is ``x<suffix>.<ext>`` (stems compared case-insensitively,
        ``ext`` any image suffix or ``.mat``); when several exist, the first suffix in this order wins.
    strict: images without masks or masks without images raise ``ValueError`` (default: warn, skip).
    resize_masks: a mask whose size differs from its image is resized with nearest neighbour
        (default: :class:`MaskSizeError` naming both files).
    threshold, foreground, mat_key: passed to :func:`load_mask`.
    names: keep only these stems (a split); masks of other stems are not reported as orphans.

    Returns ``(image, mask)``: float tensors ``(3, H, W)`` in [0, 1] and ``(1, H, W)`` in {0, 1}. The folders are
    listed once (names only); files are decoded when a sample needs them. Unreadable files are skipped with a warning
    (``dataset.skipped``: stem -> reason) and the next pair is returned instead, so an epoch never stops on one bad
    file. All-background and all-foreground masks are kept and counted (``empty_masks``, ``full_masks``), as are
    thresholded non-binary masks (``thresholded_masks``); :meth:`report` summarises, :meth:`scan` checks every pair.
    Counters are kept per process: with DataLoader workers, call ``scan()`` in the main process.
    """

    def __init__(self, images: PathLike, masks: Optional[PathLike] = None, *, size: Optional[Size] = None,
                 augment: Union[None, str, Callable] = None, mask_suffixes: Sequence[str] = ("", "_mask", "_matte"),
                 strict: bool = False, resize_masks: bool = False, threshold: float = 0.5, foreground=None,
                 mat_key: Optional[str] = None, names: Optional[Iterable[str]] = None):
        if not isinstance(images, (str, os.PathLike)):
            raise TypeError(f"PortraitFolder: images must be a folder path, got {type(images).__name__}")
        self.image_dir = Path(images)
        self.mask_dir = Path(masks) if masks is not None else self.image_dir
        for label, folder in (("images", self.image_dir), ("masks", self.mask_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"PortraitFolder: {label} folder {folder} does not exist")
        self.size = None if size is None else check_size(size, "PortraitFolder: size")
        self.augment = _augment_arg(augment, self.size, "PortraitFolder")
        if isinstance(mask_suffixes, str) or not mask_suffixes or not all(isinstance(s, str) for s in mask_suffixes):
            raise TypeError(f"PortraitFolder: mask_suffixes must be a non-empty sequence of strings, "
                            f"got {mask_suffixes!r}")
        self.mask_suffixes = tuple(mask_suffixes)
        self.strict, self.resize_masks = bool(strict), bool(resize_masks)
        self.threshold = check_number(threshold, "PortraitFolder: threshold", low=0, high=1, low_open=True)
        self.foreground, self.mat_key = foreground, mat_key
        self._match(None if names is None else {str(n).lower() for n in names})
        self._reset_counters()

    # -- listing ---------------------------------------------------------------------------
    def _match(self, wanted: Optional[set]) -> None:
        suffixes = [s.lower() for s in self.mask_suffixes]

        def owners(p: Path) -> list:
            """(suffix rank, image stem) for each of mask_suffixes that the file's stem ends with."""
            stem = p.stem.lower()
            return [(i, stem[: len(stem) - len(s)]) for i, s in enumerate(suffixes)
                    if stem.endswith(s) and len(stem) > len(s)]

        same = self.image_dir.resolve() == self.mask_dir.resolve()
        if same:  # one folder: a mask is a .mat file or carries a non-empty suffix
            files = _list_files(self.image_dir, MASK_EXTENSIONS)
            is_mask = {p: p.suffix.lower() == ".mat" or any(suffixes[i] for i, _ in owners(p)) for p in files}
            mask_files = [p for p in files if is_mask[p]]
            image_files = [p for p in files if not is_mask[p]]
        else:
            image_files = _list_files(self.image_dir, IMAGE_EXTENSIONS)
            mask_files = _list_files(self.mask_dir, MASK_EXTENSIONS)

        by_stem = {p.stem.lower(): p for p in reversed(image_files)}  # the first file of a stem wins
        self.duplicates: list = [p.name for p in image_files if by_stem[p.stem.lower()] is not p]
        candidates: dict = {}  # image stem -> [(suffix rank, mask path)]
        self.unmatched_masks: list = []  # sorted, as mask_files are
        for p in mask_files:
            keys = owners(p)
            key = next((k for k in keys if k[1] in by_stem), None)
            if key is not None:
                candidates.setdefault(key[1], []).append((key[0], p))
            elif wanted is None or any(k in wanted for _, k in keys):
                self.unmatched_masks.append(p.name)
        self.ambiguous, self.pairs, self.unmatched_images = {}, [], []
        for key in sorted(k for k in by_stem if wanted is None or k in wanted):
            found = sorted(candidates.get(key, []), key=lambda c: (c[0], c[1].suffix.lower() == ".mat", c[1].name))
            if not found:
                self.unmatched_images.append(by_stem[key].name)
                continue
            if len(found) > 1:
                self.ambiguous[by_stem[key].name] = [c[1].name for c in found]
            self.pairs.append((by_stem[key].stem, by_stem[key], found[0][1]))
        self.missing_names: list = sorted(wanted - set(by_stem)) if wanted is not None else []

        ends = [f"{label}: {len(items)} (e.g. {_examples(items)})" for label, items in self._loose_ends() if items]
        where = (f"images in {self.image_dir}, masks in {self.mask_dir}" if not same
                 else f"images and masks in {self.image_dir}")
        rule = (f"masks are matched to images by file stem (case-insensitive) as <stem><suffix>.<ext> with "
                f"suffix in {self.mask_suffixes} and ext one of {', '.join(MASK_EXTENSIONS)}")
        if not self.pairs:
            raise ValueError(f"PortraitFolder: no image/mask pairs ({where}; found {len(image_files)} image "
                             f"file(s) and {len(mask_files)} mask file(s)). {'; '.join(ends)}. {rule}.")
        if ends:
            message = f"PortraitFolder ({where}): {len(self.pairs)} pairs; " + "; ".join(ends) + f". {rule}."
            if self.strict and (self.unmatched_images or self.unmatched_masks or self.missing_names):
                raise ValueError(message + " (strict=True)")
            warnings.warn(message + " Unpaired files are skipped (strict=True makes that an error).", stacklevel=3)

    def _loose_ends(self) -> list:
        """(label, names) of what the listing could not pair one to one, for the warning and :meth:`report`."""
        return [("images without mask", self.unmatched_images), ("masks without image", self.unmatched_masks),
                ("requested names without image", self.missing_names),
                ("duplicate image stems ignored", self.duplicates),
                ("images with several masks (the first by mask_suffixes order is used)", list(self.ambiguous))]

    def _reset_counters(self) -> None:
        self.skipped: dict = {}  # stem -> why it could not be read
        self.size_mismatches: dict = {}
        self.empty_masks, self.full_masks, self.thresholded_masks, self._seen = set(), set(), set(), set()

    @property
    def names(self) -> list:
        """The stems of the pairs, in order."""
        return [stem for stem, _, _ in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return (f"PortraitFolder({len(self)} pairs, images={str(self.image_dir)!r}, masks={str(self.mask_dir)!r}, "
                f"size={self.size}, augment={self.augment!r})")

    # -- loading ---------------------------------------------------------------------------
    def _load(self, k: int, decode_image: bool = True):
        """(image (3, H, W), mask (1, H, W)) of pair k at native size, counters updated (image None and
        only its header read when ``decode_image=False``)."""
        stem, image_path, mask_path = self.pairs[k]
        if decode_image:
            image = load_tensor(image_path)  # ValueError naming the file when unreadable
            h, w = image.shape[-2:]
        else:
            image, (h, w) = None, _image_size(image_path)
        arr, note = _decode_mask(mask_path, self.threshold, self.foreground, self.mat_key)
        mask = torch.from_numpy(arr).float()[None]
        if note and stem not in self.thresholded_masks:
            if not self.thresholded_masks:
                warnings.warn(f"PortraitFolder: {note} (further non-binary masks are counted in "
                              f".thresholded_masks and .report())", stacklevel=4)
            self.thresholded_masks.add(stem)
        if stem not in self._seen:
            self._seen.add(stem)
            total = int(arr.sum())
            for kind, hit, store in (("background", total == 0, self.empty_masks),
                                     ("foreground", total == arr.size, self.full_masks)):
                if hit and not store:
                    warnings.warn(f"PortraitFolder: the mask {mask_path.name} is all {kind}; kept (valid), "
                                  f"and counted in .report()", stacklevel=4)
                if hit:
                    store.add(stem)
        if tuple(mask.shape[-2:]) != (h, w):
            mh, mw = mask.shape[-2:]
            if not self.resize_masks:
                hint = (" (the sizes are transposed: the photo may carry an EXIF rotation that the mask lacks)"
                        if (mh, mw) == (w, h) else "")
                raise MaskSizeError(f"PortraitFolder: mask {mask_path} is {mh}x{mw} (HxW) but its image "
                                    f"{image_path} is {h}x{w}{hint}; fix the file or pass resize_masks=True to "
                                    f"resize masks with nearest neighbour")
            self.size_mismatches[stem] = f"mask {mh}x{mw}, image {h}x{w}"
            mask = F.interpolate(mask[None], size=(h, w), mode="nearest")[0]
        return image, mask

    def _try_load(self, k: int, decode_image: bool = True):
        """:meth:`_load`, or ``None`` (reason in ``skipped``) for an unreadable file; a MaskSizeError is raised."""
        stem = self.pairs[k][0]
        if stem in self.skipped:
            return None
        try:
            return self._load(k, decode_image)
        except MaskSizeError:
            raise
        except (ValueError, OSError) as exc:
            self.skipped[stem] = str(exc)
            return None

    def __getitem__(self, index: int):
        n = len(self.pairs)
        if not -n <= index < n:
            raise IndexError(f"PortraitFolder: index {index} out of range for {n} pairs")
        for attempt in range(n):
            k = (index + attempt) % n
            stem, known = self.pairs[k][0], self.pairs[k][0] in self.skipped
            pair = self._try_load(k)
            if pair is not None:
                image, mask = pair
                if self.augment is not None:
                    image, mask = self.augment(image, mask)
                    mask = mask[None] if mask.dim() == 2 else mask
                if self.size is not None:
                    image, mask = _resize_pair(image, mask, self.size)
                return image.float().contiguous(), mask.float().contiguous()
            if not known:
                warnings.warn(f"PortraitFolder: skipping pair {stem!r} ({len(self.skipped)} skipped so far): "
                              f"{self.skipped[stem]}", stacklevel=2)
        raise ValueError(f"PortraitFolder: none of the {n} pairs is readable: "
                         f"{_examples(f'{k}: {v}' for k, v in self.skipped.items())}")

    # -- checks ----------------------------------------------------------------------------
    def scan(self, progress: bool = False, decode_images: bool = True) -> str:
        """Decode every pair once (no augmentation) to fill the counters; returns :meth:`report`.

        Size mismatches are collected in ``size_mismatches`` instead of raising. ``decode_images=False`` reads only
        the photos' headers (sizes): faster, but a truncated photo is then found only when a sample needs it.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in tqdm(range(len(self.pairs)), desc="scan", disable=not progress, leave=False):
                if self.pairs[k][0] not in self.size_mismatches:
                    try:
                        self._try_load(k, decode_image=decode_images)
                    except MaskSizeError as exc:
                        self.size_mismatches[self.pairs[k][0]] = str(exc)
        return self.report()

    def readable(self, limit: Optional[int] = None, progress: bool = False) -> "PortraitFolder":
        """The pairs that decode, in order (at most ``limit`` of them), as a :meth:`subset`.

        ``__getitem__`` serves the next readable pair in place of an unreadable one, so that an epoch never
        stops; to *count* pairs (evaluation, a training set's size, a sidecar) use this view instead, where
        every index is a distinct readable pair. Each pair is decoded once here; the unreadable ones are skipped
        with one warning and listed in the view's ``skipped`` (stem -> reason). A mask whose size differs from
        its image still raises :class:`MaskSizeError` (a data error to fix, not a bad file).
        """
        limit = None if limit is None else check_int(limit, "PortraitFolder.readable: limit", minimum=1)
        if getattr(self, "all_readable", False) and (limit is None or limit >= len(self.pairs)):
            return self  # already such a view: every pair decoded once
        keep = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in tqdm(range(len(self.pairs)), desc="checking pairs", disable=not progress, leave=False):
                if limit is not None and len(keep) >= limit:
                    break
                if self._try_load(k) is not None:
                    keep.append(self.pairs[k][0])
        skipped = _examples(f"{k}: {v}" for k, v in self.skipped.items())
        if self.skipped:
            warnings.warn(f"PortraitFolder: skipped {len(self.skipped)} unreadable pair(s) of {len(self.pairs)} "
                          f"(e.g. {skipped})", stacklevel=2)
        if not keep and self.pairs:
            raise ValueError(f"PortraitFolder: none of the {len(self.pairs)} pairs is readable "
                             f"(images {self.image_dir}, masks {self.mask_dir})" + (f": {skipped}" if skipped else ""))
        out = self.subset(keep)
        out.skipped, out.all_readable = dict(self.skipped), True
        for counter in ("empty_masks", "full_masks", "thresholded_masks", "_seen"):
            setattr(out, counter, getattr(self, counter) & set(keep))
        return out

    def report(self) -> str:
        """A summary: pairs, unmatched files, skipped files, empty/full and thresholded masks."""
        lines = [f"PortraitFolder: {len(self)} pairs (images {self.image_dir}, masks {self.mask_dir})"]
        counts = [(label, items) for label, items in self._loose_ends() if items] + [
            ("skipped (unreadable)", [f"{k}: {v}" for k, v in self.skipped.items()]),
            ("size mismatches", self.size_mismatches), ("all-background masks", self.empty_masks),
            ("all-foreground masks", self.full_masks), ("non-binary masks thresholded", self.thresholded_masks)]
        lines += [f"  {label}: {len(items)}" + (f" (e.g. {_examples(items)})" if items else "")
                  for label, items in counts]
        checked = len(self._seen | set(self.skipped))
        if checked < len(self):
            lines.append(f"  (counts cover the {checked} of {len(self)} pairs loaded so far in this process; "
                         f"scan() checks them all)")
        return "\n".join(lines)

    # -- splits ----------------------------------------------------------------------------
    def subset(self, names: Iterable[str], augment: Union[None, str, Callable] = "same") -> "PortraitFolder":
        """A view on the pairs whose stems are in ``names`` (no re-listing), with fresh counters.

        ``augment``: ``"same"`` keeps this dataset's, else as in the constructor.
        """
        keep = {str(n).lower() for n in names}
        out = copy.copy(self)
        out.pairs = [p for p in self.pairs if p[0].lower() in keep]
        if augment != "same":
            out.augment = _augment_arg(augment, self.size, "PortraitFolder.subset")
        out._reset_counters()
        return out

    def split(self, val_fraction: float = 0.15, seed: int = 0):
        """``(train, val)`` by :func:`train_val_split`; ``val`` is not augmented."""
        train, val = train_val_split(self.names, val_fraction=val_fraction, seed=seed)
        return self.subset(train), self.subset(val, augment=None)


def train_val_split(dataset_or_names, val_fraction: float = 0.15, seed: int = 0):
    """Split by a hash of each name, so the validation set never changes when files are added.

    A name goes to validation when ``sha256(f"{seed}\\0{stem}")``, read as a number in [0, 1),
    is below ``val_fraction``: each name's side depends on that name (lower-cased, file suffix
    removed) and the seed only. The validation share is ``val_fraction`` on average (binomial
    spread: about ``±sqrt(f (1 - f) / n)``).

    ``dataset_or_names``: a :class:`PortraitFolder` -> ``(train_dataset, val_dataset)`` (validation not
    augmented); a sequence of names or paths -> ``(train_names, val_names)`` in the input order.

    >>> train_val_split(["a", "b", "c", "d"], val_fraction=0.5, seed=0)
    (['b'], ['a', 'c', 'd'])
    """
    check_probability(val_fraction, "train_val_split: val_fraction")
    check_int(seed, "train_val_split: seed")
    if isinstance(dataset_or_names, PortraitFolder):
        return dataset_or_names.split(val_fraction=val_fraction, seed=seed)
    if isinstance(dataset_or_names, (str, bytes)) or not isinstance(dataset_or_names, Iterable):
        raise TypeError(f"train_val_split: give a PortraitFolder or a sequence of names, "
                        f"got {type(dataset_or_names).__name__}")
    train, val = [], []
    for name in dataset_or_names:
        p = Path(str(name))
        key = (p.stem if p.suffix.lower() in MASK_EXTENSIONS else p.name if isinstance(name, os.PathLike)
               else str(name)).lower()
        score = int.from_bytes(hashlib.sha256(f"{seed}\x00{key}".encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
        (val if score < val_fraction else train).append(name)
    return train, val


# =========================================================================== real data
def shared_portraits(root: Optional[PathLike] = None, **kwargs) -> PortraitFolder:
    """The prepared EG1800 training split (``images/*.jpg`` + ``masks/*.png``) as a :class:`PortraitFolder`.

    Looks at ``root``, else ``$COURSE_PORTRAITS``, else :data:`SHARED_PORTRAITS`; ``kwargs`` go to
    :class:`PortraitFolder`. Raises ``DatasetUnavailableError`` saying how to get the data otherwise.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    folder = Path(root) if root is not None else Path(env).expanduser() if env else SHARED_PORTRAITS
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return PortraitFolder(folder / "images", folder / "masks", **kwargs)
    info = _datasets.get_info("eg1800")
    raise _datasets.DatasetUnavailableError(
        f"shared_portraits: no portrait folder at {folder} (it needs images/ and masks/ inside; pass root= or "
        f"set ${ENV_VAR}). That folder is a prepared copy of EG1800's training split and is not part of the "
        f"course. To get the real data: folder = course_lib.core.datasets.fetch('eg1800') downloads the "
        f"bio-punk/AutoPortraitMatting mirror ({info.url}), then eg1800(folder, split='train') or "
        f"split='test' reads it. Without a network, synthetic_portraits(n, size) draws head-and-shoulders "
        f"portraits with exact masks.")


def _test_names(path: Path) -> list:
    """The stems of the test images listed in ``testlist.mat`` (its variable ``testlist``, or the only one)."""
    if not path.is_file():
        raise FileNotFoundError(f"eg1800: {path} is missing; it lists the test images (use split='all' without it)")
    arrays = {k: v for k, v in _mat_variables(path).items()
              if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.number)}
    if "testlist" not in arrays and len(arrays) != 1:
        raise ValueError(f"eg1800: {path} has no variable 'testlist' (variables: {', '.join(arrays) or 'none'})")
    values = np.asarray(arrays.get("testlist", next(iter(arrays.values())))).ravel()
    if values.size == 0 or (values <= 0).any() or (values != np.round(values)).any():
        raise ValueError(f"eg1800: {path} must list positive image numbers, got {values[:5].tolist()}...")
    return [f"{int(v):05d}" for v in values]


def eg1800(root: PathLike, split: str = "train", **kwargs) -> PortraitFolder:
    """EG1800 in the layout of the bio-punk/AutoPortraitMatting mirror.

    ``root``: the folder :func:`course_lib.core.datasets.fetch` returns for ``"eg1800"``, the repository
    folder, or its ``data/`` folder. Images are ``data/images_data_crop/NNNNN.jpg`` (600x800 crops),
    masks ``data/images_mask/NNNNN_mask.mat`` (one 2-D array, ``mask``); ``data/testlist.mat`` holds the
    test image numbers (variable ``testlist``). ``split``: ``"test"`` = those, ``"train"`` = every other
    image, ``"all"``. Images whose Flickr download failed are absent from the mirror: a test number
    without image is listed in ``missing_names``. ``kwargs`` go to :class:`PortraitFolder`.
    """
    check_choice(split, ("train", "test", "all"), "eg1800: split")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"eg1800: {root} is not a folder")
    data = next((c for c in [root, root / "data"] + sorted(p / "data" for p in root.iterdir() if p.is_dir())
                 if (c / "images_data_crop").is_dir() and (c / "images_mask").is_dir()), None)
    if data is None:
        raise FileNotFoundError(
            f"eg1800: no EG1800 layout under {root}: expected data/images_data_crop/NNNNN.jpg, "
            f"data/images_mask/NNNNN_mask.mat and data/testlist.mat (the bio-punk/AutoPortraitMatting mirror, "
            f"course_lib.core.datasets.fetch('eg1800')), in {root}, {root / 'data'} or one folder below")
    images, masks = data / "images_data_crop", data / "images_mask"
    kwargs.setdefault("mask_suffixes", ("_mask", ""))
    names = None if split == "all" else _test_names(data / "testlist.mat")
    if split == "train":  # every image that the test list does not name
        held = set(names)
        names = [p.stem for p in _list_files(images, IMAGE_EXTENSIONS) if p.stem not in held]
    return PortraitFolder(images, masks, names=names, **kwargs)


# =========================================================================== synthetic portraits
#: Offline training photos that show a person (as a background, an unlabelled person would be label noise).
_PEOPLE_PHOTOS = ("astronaut",)


@functools.lru_cache(maxsize=1)
def _background_pool() -> Tuple[Tuple[str, np.ndarray], ...]:
    """Training-side offline photos (never the hold-out ones, never people), as read-only uint8 arrays."""
    train, _ = _datasets.offline_split()
    photos = _datasets.offline_natural_images()
    pool = []
    for name in train:
        if name in photos and name not in _PEOPLE_PHOTOS:
            arr = np.asarray(photos[name].convert("RGB"))
            arr.setflags(write=False)
            pool.append((name, arr))
    return tuple(pool)


def _background(rng: np.random.Generator, h: int, w: int, kind: str, pool, blur: float = 0.0) -> np.ndarray:
    if kind == "natural" and pool:
        _, photo = pool[int(rng.integers(len(pool)))]
        ph, pw = photo.shape[:2]
        ch = min(ph, pw * h / w) * rng.uniform(0.35, 1.0)  # a crop with the output's aspect ratio
        cw = ch * w / h
        top, left = rng.uniform(0, ph - ch), rng.uniform(0, pw - cw)
        img = Image.fromarray(photo).resize((w, h), Image.BILINEAR, box=(left, top, left + cw, top + ch))
        if blur > 0:
            img = img.filter(ImageFilter.GaussianBlur(blur))
        out = np.asarray(img, dtype=np.float32) / 255.0
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)
    if kind == "flat":
        return np.broadcast_to(rng.uniform(0.1, 0.9, 3).astype(np.float32), (h, w, 3)).copy()
    return np.clip(_smooth_field(rng, 3, h, w, 0.05, 0.95).transpose(1, 2, 0), 0, 1)  # "noise"


def _smooth_field(rng: np.random.Generator, channels: int, h: int, w: int, lo: float, hi: float) -> np.ndarray:
    """A smooth random field ``(C, h, w)``: 4 x 4 values uniform in [lo, hi], upsampled bicubically."""
    coarse = torch.from_numpy(rng.uniform(lo, hi, (1, channels, 4, 4)).astype(np.float32))
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0].numpy()


def _fit_scale(render: Callable[[float], np.ndarray], target: float, lo: float, hi: float, iters: int = 18):
    """Bisection on a size parameter so that the mask covers ``target`` of the image."""
    best = None
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        frac = float(render(mid).mean())
        if best is None or abs(frac - target) < abs(best[1] - target):
            best = (mid, frac)
        if frac < target:
            lo = mid
        else:
            hi = mid
    return best


def _render_portrait(rng: np.random.Generator, h: int, w: int, frac_range: Tuple[float, float], backgrounds: str, pool):
    """One (image (H, W, 3) float32, mask (H, W) uint8) in the requested foreground range."""
    lo, hi = frac_range
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5  # pixel centres
    step = max(1, max(h, w) // 64)
    for _ in range(50):
        target = rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo))
        # pose in units of the head's vertical semi-axis r (scale-free), shoulders fixed in the frame
        ys = h * float(np.clip(0.86 - 0.55 * target + rng.uniform(-0.08, 0.08), 0.4, 0.9))
        cx = w * (0.5 + rng.uniform(-0.12, 0.12))
        pose = dict(aspect=rng.uniform(0.72, 0.86), tilt=rng.uniform(-0.25, 0.25), drop=rng.uniform(1.45, 1.9),
                    neck=rng.uniform(0.38, 0.52), shoulder=rng.uniform(1.8, 2.6), round=rng.uniform(0.7, 1.1),
                    power=rng.uniform(2.2, 4.0), shift=rng.uniform(-0.35, 0.35), lean=rng.uniform(-0.2, 0.2),
                    flare=rng.uniform(0.0, 0.12), hair_long=rng.random() < 0.4, hair_len=rng.uniform(0.6, 1.6),
                    hair_line=rng.uniform(-0.35, 0.05), hair_puff=rng.uniform(1.03, 1.15))

        def parts(r: float, xx=xx, yy=yy) -> dict:
            p = pose
            cy = ys - p["drop"] * r
            dx, dy = xx - cx, yy - cy
            ct, st = math.cos(p["tilt"]), math.sin(p["tilt"])
            u, v = ct * dx + st * dy, -st * dx + ct * dy  # head frame
            a = p["aspect"] * r
            head = (u / a) ** 2 + (v / r) ** 2 <= 1.0
            hair_top = ((u / (a * p["hair_puff"])) ** 2 + ((v + 0.06 * r) / (r * p["hair_puff"])) ** 2 <= 1.0) \
                & (v < p["hair_line"] * r + 0.25 * np.abs(u))
            hair_back = ((np.abs(u) <= a * p["hair_puff"]) & (v >= 0) & (v <= p["hair_len"] * r) if p["hair_long"]
                         else np.zeros_like(head))
            neck = (np.abs(xx - cx - 0.3 * p["shift"] * r) <= p["neck"] * r) & (yy >= cy) & (yy <= ys + r)
            bx = cx + p["shift"] * r + np.tan(p["lean"]) * (yy - ys)
            half = p["shoulder"] * r * (1.0 + p["flare"] * np.clip((yy - ys) / r, 0, None))
            k = p["round"] * r
            yc = ys + k
            top = (np.abs((xx - bx) / half) ** p["power"] + np.abs((yy - yc) / k) ** 2 <= 1.0) & (yy <= yc)
            torso = top | ((yy > yc) & (np.abs(xx - bx) <= half))
            return dict(head=head, hair_top=hair_top, hair_back=hair_back, neck=neck, torso=torso, u=u, v=v, a=a)

        def silhouette(r: float, xx=xx, yy=yy) -> np.ndarray:
            q = parts(r, xx, yy)
            return q["head"] | q["hair_top"] | q["hair_back"] | q["neck"] | q["torso"]

        # fit the scale on a coarse grid of pixel centres (fast), then check at full resolution
        r, _ = _fit_scale(lambda r: silhouette(r, xx[::step, ::step], yy[::step, ::step]), target, 0.02 * h, 1.2 * h)
        mask = silhouette(r)
        if lo <= mask.mean() <= hi:
            break
    else:
        raise RuntimeError(f"synthetic_portraits: could not draw a portrait covering {lo:.2f}..{hi:.2f} of a "
                           f"{h}x{w} image; widen foreground_fraction")

    q = parts(r)
    blur = float(rng.uniform(0.5, 2.0)) * max(h, w) / 128 if rng.random() < 0.6 else 0.0
    img = _background(rng, h, w, backgrounds, pool, blur)  # blurred: a shallow depth of field

    # appearance
    tone = rng.uniform(0, 1)
    skin = (1 - tone) * np.array([0.95, 0.78, 0.66]) + tone * np.array([0.38, 0.24, 0.16])
    hair = np.array([[0.08, 0.06, 0.05], [0.30, 0.18, 0.10], [0.75, 0.60, 0.35], [0.55, 0.22, 0.10],
                     [0.6, 0.6, 0.6]])[rng.choice(5, p=[0.35, 0.3, 0.15, 0.1, 0.1])]
    cloth = rng.uniform(0.05, 0.95, 3)
    cloth2 = np.clip(cloth + rng.uniform(-0.4, 0.4, 3), 0, 1)
    # clothes: plain or striped, with folds (low-frequency shading)
    angle, period = rng.uniform(0, np.pi), rng.uniform(0.3, 0.9) * r
    stripes = (np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period) > 0) \
        if rng.random() < 0.5 else np.zeros((h, w), dtype=bool)
    fg = np.where(stripes[..., None], cloth2, cloth).astype(np.float32)
    folds = 1.0 + 0.12 * np.sin(xx / (0.7 * r) + rng.uniform(0, 6)) * np.cos(yy / (0.9 * r))
    fg *= folds[..., None]
    # neckline: skin shows through a round cut of the collar
    collar = ((xx - cx) / (0.75 * r)) ** 2 + ((yy - ys) / (0.55 * r)) ** 2 <= 1.0
    fg[collar | q["neck"]] = skin * 0.85
    fg[q["hair_back"] & ~q["head"]] = hair * 0.8
    rim = np.clip((q["u"] / q["a"]) ** 2 + (q["v"] / r) ** 2, 0, 1)
    face = skin[None, None, :] * (1.0 - 0.25 * rim[..., None])  # darker towards the rim: a round head
    fg = np.where(q["head"][..., None], face, fg)
    fg[q["hair_top"]] = hair
    if r > 6:  # eyes and mouth once the face is large enough to show them
        for side in (-1, 1):
            eye = (((q["u"] - side * 0.38 * q["a"]) / (0.12 * q["a"])) ** 2
                   + ((q["v"] + 0.05 * r) / (0.07 * r)) ** 2 <= 1)
            fg[eye & q["head"]] = (0.1, 0.08, 0.08)
        mouth = (np.abs(q["u"]) <= 0.3 * q["a"]) & (np.abs(q["v"] - 0.5 * r) <= 0.035 * r + 0.5)
        fg[mouth & q["head"]] = skin * 0.55
    fg = fg * rng.uniform(0.75, 1.15) + rng.normal(0, 0.03, fg.shape)  # light level and texture
    alpha = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(0.6)),
                       dtype=np.float32) / 255.0
    img = alpha[..., None] * fg + (1 - alpha[..., None]) * img
    img = img + rng.normal(0, rng.uniform(0.005, 0.03), img.shape)  # sensor noise
    return np.clip(img, 0, 1).astype(np.float32), mask.astype(np.uint8)


class SyntheticPortraits(Dataset):
    """``n`` synthetic head-and-shoulders portraits with exact masks (offline, deterministic by ``seed``).

    Each sample: a head (ellipse, random tilt and aspect) with short or long hair, a neck, and shoulders/torso
    (a rounded superellipse top widening downwards, random width, lean and offset) running out of the bottom
    edge; skin of a random tone shaded towards the rim, plain or striped clothes with folds, eyes and mouth when
    large enough, texture noise; the edge is softened in the image (Gaussian, 0.6 px) while the mask stays
    exactly binary. The figure is scaled by bisection so that its share of the pixels lies in
    ``foreground_fraction`` (``(lo, hi)``, or one value ± 0.02).

    ``backgrounds``: ``"natural"`` crops of the *training* photos of :func:`course_lib.core.datasets.offline_split`
    (the hold-out photos are never used, nor the astronaut photo, whose unlabelled person would be label noise),
    often blurred as by a shallow depth of field; ``"noise"`` smooth colour fields; ``"flat"`` one colour.

    Sample ``i``, ``(image (3, H, W) in [0, 1], 8-bit levels; mask (1, H, W) in {0, 1})``, depends only on
    ``(seed, i)``: the same at every epoch, in every worker, on every machine. ``.tensors()`` stacks them all;
    ``cache=True`` keeps each drawn sample (8-bit) so that later epochs cost nothing.
    """

    def __init__(self, n: int, size: Size = (128, 128), *, seed: int = 0,
                 foreground_fraction=(0.2, 0.6), backgrounds: str = "natural", cache: bool = True):
        check_int(n, "synthetic_portraits: n", minimum=1)
        check_int(seed, "synthetic_portraits: seed", minimum=0)
        self.backgrounds = check_choice(backgrounds, ("natural", "noise", "flat"), "synthetic_portraits: backgrounds")
        self.n, self.seed = n, seed
        self.size = check_size(size, "synthetic_portraits: size", minimum=16)
        self.foreground_fraction = _range(foreground_fraction, "synthetic_portraits: foreground_fraction", fraction=True)
        self.cache = bool(cache)
        self._cache: dict = {}
        self._pool = _background_pool() if backgrounds == "natural" else ()
        if backgrounds == "natural" and not self._pool:
            warnings.warn("synthetic_portraits: no offline photos could be loaded; using backgrounds='noise'")
            self.backgrounds = "noise"

    @property
    def background_names(self) -> list:
        """The offline photos backgrounds are cut from (the training side of ``offline_split()``)."""
        return [name for name, _ in self._pool]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        if not -self.n <= index < self.n:
            raise IndexError(f"SyntheticPortraits: index {index} out of range for {self.n} samples")
        index %= self.n
        if index in self._cache:
            img, mask = self._cache[index]
        else:
            rng = np.random.default_rng([self.seed, index])
            img, mask = _render_portrait(rng, *self.size, self.foreground_fraction, self.backgrounds, self._pool)
            img = np.round(img * 255).astype(np.uint8)  # 8-bit like a photo, and the same whether cached or not
            if self.cache:
                self._cache[index] = (img, mask)
        image = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
        return image.contiguous(), torch.from_numpy(mask).float()[None]

    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """All samples stacked: ``(images (N, 3, H, W), masks (N, 1, H, W))``."""
        items = [self[i] for i in range(self.n)]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])


#: The course's name for the data set: ``synthetic_portraits(n, size, seed=...)``.
synthetic_portraits = SyntheticPortraits


def imbalanced_blobs(n: int, size: Size = 64, *, seed: int = 0, foreground_fraction=(0.02, 0.10),
                     blobs: Tuple[int, int] = (1, 4), contrast: float = 0.25, noise: float = 0.12) -> tuple:
    """A tiny segmentation task with a rare foreground, for comparing losses under class imbalance.

    Each gray image holds 1..4 (``blobs``) elliptical blobs, ``contrast`` brighter than a smooth random
    background, plus Gaussian noise of standard deviation ``noise``; the blobs together cover a
    fraction of the pixels inside ``foreground_fraction`` (default 2-10 %: a network that predicts
    "background everywhere" already scores 90-98 % pixel accuracy, which is the point of the exercise).

    Returns ``(images (n, 1, H, W) float in [0, 1], masks (n, 1, H, W) float in {0, 1})``, deterministic by ``seed``.

    >>> x, y = imbalanced_blobs(4, 32, seed=0)
    >>> bool(((y.mean((1, 2, 3)) >= 0.02) & (y.mean((1, 2, 3)) <= 0.10)).all())
    True
    """
    check_int(n, "imbalanced_blobs: n", minimum=1)
    check_int(seed, "imbalanced_blobs: seed", minimum=0)
    h, w = check_size(size, "imbalanced_blobs: size", minimum=8)
    lo, hi = _range(foreground_fraction, "imbalanced_blobs: foreground_fraction", fraction=True)
    if (not isinstance(blobs, (tuple, list)) or len(blobs) != 2 or not 1 <= blobs[0] <= blobs[1]):
        raise ValueError(f"imbalanced_blobs: blobs must be (min, max) counts with 1 <= min <= max, got {blobs!r}")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    images, masks = np.empty((2, n, h, w), dtype=np.float32)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        for _ in range(50):
            k = int(rng.integers(blobs[0], blobs[1] + 1))
            centres = rng.uniform(0.1, 0.9, (k, 2)) * (h, w)
            axes = rng.uniform(0.5, 1.0, (k, 2))
            angles = rng.uniform(0, np.pi, k)
            target = rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo))

            def render(s: float) -> np.ndarray:
                m = np.zeros((h, w), dtype=bool)
                for (cy, cx), (ay, ax), t in zip(centres, axes, angles):
                    dy, dx = yy - cy, xx - cx
                    u, v = np.cos(t) * dx + np.sin(t) * dy, -np.sin(t) * dx + np.cos(t) * dy
                    m |= (u / (ax * s)) ** 2 + (v / (ay * s)) ** 2 <= 1
                return m

            s, frac = _fit_scale(render, target, 0.1, float(max(h, w)))
            if lo <= frac <= hi:
                break
        else:
            raise RuntimeError(f"imbalanced_blobs: could not reach a foreground fraction in {lo}..{hi} "
                               f"at {h}x{w}; widen foreground_fraction or enlarge size")
        mask = render(s)
        image = _smooth_field(rng, 1, h, w, 0.2, 0.6)[0] + contrast * mask + rng.normal(0, noise, (h, w))
        images[i] = np.clip(image, 0, 1)
        masks[i] = mask
    return torch.from_numpy(images)[:, None], torch.from_numpy(masks)[:, None]
