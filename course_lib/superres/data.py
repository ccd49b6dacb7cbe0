"""Paired data for super-resolution: (LR, HR) patches made on the fly from HR images.

Each sample is a random HR crop whose corner is aligned to the scale (so that the LR crop is *exactly* the LR of
the HR crop, also when LR images are cached), randomly flipped and rotated by multiples of 90°, and degraded by
:mod:`.degrade`. :class:`PairedPatches` never holds a folder in memory: it is listed once (file names only),
images are decoded when a sample needs them and a small per-process LRU cache keeps the last few, so it scales
to a 120,000-image folder and works with DataLoader workers. A file that cannot be read, or an image smaller than
the patch, is skipped with a warning and counted (``dataset.skipped``): training never stops mid-epoch.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence, Union

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..core import datasets as _datasets
from ..core.checks import InputError, check_choice, check_int
from ..core.images import IMAGE_EXTENSIONS, check_image_tensor, load_tensor, rgb_to_y, save_image, to_tensor
from .degrade import Step, degrade, preset_names

__all__ = ["PairedPatches", "list_images", "offline_images", "load_folder", "zone_plate"]


def list_images(folder: Union[str, os.PathLike], recursive: bool = True) -> list[Path]:
    """Sorted image paths under ``folder`` (and its sub-folders when ``recursive``; by suffix, nothing decoded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"list_images: folder {folder} does not exist")
    found = [p for p in (folder.rglob("*") if recursive else folder.iterdir())
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    if not found:
        raise ValueError(f"list_images: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return sorted(found)


def offline_images(split: str = "train") -> dict[str, torch.Tensor]:
    """The natural photos shipped by installed packages as RGB tensors ``(3, H, W)``; ``split``: ``"train"``,
    ``"holdout"`` (never trained on) or ``"all"``."""
    check_choice(split, ("train", "holdout", "all"), "offline_images: split")
    photos = _datasets.offline_natural_images()
    train, hold = _datasets.offline_split()
    names = {"train": train, "holdout": hold, "all": tuple(train) + tuple(hold)}[split]
    return {n: to_tensor(photos[n].convert("RGB") if isinstance(photos[n], Image.Image) else photos[n]) for n in names}


def load_folder(folder: Union[str, os.PathLike], limit: int | None = None) -> dict[str, torch.Tensor]:
    """Load up to ``limit`` images of a folder as RGB tensors, keyed by file name (bad files skipped)."""
    limit = None if limit is None else check_int(limit, "load_folder: limit", minimum=1)
    out: dict[str, torch.Tensor] = {}
    skipped = []
    for path in list_images(folder):
        if limit is not None and len(out) >= limit:
            break
        try:
            out[path.name] = load_tensor(path)
        except ValueError as exc:
            skipped.append(str(exc))
    if skipped:
        warnings.warn(f"load_folder: skipped {len(skipped)} unreadable file(s): {skipped[:3]}")
    if not out:
        raise ValueError(f"load_folder: no readable images in {folder}")
    return out


class PairedPatches(Dataset):
    """(LR, HR) training pairs cut from HR images, degraded on the fly: float tensors ``(C, p/r, p/r)``, ``(C, p, p)``.

    source: a folder, a list of image paths, or a list/dict of images (tensors ``(C, H, W)`` or PIL).
    scale: the SR factor r. patch_size: the HR patch side p, rounded down to a multiple of ``scale``.
    degradation: a preset name (see :func:`.degrade.preset_names`) or a :class:`.degrade.Pipeline`.
    patches_per_image: samples per image per epoch. augment: random flips and 90° rotations.
    y_only: return the luma channel (BT.601) only, for Y-channel models like the paper's ESPCN.
    lr_cache: ``"memory"`` (a few dozen images) or a folder (PNG files, large sets): each image's LR is
        computed once from the *whole* image (seeded by the image index) and patches are cut from it, so patch
        borders see the same context as at evaluation; the degradation is then fixed per image.

    Randomness comes from torch's global generator, so :func:`course_lib.core.training.fit` reproduces (and
    resumes) it exactly on the CPU.
    """

    def __init__(self, source, scale: int, patch_size: int = 51, degradation: Union[str, Step] = "bicubic",
                 patches_per_image: int = 16, augment: bool = True, y_only: bool = False,
                 lr_cache: Union[str, os.PathLike, None] = None):
        check_int(scale, "PairedPatches: scale", minimum=1)
        check_int(patch_size, f"PairedPatches: patch_size (HR pixels, at least scale={scale})", minimum=scale)
        if not isinstance(degradation, Step):
            check_choice(degradation, preset_names(), "PairedPatches: degradation")  # or a Pipeline
        check_int(patches_per_image, "PairedPatches: patches_per_image", minimum=1)
        self.scale, self.patch = scale, patch_size - patch_size % scale
        self.degradation, self.patches_per_image = degradation, patches_per_image
        self.augment, self.y_only = augment, y_only
        if lr_cache is not None and not isinstance(lr_cache, (str, os.PathLike)):
            raise InputError(f"PairedPatches: lr_cache must be None, 'memory' or a folder, "
                             f"got {type(lr_cache).__name__}")
        self.lr_cache = lr_cache if lr_cache in (None, "memory") else Path(lr_cache)
        self._lr_memory: dict = {}
        self._decoded: OrderedDict = OrderedDict()
        self.skipped: dict[str, str] = {}

        if isinstance(source, (str, os.PathLike)):
            self.items: list = list_images(source)
            self.names = [str(p) for p in self.items]
        elif isinstance(source, Mapping):
            self.names, self.items = [str(k) for k in source], list(source.values())
        elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
            self.items = list(source)
            self.names = [str(x) if isinstance(x, (str, os.PathLike)) else f"image{i}"
                          for i, x in enumerate(self.items)]
        else:
            raise TypeError(f"PairedPatches: source must be a folder, a list of paths or images, or a dict; "
                            f"got {type(source).__name__}")
        if not self.items:
            raise ValueError("PairedPatches: source holds no images")
        for i, item in enumerate(self.items):
            if isinstance(item, torch.Tensor):
                check_image_tensor(item, f"PairedPatches: image {self.names[i]}", batched=False)
            elif not isinstance(item, (str, os.PathLike, Image.Image)):
                raise TypeError(f"PairedPatches: item {i} must be a path, a PIL image or a tensor, "
                                f"got {type(item).__name__}")

    def __len__(self) -> int:
        return len(self.items) * self.patches_per_image

    def _image(self, k: int) -> torch.Tensor:
        if k in self._decoded:
            self._decoded.move_to_end(k)
            return self._decoded[k]
        item = self.items[k]
        if isinstance(item, torch.Tensor):
            img = item.float()
        elif isinstance(item, Image.Image):
            img = to_tensor(item.convert("RGB"))
        else:
            img = load_tensor(item)  # raises ValueError naming the file
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        self._decoded[k] = img
        if len(self._decoded) > 8:  # the last few decoded images, per process
            self._decoded.popitem(last=False)
        return img

    def _cached_lr(self, k: int, hr: torch.Tensor) -> torch.Tensor:
        if self.lr_cache == "memory":
            if k not in self._lr_memory:
                self._lr_memory[k] = degrade(hr, self.scale, self.degradation, seed=k)
            return self._lr_memory[k]
        key = hashlib.sha1(f"{self.names[k]}|{self.scale}|{self.degradation!r}".encode()).hexdigest()[:16]
        path = self.lr_cache / f"{key}.png"
        if path.is_file():
            try:
                return load_tensor(path)
            except ValueError:
                path.unlink(missing_ok=True)  # a cache file cut short by an interrupt: rebuild it
        lr = degrade(hr, self.scale, self.degradation, seed=k)
        save_image(lr, path)  # atomic (temp + rename); PNG is lossless up to 8-bit rounding
        return load_tensor(path)

    def _usable(self, k: int) -> torch.Tensor | None:
        name = self.names[k]
        if name in self.skipped:
            return None
        try:
            img = self._image(k)
        except (ValueError, OSError) as exc:
            self.skipped[name] = str(exc)
            warnings.warn(f"PairedPatches: skipping unreadable image ({len(self.skipped)} skipped so far): {exc}")
            return None
        h, w = img.shape[-2:]
        if h < self.patch or w < self.patch:
            self.skipped[name] = f"{h}x{w} is smaller than the {self.patch}px patch"
            warnings.warn(f"PairedPatches: skipping {name}: {h}x{w} pixels is smaller than the "
                          f"{self.patch}x{self.patch} patch ({len(self.skipped)} skipped so far)")
            return None
        return img

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"PairedPatches: index {index} out of range for {len(self)} samples")
        k0 = index // self.patches_per_image
        for attempt in range(len(self.items)):
            k = (k0 + attempt) % len(self.items)
            img = self._usable(k)
            if img is not None:
                return self._sample(k, img)
        raise ValueError(f"PairedPatches: none of the {len(self.items)} images is usable "
                         f"(unreadable or smaller than {self.patch}px): {list(self.skipped.items())[:3]}")

    def _sample(self, k: int, img: torch.Tensor):
        r, p = self.scale, self.patch
        h, w = img.shape[-2:]
        # corner aligned to the scale, so that LR(crop) == crop(LR) on the cached path
        top = int(torch.randint(0, (h - p) // r + 1, ())) * r
        left = int(torch.randint(0, (w - p) // r + 1, ())) * r
        if self.lr_cache is not None:
            hr_full = img[:, : h - h % r, : w - w % r]
            lr_full = self._cached_lr(k, hr_full)
            hr = hr_full[:, top: top + p, left: left + p]
            lr = lr_full[:, top // r: (top + p) // r, left // r: (left + p) // r]
        else:
            hr = img[:, top: top + p, left: left + p]
            seed = int(torch.randint(0, 2**31 - 1, ()))
            lr = None
        if self.augment:
            flip_h, flip_v, rot = (bool(torch.randint(0, 2, ())) for _ in range(3))
            dims = [d for d, flip in ((-1, flip_h), (-2, flip_v)) if flip]

            def aug(t):
                t = t.flip(dims) if dims else t
                return t.transpose(-1, -2) if rot else t
            hr, lr = aug(hr), (None if lr is None else aug(lr))
        if lr is None:
            lr = degrade(hr, r, self.degradation, seed=seed)
        if self.y_only:
            hr, lr = rgb_to_y(hr), rgb_to_y(lr)
        return lr.contiguous(), hr.contiguous()


def zone_plate(size: int = 256) -> torch.Tensor:
    """A circular zone plate ``(3, size, size)``: ``0.5 + 0.5 cos(pi r^2 / size)``.

    Its local frequency grows linearly from 0 at the centre to the Nyquist limit (0.5 cycles/pixel) at the
    edge midpoints, so downscaling it shows aliasing (false rings) wherever a kernel lets frequencies above
    the new Nyquist through.
    """
    check_int(size, "zone_plate: size", minimum=8)
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    r2 = c[None, :] ** 2 + c[:, None] ** 2
    img = 0.5 + 0.5 * torch.cos(torch.pi * r2 / size)
    return img.float().expand(3, -1, -1).clone()
