"""Training (with the course's one loop, ``core.training.fit``) and evaluating segmentation networks."""
from __future__ import annotations

import copy
import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..core.checkpoints import atomic_save, load_pretrained
from ..core.checks import InputError, check_choice, check_int, check_number, check_size, check_tensor
from ..core.training import fit
from . import losses as L
from .inference import _eval_mode
from .metrics import IoUMeter, iou
from .portraits import PortraitFolder, _resize_pair
from .pspnet import PSPNet, pspnet

__all__ = ["LOSSES", "make_loss", "PreloadedPortraits", "poly_schedule", "train_segmentation",
           "evaluate_segmentation", "predict_logits", "TTA", "load_pspnet", "pretrained", "SHIPPED", "compare_losses"]

#: Loss names understood by :func:`make_loss`.
LOSSES = ("bce", "jaccard", "combined", "dice", "focal", "lovasz")


def make_loss(name: str = "combined", *, jaccard_weight: float = 0.5, aux_weight: float = 0.4) -> Callable:
    """``loss(outputs, target) -> (scalar, logs)`` for :func:`core.training.fit`.

    ``outputs`` is a logits tensor ``(N, 1, H, W)`` or PSPNet's training dict ``{"out": ..., "aux": ...}``; the
    auxiliary loss is added with weight ``aux_weight`` (0.4 in the PSPNet paper). ``logs`` holds the main loss,
    the soft IoU and the hard IoU of the batch, so that a training curve shows them.
    """
    check_choice(name, LOSSES, "make_loss: name")
    check_number(aux_weight, "make_loss: aux_weight", low=0)
    base = {"bce": L.bce_loss, "jaccard": L.soft_jaccard_loss, "dice": L.dice_loss, "focal": L.focal_loss,
            "lovasz": L.lovasz_hinge_loss,
            "combined": functools.partial(L.combined_loss, jaccard_weight=jaccard_weight)}[name]

    def loss(outputs, target):
        out = outputs["out"] if isinstance(outputs, dict) else outputs
        main = base(out, target)
        aux = outputs.get("aux") if isinstance(outputs, dict) and aux_weight else None
        total = main if aux is None else main + aux_weight * base(aux, target)
        with torch.no_grad():
            hard = iou(out.detach().float(), target, from_logits=True).mean()
        return total, {"main": float(main.detach()), "iou": float(hard)}

    loss.__name__ = f"{name}_loss"
    return loss


def _pairs(data, limit: Optional[int], fn: str):
    """``(data, n, get)`` for a dataset of (image, mask) pairs or a pair of tensors; ``get(i)`` checks pair ``i``."""
    if isinstance(data, PortraitFolder):  # counted on its readable view (see PortraitFolder.readable)
        data = data.readable(limit=limit)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        images, masks = data
        if images.dim() != 4 or images.shape[1] != 3 or masks.dim() != 4 or masks.shape[1] != 1 \
                or images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
            raise InputError(f"{fn}: expected images (N, 3, H, W) and masks (N, 1, H, W) of the same N, H, W; "
                             f"got {tuple(images.shape)} and {tuple(masks.shape)}")
        n, item = images.shape[0], lambda i: (images[i], masks[i])
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        n, item = len(data), data.__getitem__
    else:
        raise InputError(f"{fn}: data must be a dataset of (image, mask) pairs or a pair of tensors, "
                         f"got {type(data).__name__}")
    n = n if limit is None else min(n, check_int(limit, f"{fn}: limit", minimum=1))
    if n == 0:
        raise InputError(f"{fn}: no images (data must be a non-empty dataset of (image, mask) pairs)")

    def get(i: int):
        img, mask = item(i)
        if not (isinstance(img, torch.Tensor) and isinstance(mask, torch.Tensor) and img.dim() == 3
                and mask.dim() in (2, 3) and img.shape[-2:] == mask.shape[-2:]):
            raise InputError(f"{fn}: item {i} must be (image (3, H, W), mask (1, H, W)) that do not differ in size, "
                             f"got {tuple(getattr(img, 'shape', ()))} and {tuple(getattr(mask, 'shape', ()))}")
        return img, mask.reshape(1, *mask.shape[-2:])

    return data, n, get


