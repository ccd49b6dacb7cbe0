"""Training fast (feed-forward) style transfer: Johnson, Alahi and Fei-Fei, ECCV 2016.

Gatys et al. optimise the *pixels* of one image for hundreds of L-BFGS steps. Johnson et al. train a
network, the :class:`~course_lib.style.transformer.TransformerNet`, to map any content image ``y`` to
its stylised version ``ŷ = f(y)`` in one forward pass, with the perceptual loss as the objective:

    L(ŷ, y) = λ_c ‖φ_relu2_2(ŷ) − φ_relu2_2(y)‖²
            + λ_s Σ_{j ∈ relu1_2, relu2_2, relu3_3, relu4_3} ‖G_j(ŷ) − G_j(s)‖²
            + λ_tv TV(ŷ)

where ``φ_j`` are VGG16 features, ``s`` the style image and ``G_j`` the Gram matrix of layer ``j``
(normalised by ``C·H·W``). The squared norms are means (MSE), so the weights do not depend on the size.
:func:`train_fast` trains with it through :func:`course_lib.core.training.fit` on :class:`StyleContentData`'s
``(x, x)`` pairs (``fit``'s default forward yields ``(model(x), x)``); :func:`apply` stylises any image.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from ..core import distributed
from ..core.checks import InputError, check_int, check_number, check_size, check_tensor
from ..core.images import IMAGE_EXTENSIONS, load_image, load_tensor, to_pil, to_tensor
from ..core.training import data_fingerprint, fit
from .features import VGGFeatures
from .losses import gram_matrix, total_variation
from .transformer import TransformerNet, TransformerNetConfig

__all__ = ["TransformerNetConfig", "TransformerNet", "StyleContentData", "PerceptualLoss", "train_fast", "apply",
           "frames_per_second", "CONTENT_LAYER", "STYLE_LAYERS"]

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


class PerceptualLoss(nn.Module):
    """Johnson et al.'s loss: content MSE at relu2_2 + Gram MSE at relu1_2..relu4_3 + TV.

    ``features`` maps an image batch ``(N, 3, H, W)`` in [0, 1] to a dict ``{layer: (N, C, h, w)}`` holding at least
    ``content_layer`` and the ``style_layers`` (e.g. ``VGGFeatures(layers=[...], arch="vgg16")``); it is frozen here.
    ``style_image`` is ``(3, H, W)``, ``(N, 3, H, W)`` or a list of such: the target Gram of each layer is computed
    **once**, here, and averaged over the style images. The default weights are starting points, not tuned values
    (Johnson's TV weights 1e-6..1e-4 were for a *summed* TV on 0-255 images, far too small for this mean-based TV).

    ``forward(pred, content)`` returns ``(loss, {"content", "style", "tv"})`` with the three *weighted*
    terms -- the format ``fit`` logs.
    """

    def __init__(self, features: nn.Module, style_image, *, content_weight: float = 1.0,
                 style_weight: float = 1e5, tv_weight: float = 1e-2,
                 content_layer: str = CONTENT_LAYER, style_layers: Sequence[str] = STYLE_LAYERS):
        super().__init__()
        if not callable(features):
            raise InputError(f"PerceptualLoss: features must be a module returning a dict, "
                             f"got {type(features).__name__}")
        self.content_weight, self.style_weight, self.tv_weight = (
            check_number(v, f"PerceptualLoss: {name}", low=0.0)
            for name, v in (("content_weight", content_weight), ("style_weight", style_weight),
                            ("tv_weight", tv_weight)))
        self.content_layer, self.style_layers = content_layer, tuple(style_layers)
        if not self.style_layers:
            raise InputError("PerceptualLoss: style_layers is empty")
        self.features = features
        if isinstance(features, nn.Module):
            features.eval().requires_grad_(False)

        styles = style_image if isinstance(style_image, (list, tuple)) else [style_image]
        styles = [t for s in styles for t in (s if isinstance(s, torch.Tensor) and s.dim() == 4 else [s])]
        if not styles:
            raise InputError("PerceptualLoss: no style image given")
        min_side = getattr(features, "min_side", None)  # VGGFeatures knows how often it pools
        grams = {k: [] for k in self.style_layers}
        with torch.no_grad():
            for i, s in enumerate(styles):
                check_tensor(s, f"PerceptualLoss: style image {i}", dims=3, channels=3, floating=True,
                             shape_hint="(3, H, W)")
                if isinstance(min_side, int) and min(s.shape[-2:]) < min_side:
                    raise InputError(f"PerceptualLoss: the style image is {s.shape[-1]}x{s.shape[-2]} pixels; "
                                     f"each side needs >= {min_side} pixels for the loss network "
                                     f"(it pools {min_side.bit_length() - 1} time(s) before its deepest layer)")
                feats = self.features(s[None].float().to(_module_device(features)))
                missing = [k for k in (self.content_layer, *self.style_layers) if k not in feats]
                if missing:
                    raise KeyError(f"PerceptualLoss: the feature extractor did not return layer(s) {missing}; "
                                   f"it returned {sorted(feats)}")
                for k in self.style_layers:
                    grams[k].append(_gram(feats[k])[0])
        for j, k in enumerate(self.style_layers):
            # buffers follow .to(device); not persistent: they are derived data
            self.register_buffer(f"_gram_{j}", torch.stack(grams[k]).mean(0, keepdim=True), persistent=False)

    def forward(self, pred: torch.Tensor, content: torch.Tensor):
        if self._gram_0.device != pred.device:
            self.to(pred.device)
        fp = self.features(pred)
        with torch.no_grad():
            fc = self.features(content)[self.content_layer]
        content_term = F.mse_loss(fp[self.content_layer].float(), fc.float())
        style_term = sum(F.mse_loss(_gram(fp[k]), target.expand(len(pred), -1, -1))
                         for k, target in self.target_grams().items())
        parts = {"content": self.content_weight * content_term, "style": self.style_weight * style_term,
                 "tv": self.tv_weight * total_variation(pred.float())}
        return sum(parts.values()), {k: v.detach() for k, v in parts.items()}

    def target_grams(self) -> dict[str, torch.Tensor]:
        """``{layer: (1, C, C)}``: the style targets computed at construction."""
        return {k: getattr(self, f"_gram_{j}") for j, k in enumerate(self.style_layers)}


def _gram(f: torch.Tensor) -> torch.Tensor:
    # Grams in float32 even under CUDA autocast: sums over H*W overflow float16.
    with torch.autocast(f.device.type, enabled=False):
        return gram_matrix(f.float())


class StyleContentData(Dataset):
    """Random ``size × size`` crops (and horizontal flips) of content images, as ``(x, x)`` pairs.

    ``images`` is a list/tuple of tensors ``(3, H, W)`` in [0, 1], an ``(N, 3, H, W)`` tensor, a dict
    ``name -> tensor``, a folder of image files or a list of image file paths. A folder is listed on first
    use and each file read when a crop of it is asked for, so 80k COCO images cost no memory. An image
    smaller than ``size`` is first scaled up (bilinear) so that its short side is ``size``.

    ``length`` is the number of crops per epoch (default: one per image); item ``i`` is a crop of image
    ``i % n_images``. Crop position and flip come from torch's global generator, which ``fit`` seeds and
    restores on resume. A file that cannot be read is skipped with a warning and counted
    (``dataset.skipped``: path -> reason); the next readable image stands in.
    """

    def __init__(self, images, size: int = 256, *, length: int | None = None, flip: bool = True):
        self.size = check_int(size, "StyleContentData: size", minimum=1)
        self._length = None if length is None else check_int(length, "StyleContentData: length", minimum=1)
        self.flip = bool(flip)
        self._folder, self._files, self._tensors = None, None, None  # a folder, image files or (3, H, W) tensors
        self.skipped: dict[str, str] = {}
        if isinstance(images, (str, os.PathLike)):
            self._folder = Path(images)
            if not self._folder.is_dir():
                raise FileNotFoundError(f"StyleContentData: folder {self._folder} does not exist")
        elif isinstance(images, (list, tuple)) and images and all(isinstance(p, (str, os.PathLike)) for p in images):
            self._files = [Path(p) for p in images]  # image files (e.g. a COCO subset)
            self._folder = self._files[0].parent
        else:
            if isinstance(images, Mapping):
                items = list(images.items())
            elif isinstance(images, (list, tuple)) or (isinstance(images, torch.Tensor) and images.dim() == 4):
                items = [(f"[{i}]", t) for i, t in enumerate(images)]
            else:
                raise InputError("StyleContentData: images must be a list/dict of (3, H, W) tensors, an "
                                 f"(N, 3, H, W) tensor or a folder path, got {type(images).__name__}")
            if not items:
                raise InputError("StyleContentData: no content images given")
            self._tensors = [check_tensor(t, f"StyleContentData: content image {name}", dims=3, channels=3,
                                          floating=True, shape_hint="(3, H, W)").detach().float().cpu()
                             for name, t in items]

    def _list(self) -> list[Path]:
        if self._files is None:
            self._files = sorted(p for p in self._folder.rglob("*")
                                 if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not self._files:
                raise InputError(f"StyleContentData: folder {self._folder} holds no image files "
                                 f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
        return self._files

    @property
    def n_images(self) -> int:
        return len(self._tensors) if self._tensors is not None else len(self._list())

    def __len__(self) -> int:
        return self._length if self._length is not None else self.n_images

    def _image(self, k: int) -> torch.Tensor:
        if self._tensors is not None:
            return self._tensors[k]
        files = self._list()
        for attempt in range(len(files)):
            path = files[(k + attempt) % len(files)]
            if str(path) in self.skipped:
                continue
            try:
                return load_tensor(path, mode="RGB")  # ValueError naming the file when unreadable
            except (ValueError, OSError) as exc:
                self.skipped[str(path)] = str(exc)
                warnings.warn(f"StyleContentData: skipping unreadable image ({len(self.skipped)} skipped so far): "
                              f"{exc}", stacklevel=3)
        raise ValueError(f"StyleContentData: none of the {len(files)} image files in {self._folder} is readable: "
                         + "; ".join(list(self.skipped.values())[:3]))

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(f"StyleContentData: index {i} out of range for length {len(self)}")
        img, s = self._image(i % self.n_images), self.size
        h, w = img.shape[-2:]
        if min(h, w) < s:
            f = s / min(h, w)
            img = F.interpolate(img[None], size=(max(s, round(h * f)), max(s, round(w * f))),
                                mode="bilinear", align_corners=False)[0].clamp(0, 1)
            h, w = img.shape[-2:]
        top, left = int(torch.randint(0, h - s + 1, ())), int(torch.randint(0, w - s + 1, ()))
        x = img[:, top:top + s, left:left + s]
        x = (x.flip(-1) if self.flip and bool(torch.rand(()) < 0.5) else x).contiguous()
        return x, x


def train_fast(content_images, style_image, *, size: int = 256, steps: int, batch_size: int = 4, lr: float = 1e-3,
               content_weight: float = 1.0, style_weight: float = 1e5, tv_weight: float = 1e-2, checkpoint=None,
               features: nn.Module | None = None, width: float = 1.0, progress: bool = True, seed: int = 0,
               model: TransformerNet | None = None, **fit_kwargs):
    """Train a :class:`TransformerNet` for one style with :func:`core.training.fit`.

    ``content_images``: anything :class:`StyleContentData` takes, or a ready Dataset of ``(x, x)`` pairs.
    ``style_image``: what :class:`PerceptualLoss` takes (used at its own size). ``features`` defaults to
    ``VGGFeatures(layers=STYLE_LAYERS, arch="vgg16", weights="auto")``. ``checkpoint``: a path; calling again with
    the same path and settings resumes (a larger ``steps`` trains longer), a checkpoint of other settings is
    refused. Other keywords (``eval_every``, ``checkpoint_every``, ``device``, ``callback``, ...) go to ``fit``.

    Returns ``fit``'s :class:`FitResult`: ``result.model`` is the trained net, ``result.extra["config"]`` its
    config dict and ``result.extra["skipped"]`` the unreadable content files skipped (path -> reason).
    """
    if isinstance(content_images, Dataset):
        data = content_images
    else:
        n = StyleContentData(content_images, size).n_images
        # at least one global batch (batch_size per process, times accumulate, times the processes)
        global_batch = batch_size * fit_kwargs.get("accumulate", 1) * distributed.world_size()
        data = StyleContentData(content_images, size, length=max(n, global_batch))
    if features is None:
        features = VGGFeatures(layers=list(STYLE_LAYERS), arch="vgg16", weights="auto")
    min_side, crop = getattr(features, "min_side", None), getattr(data, "size", None)
    if isinstance(min_side, int) and isinstance(crop, int) and crop < min_side:
        raise InputError(f"train_fast: crops of {crop}x{crop} pixels are too small for the loss network: it pools "
                         f"{min_side.bit_length() - 1} time(s) before its deepest layer, so each side needs "
                         f">= {min_side} pixels (the TransformerNet itself takes any size)")
    loss_fn = PerceptualLoss(features, style_image, content_weight=content_weight,
                             style_weight=style_weight, tv_weight=tv_weight)
    if model is None:
        torch.manual_seed(seed)  # the initial weights depend on the seed only
        model = TransformerNet(width=width)
    elif not isinstance(model, TransformerNet):
        raise InputError(f"train_fast: model must be a TransformerNet, got {type(model).__name__}")
    # what defines the run besides what fit records (no schedule here: more steps train the same run longer)
    content = content_images
    if isinstance(content, StyleContentData):
        content = content._tensors if content._tensors is not None else content._list()
    run = {"content": data_fingerprint(content), "crop": getattr(data, "size", None),
           "style": data_fingerprint(style_image),
           "loss_weights": {"content": content_weight, "style": style_weight, "tv": tv_weight},
           "loss_network": getattr(features, "weights_used", type(features).__name__)}
    result = fit(model, loss_fn, data, steps=steps, batch_size=batch_size, lr=lr, checkpoint=checkpoint,
                 seed=seed, progress=progress, desc="fast style", run_config=run, **fit_kwargs)
    result.extra.update(config=model.config_dict(), arch=TransformerNet.arch,
                        skipped=dict(getattr(data, "skipped", {})))  # skipped: unreadable content files (this process)
    return result


def apply(model: nn.Module, image):
    """Stylise ``image`` with ``model``: a tensor ``(3, H, W)``/``(N, 3, H, W)`` in [0, 1] or a PIL image.

    Returns the same kind as given: a tensor of the input's shape, or an RGB PIL image of the same size (gray
    and RGBA inputs are converted to RGB first). Runs in eval mode and restores the model's mode.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"apply: model must be a TransformerNet, got {type(model).__name__}")
    if isinstance(image, Image.Image):
        return to_pil(apply(model, to_tensor(load_image(image, mode="RGB"))).cpu())
    if not isinstance(image, torch.Tensor):
        raise InputError(f"apply: image must be a torch.Tensor (3, H, W) / (N, 3, H, W) in [0, 1] or a PIL image, "
                         f"got {type(image).__name__}")
    check_tensor(image, "apply: image", dims=(3, 4), channels=3, floating=True, shape_hint="(3, H, W) or (N, 3, H, W)")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            y = model(image.to(_module_device(model)))
    finally:
        model.train(was_training)
    return y.to(image.device)


def frames_per_second(model: nn.Module, size=256, repeats: int = 10, *, warmup: int = 2, batch: int = 1) -> float:
    """Images per second of ``model`` on random ``size × size`` inputs (``size`` int or ``(H, W)``).

    Median over ``repeats`` timed runs after ``warmup`` untimed ones, batch ``batch``, under ``inference_mode``
    on the model's device (synchronised on CUDA). Compare in one session, on an otherwise idle machine.
    """
    repeats = check_int(repeats, "frames_per_second: repeats", minimum=1)
    h, w = check_size(size, "frames_per_second: size")
    device = _module_device(model)
    x = torch.rand(check_int(batch, "frames_per_second: batch", minimum=1), 3, h, w, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda device: None)  # time the work, not the launch
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                sync(device)
                t0 = time.perf_counter()
                model(x)
                sync(device)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return batch / sorted(times)[len(times) // 2]


def _module_device(m) -> torch.device:
    if isinstance(m, nn.Module):
        for t in m.parameters():
            return t.device
        for t in m.buffers():
            return t.device
    return torch.device("cpu")
