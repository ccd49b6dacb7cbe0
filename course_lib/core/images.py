"""Loading, saving and converting images, with validation.

Conventions: a *tensor image* is a float tensor ``(C, H, W)`` (or a batch ``(N, C, H, W)``) with
values in ``[0, 1]``; a PIL image is 8-bit RGB or L.

A file that is not an image, or is truncated, raises ``ValueError`` naming the file; a decompression
bomb raises :class:`ImageTooLargeError`, a ``ValueError`` too, so folder loaders skip and count it
like any unreadable file. YCbCr is ITU-R BT.601 "studio swing" (Y in [16, 235]/255), the convention
of MATLAB's ``rgb2ycbcr`` that the super-resolution literature evaluates PSNR on.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .checkpoints import _atomic_write
from .checks import check_choice, check_finite  # check_finite is re-exported: callers import it from here

__all__ = ["load_image", "load_tensor", "open_image", "save_image", "to_tensor", "to_pil", "to_numpy", "rgb_to_ycbcr",
           "ycbcr_to_rgb", "rgb_to_y", "check_image_tensor", "check_finite", "IMAGE_EXTENSIONS", "ImageTooLargeError"]

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey bottom
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")

Source = Union[str, os.PathLike, bytes, bytearray, io.IOBase, Image.Image]


class ImageTooLargeError(ValueError):
    """An image file whose header claims more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` allows (x 2): a
    few kilobytes can claim gigabytes of pixels. Says which file, what it claims and how to allow it."""

    @classmethod
    def from_pil(cls, name: str, exc: BaseException) -> "ImageTooLargeError":
        tb = exc.__traceback__  # PIL's check holds the claimed (width, height) as ``size``
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        size = tb.tb_frame.f_locals.get("size") if tb is not None else None
        numbers = [int(n) for n in re.findall(r"\d+", str(exc))]
        if isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) for v in size):
            claim = f"{size[0]}x{size[1]} pixels ({size[0] * size[1]:,})"
        else:
            claim = f"{numbers[0]:,} pixels" if numbers else "too many pixels"
        limit = numbers[1] if len(numbers) > 1 else None
        return cls(f"{name} claims {claim}, more than PIL's safety limit"
                   + (f" of {limit:,}" if limit else "") + " (a decompression bomb?); if the file is genuine, "
                   "allow it deliberately: PIL.Image.MAX_IMAGE_PIXELS = None (or a larger number) before loading")


def open_image(source: Source) -> Image.Image:
    """Open an image file, bytes or PIL image as PIL (not yet decoded or converted), with one-line errors
    for a missing, unreadable or over-large (decompression bomb) file."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        if not Path(source).is_file():
            raise FileNotFoundError(f"image file {name} does not exist")
        fh = open(source, "rb")
    elif isinstance(source, (bytes, bytearray)):
        name, fh = f"<{len(source)} bytes>", io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        name, fh = getattr(source, "name", repr(source)), source
    else:
        raise TypeError(f"load_image: source must be a path, bytes, a file object or a PIL image, "
                        f"got {type(source).__name__}")
    try:
        img = Image.open(fh)
        img.load()  # decode now so that truncation is caught here
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError.from_pil(name, exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{name} is not a readable image ({type(exc).__name__}: {exc})") from None
    finally:
        if isinstance(source, (str, os.PathLike)):
            fh.close()
    return img


_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _to_float_array(img: Image.Image) -> np.ndarray:
    """A 16- or 32-bit grayscale image (modes ``I;16*``, ``I``, ``F``) as floats in [0, 1], full precision."""
    arr = np.asarray(img, dtype=np.float64)
    hi = arr.max(initial=0)
    scale = 65535.0 if img.mode.startswith("I;16") or hi > 255 else 255.0 if img.mode == "I" or hi > 1 else 1.0
    return np.clip(arr / scale, 0.0, 1.0)


def _open_oriented(source: Source, mode: str, func: str) -> Image.Image:
    check_choice(mode, ("RGB", "L"), f"{func}: mode")
    img = open_image(source)
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not make a good image unreadable
        return img


def load_image(source: Source, mode: str = "RGB", background=(255, 255, 255)) -> Image.Image:
    """Read a path, bytes, a file object or a PIL image as an 8-bit PIL image in ``mode`` (``"RGB"`` or
    ``"L"``): EXIF orientation applied (phones store portraits sideways plus a rotation tag),
    transparency composited over ``background``, 16-bit images scaled to 8 bits (:func:`load_tensor`
    keeps their precision)."""
    img = _open_oriented(source, mode, "load_image")
    if img.mode in _HIGH_DEPTH:
        img = Image.fromarray(np.round(_to_float_array(img) * 255).astype(np.uint8), mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, tuple(background) + (255,)), rgba)
    return img.convert(mode)


def load_tensor(source: Source, mode: str = "RGB", background=(255, 255, 255)) -> torch.Tensor:
    """Read an image as a float tensor ``(C, H, W)`` in [0, 1] (C = 3 for RGB, 1 for L); 16-bit files
    keep their full precision."""
    img = _open_oriented(source, mode, "load_tensor")
    if img.mode in _HIGH_DEPTH:
        t = torch.from_numpy(_to_float_array(img)).float()[None]
        return t.expand(3, -1, -1).clone() if mode == "RGB" else t
    return to_tensor(load_image(img, mode=mode, background=background))


_WHITE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(bool): 1.0}  # the value of white


def to_tensor(image) -> torch.Tensor:
    """PIL image or ``uint8``/float array ``(H, W[, C])`` -> float tensor ``(C, H, W)`` in [0, 1]."""
    if isinstance(image, torch.Tensor):
        check_image_tensor(image, "image")
        return image.float()
    if isinstance(image, Image.Image):
        if image.mode not in ("RGB", "L"):
            image = load_image(image, mode="RGB" if image.mode not in ("1", "I;16", "I", "F", "LA") else "L")
        arr = np.asarray(image)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise TypeError(f"to_tensor: image must be a PIL image, numpy array or tensor, got {type(image).__name__}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"to_tensor: expected an array of shape (H, W), (H, W, 1|3|4), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < -1e-6 or np.nanmax(arr) > 1 + 1e-6):
            raise ValueError(f"to_tensor: float arrays must lie in [0, 1], got range "
                             f"[{np.nanmin(arr):.3g}, {np.nanmax(arr):.3g}]")
    elif arr.dtype not in _WHITE:
        raise TypeError(f"to_tensor: unsupported array dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    t = torch.from_numpy(np.array(arr, dtype=np.float32) / _WHITE.get(arr.dtype, 1.0))
    return t.permute(2, 0, 1).contiguous()


_IMAGE_SHAPES = {True: ((4,), "(N, C, H, W)"), False: ((3,), "(C, H, W)"), None: ((3, 4), "(C, H, W) or (N, C, H, W)")}


def check_image_tensor(x, name: str = "image", channels=None, batched=None) -> torch.Tensor:
    """Validate a tensor image; return it. Raises naming ``name`` and the shape received."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    dims, shape = _IMAGE_SHAPES[batched]
    if x.dim() not in dims:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor with values in [0, 1], got dtype {x.dtype}")
    allowed = (channels,) if isinstance(channels, int) else tuple(channels or ())
    if allowed and x.shape[-3] not in allowed:
        raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} channel(s), got shape {tuple(x.shape)}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    return x


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """Tensor ``(C, H, W)`` -> float array ``(H, W, C)`` (``(H, W)`` if C == 1)."""
    check_image_tensor(x, "x", batched=False)
    arr = x.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 1 else arr


def to_pil(x: torch.Tensor) -> Image.Image:
    """Tensor ``(C, H, W)`` in [0, 1] -> 8-bit PIL image (values clamped, rounded)."""
    if isinstance(x, Image.Image):
        return x
    check_image_tensor(x, "x", channels=(1, 3), batched=False)
    check_finite(x, "to_pil: x")
    arr = (x.detach().cpu().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0], mode="L") if arr.shape[2] == 1 else Image.fromarray(arr, mode="RGB")


def save_image(x, path: str | os.PathLike, quality: int = 95) -> Path:
    """Save a tensor or PIL image; the format follows the suffix (PNG, JPEG, ...)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"save_image: {path} has no known image suffix; use one of {IMAGE_EXTENSIONS}")
    img, suffix = to_pil(x), path.suffix.lower()
    kwargs = {"quality": int(quality)} if suffix in (".jpg", ".jpeg") else {}
    return _atomic_write(path, lambda fh: img.save(fh, format=Image.registered_extensions()[suffix], **kwargs))


# BT.601 studio swing, as MATLAB rgb2ycbcr (inputs in [0, 1], outputs in [0, 1]).
_RGB2YCBCR = torch.tensor([[65.481, 128.553, 24.966],
                           [-37.797, -74.203, 112.0],
                           [112.0, -93.786, -18.214]], dtype=torch.float64) / 255.0
_YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255.0


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB ``(..., 3, H, W)`` in [0,1] -> YCbCr (BT.601 studio swing) in [0,1].

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in [0, 1];
    equal to ``skimage.color.rgb2ycbcr(img) / 255``.
    """
    check_image_tensor(x, "x", channels=3)
    return torch.einsum("ij,...jhw->...ihw", _RGB2YCBCR.to(x), x) + _YCBCR_OFFSET.to(x)[:, None, None]


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    check_image_tensor(x, "x", channels=3)
    minv = torch.linalg.inv(_RGB2YCBCR).to(x)
    return torch.einsum("ij,...jhw->...ihw", minv, x - _YCBCR_OFFSET.to(x)[:, None, None])


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """The luma channel ``(..., 1, H, W)`` of an RGB tensor (BT.601 studio swing)."""
    check_image_tensor(x, "x", channels=3)
    return (torch.einsum("j,...jhw->...hw", _RGB2YCBCR[0].to(x), x) + 16.0 / 255.0).unsqueeze(-3)