class PreloadedPortraits(Dataset):
    """All (image, mask) pairs of ``source`` resized to ``size`` and kept in memory, augmented per item.

    A JPEG decode and resize per sample would cost more than the network on a 2-core CPU: they are done once here.

    Args:
        source: a dataset of ``(image (3, H, W), mask (1, H, W))`` pairs (a :class:`.PortraitFolder` without
            augmentation, say), or a pair of tensors ``(images (N, 3, H, W), masks (N, 1, H, W))``.
        size: ``(H, W)`` kept in memory (bilinear with antialiasing for images, area + threshold 0.5 for masks).
        augment: ``None`` or a callable ``(image, mask) -> (image, mask)`` (a :class:`.PortraitAugment`, say),
            applied each time an item is read, so every epoch sees new variants.
        limit: keep at most this many pairs.
        cache: a file path where the decoded tensors are saved and reused by the next run over the same files
            (paths, sizes, modification times) at the same size. Only for a ``PortraitFolder`` source.

    Memory: ``N * (3 + 1) * H * W`` bytes (stored as uint8).
    """

    def __init__(self, source, size, *, augment: Optional[Callable] = None, limit: Optional[int] = None,
                 progress: bool = True, cache=None):
        self.size = check_size(size, "PreloadedPortraits: size", minimum=8)
        if augment is not None and not callable(augment):
            raise TypeError(f"PreloadedPortraits: augment must be callable or None, got {type(augment).__name__}")
        self.augment = augment
        source, n, get = _pairs(source, limit, "PreloadedPortraits")
        key = self._cache_key(source, n) if cache is not None else None
        if key is not None and Path(cache).is_file():
            try:
                saved = torch.load(cache, map_location="cpu", weights_only=True)
            except Exception as exc:  # a corrupt cache is only a cache: decode again
                warnings.warn(f"PreloadedPortraits: ignoring unreadable cache {cache} ({type(exc).__name__})")
                saved = {}
            if saved.get("key") == key:
                self.images, self.masks = saved["images"], saved["masks"]
                return
        self.images = torch.empty(n, 3, *self.size, dtype=torch.uint8)
        self.masks = torch.empty(n, 1, *self.size, dtype=torch.uint8)
        for i in tqdm(range(n), desc="loading portraits", disable=not progress):
            img, mask = _resize_pair(*get(i), self.size)
            self.images[i] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
            self.masks[i] = mask >= 0.5
        if key is not None:
            atomic_save({"key": key, "images": self.images, "masks": self.masks}, cache)

    def _cache_key(self, source, n: int):
        """A fingerprint of the files behind ``source``: paths, sizes and modification times; None if unknown."""
        pairs = getattr(source, "pairs", None)
        if not isinstance(pairs, list) or len(pairs) < n:
            return None  # only a PortraitFolder's files can be fingerprinted
        h = hashlib.sha256()
        for _, img, mask in pairs[:n]:
            for f in (img, mask):
                st = os.stat(f)
                h.update(f"{os.path.abspath(f)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {"n": n, "size": list(self.size), "files": h.hexdigest()}

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        img, mask = self.images[i].float() / 255, self.masks[i].float()
        if self.augment is not None:
            img, mask = self.augment(img, mask)
        return img, mask

    @property
    def foreground_fraction(self) -> float:
        return float(self.masks.float().mean())


class StreamedPortraits(Dataset):
    """The items of :class:`PreloadedPortraits`, read from disk each time: for folders too large for memory.

    Each pair is decoded, resized and rounded to 8 bits exactly as ``PreloadedPortraits`` stores it, so training
    sees the same values; only the memory (none) and the time per item (a decode) differ. Use DataLoader workers
    (``--workers``) to hide the decoding.
    """

    def __init__(self, source, size, *, augment: Optional[Callable] = None, limit: Optional[int] = None):
        self.size = check_size(size, "StreamedPortraits: size", minimum=8)
        if augment is not None and not callable(augment):
            raise TypeError(f"StreamedPortraits: augment must be callable or None, got {type(augment).__name__}")
        self.augment = augment
        self.source, self.n, self._get = _pairs(source, limit, "StreamedPortraits")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        img, mask = _resize_pair(*self._get(i), self.size)
        img, mask = (img.clamp(0, 1) * 255).round() / 255, (mask >= 0.5).float()
        if self.augment is not None:
            img, mask = self.augment(img, mask)
        return img, mask


def poly_schedule(steps: int, power: float = 0.9, warmup: int = 0) -> Callable:
    """``optimizer -> LambdaLR``: linear warm-up, then ``(1 - t/steps)^power`` (the PSPNet paper's "poly")."""
    check_int(steps, "poly_schedule: steps", minimum=1)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1 - step / steps) ** power

    return lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _iou_metric(pred, target):
    out = pred["out"] if isinstance(pred, dict) else pred
    return iou(out, target, from_logits=True)


def train_segmentation(model: torch.nn.Module, train_data, val_data=None, *, steps: int, loss: str = "combined",
                       jaccard_weight: float = 0.5, aux_weight: float = 0.4, batch_size: int = 8, lr: float = 1e-3,
                       weight_decay: float = 1e-4, warmup: int = 0, checkpoint=None, eval_every: Optional[int] = None,
                       seed: int = 0, progress: bool = True, device=None, run_config=None, **fit_kwargs):
    """Train a binary segmentation network (logits ``(N, 1, H, W)``) with :func:`core.training.fit`.

    AdamW (``lr``, ``weight_decay``) with :func:`poly_schedule`; the loss from :func:`make_loss`; validation
    reports the loss and ``miou`` (mean per-image IoU at threshold 0.5 at the training resolution -- use
    :func:`evaluate_segmentation` for the masks' own resolution). Calling again with the same ``checkpoint`` and
    settings resumes; a checkpoint of other settings (loss, lr, ``steps``: the poly schedule spans them, ...;
    ``run_config`` adds the caller's, e.g. the data) is refused. Returns ``fit``'s ``FitResult``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"train_segmentation: model must be an nn.Module, got {type(model).__name__}")
    loss_fn = make_loss(loss, jaccard_weight=jaccard_weight, aux_weight=aux_weight)
    optimizer = lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)  # noqa: E731
    run = {"loss_weights": {"jaccard": jaccard_weight, "aux": aux_weight},
           "schedule": f"poly over {steps} steps, warm-up {warmup}", **dict(run_config or {})}
    return fit(model, loss_fn, train_data, val_data, steps=steps, batch_size=batch_size, lr=lr,
               optimizer=optimizer, scheduler=poly_schedule(steps, warmup=warmup),
               metrics={"miou": _iou_metric}, eval_every=eval_every, checkpoint=checkpoint, seed=seed,
               progress=progress, device=device, desc=f"segmentation ({loss})", run_config=run, **fit_kwargs)


#: Test-time augmentation of ``evaluate --tta``: both mirror images at the training size and 1.25x it.
TTA = {"scales": (1.0, 1.25), "flip": True}


def _tta(scales, flip, fn: str) -> Tuple[Tuple[float, ...], bool]:
    scales = (scales,) if isinstance(scales, (int, float)) else scales
    if not isinstance(scales, (tuple, list)) or not scales:
        raise InputError(f"{fn}: scales must be a non-empty sequence of factors in [0.25, 4], got {scales!r}")
    if not isinstance(flip, bool):
        raise InputError(f"{fn}: flip must be True or False, got {flip!r}")
    return tuple(check_number(s, f"{fn}: scales[{i}]", low=0.25, high=4) for i, s in enumerate(scales)), flip


def predict_logits(model: torch.nn.Module, images: torch.Tensor, *, size=None, scales=(1.0,),
                   flip: bool = False) -> torch.Tensor:
    """Logits ``(N, 1, H, W)`` of ``model`` for ``images`` ``(N, 3, H, W)`` in [0, 1], at the images' size.

    With ``size=(h, w)`` the network runs on images resized to that size (the
    resolution it was trained at) and the logits are resized back bilinearly.

    Test-time augmentation: ``scales`` runs the network at each factor times ``size`` (rounded to a multiple of
    8) and ``flip=True`` also on the mirror image (its logits mirrored back); the logits of all runs are
    averaged. ``scales=(1.0, 1.25), flip=True`` (:data:`TTA`) costs about 5x one pass.
    """
    check_tensor(images, "predict_logits: images", dims=4, channels=3, shape_hint="(N, 3, H, W)")
    size = None if size is None else check_size(size, "predict_logits: size", minimum=8)
    return _predict(model, images, size, *_tta(scales, flip, "predict_logits"))


def _predict(model: torch.nn.Module, images: torch.Tensor, size, scales, flip: bool) -> torch.Tensor:
    h, w = images.shape[-2:]
    x0 = images.to(next(model.parameters()).device).float()
    base = size or (h, w)
    total, runs = 0, 0
    with _eval_mode(model):
        for scale in scales:
            target = base if scale == 1.0 else tuple(max(8, int(v * scale / 8 + 0.5) * 8) for v in base)
            x = x0 if target == (h, w) else F.interpolate(x0, size=target, mode="bilinear", antialias=True,
                                                          align_corners=False)
            for mirrored in ((False, True) if flip else (False,)):
                out = model(x.flip(-1) if mirrored else x)
                out = out["out"] if isinstance(out, dict) else out
                out = out.flip(-1) if mirrored else out
                if out.shape[-2:] != (h, w):
                    out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
                total, runs = total + out, runs + 1
    return (total / runs).float().cpu()


def evaluate_segmentation(model: torch.nn.Module, data, *, size=None, threshold: float = 0.5,
                          limit: Optional[int] = None, progress: bool = True, scales=(1.0,),
                          flip: bool = False) -> dict:
    """Mean per-image IoU and dataset IoU of ``model`` over ``data`` at the masks' resolution.

    ``data``: a dataset of ``(image (3, H, W), mask (1, H, W))`` pairs (images may differ in size) or a pair of
    tensors. ``size``: run the network at this ``(H, W)`` (its training resolution) and resize the logits back
    to each mask. Returns ``{"miou", "dataset_iou", "pixel_accuracy", "n", "per_image"}`` with the conventions
    of :func:`course_lib.segmentation.metrics.iou` (an empty mask predicted empty counts as IoU 1). ``scales``,
    ``flip``: test-time augmentation, see :func:`predict_logits`.
    """
    scales, flip = _tta(scales, flip, "evaluate_segmentation")
    size = None if size is None else check_size(size, "evaluate_segmentation: size", minimum=8)
    data, n, get = _pairs(data, limit, "evaluate_segmentation")
    meter = IoUMeter(threshold=threshold, from_logits=True)
    per_image = []
    for i in tqdm(range(n), desc="evaluate", disable=not progress):
        img, mask = get(i)
        logits = _predict(model, img[None], size, scales, flip)
        meter.update(logits, mask[None])
        per_image.append(float(iou(logits, mask[None], from_logits=True, threshold=threshold)[0]))
    # n_skipped: the unreadable pairs left out of the scores
    return {**meter.compute(), "per_image": per_image, "n_skipped": len(getattr(data, "skipped", {}))}


#: The shipped portrait checkpoint (package data, so that ``pip install`` carries it).
SHIPPED = "pspnet_portrait.pt"


def load_pspnet(path) -> tuple:
    """A :class:`PSPNet` saved by ``save_pretrained`` (e.g. by ``python -m course_lib.segmentation train``).

    Returns ``(model, sidecar)``, the model in eval mode on the CPU. The backbone's
    ImageNet weights are not looked up: the checkpoint holds all the weights.
    """
    return load_pretrained(path, lambda **config: PSPNet.from_config(dict(config, pretrained=False), verbose=False),
                           arch=PSPNet.arch)


def pretrained() -> tuple:
    """The shipped portrait-segmentation PSPNet and its sidecar (how it was trained, its held-out IoU)."""
    path = Path(__file__).resolve().parent.parent / "checkpoints" / SHIPPED
    if not path.is_file():
        raise FileNotFoundError(f"pretrained: the shipped checkpoint {path} is missing; reinstall course_lib or "
                                "train one with `python -m course_lib.segmentation train --out PATH`")
    return load_pspnet(path)


def compare_losses(train_data, val_data, *, losses: Sequence[str] = ("bce", "jaccard", "combined"),
                   model_fn: Optional[Callable[[], torch.nn.Module]] = None, steps: int = 200,
                   jaccard_weight: float = 0.5, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
                   progress: bool = False) -> tuple:
    """Train the same network from the same initial weights with each loss; IoU on ``val_data``.

    ``train_data``: a dataset of ``(image, mask)`` pairs; ``val_data``: a pair of tensors
    ``(images (N, 3, H, W), masks (N, 1, H, W))`` or a dataset. ``model_fn`` builds the network (default: the
    ``light`` PSPNet). Returns ``(rows, models)``: one row per loss with ``mean IoU``, ``dataset IoU`` and
    ``pixel accuracy`` (threshold 0.5), and the trained models by loss name.
    """
    for name in losses:
        check_choice(name, LOSSES, "compare_losses: each of losses")
    torch.manual_seed(seed)
    initial = model_fn() if model_fn is not None else pspnet("light", verbose=False)
    labels = {"bce": "NLL (BCE)", "jaccard": "soft Jaccard", "combined": f"mix (w = {jaccard_weight:g})",
              "dice": "Dice", "focal": "focal", "lovasz": "Lovász hinge"}
    rows, models = [], {}
    for name in losses:
        model = copy.deepcopy(initial)
        res = train_segmentation(model, train_data, None, steps=steps, loss=name, jaccard_weight=jaccard_weight,
                                 batch_size=min(batch_size, len(train_data)), lr=lr, warmup=max(1, steps // 10),
                                 seed=seed, progress=progress)
        m = evaluate_segmentation(res.model, val_data, progress=False)
        models[name] = res.model.eval()
        rows.append({"loss": labels[name], "mean IoU": m["miou"], "dataset IoU": m["dataset_iou"],
                     "pixel accuracy": m["pixel_accuracy"]})
    return rows, models
