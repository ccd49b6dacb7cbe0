"""Fast (feed-forward) style transfer: Johnson, Alahi and Fei-Fei, ECCV 2016.

Gatys et al. optimise the *pixels* of one image for hundreds of LBFGS steps.
Johnson et al. instead train a network, the :class:`TransformerNet`, to map
any content image to its stylised version in a single forward pass, with the
same perceptual loss (Gatys' content and style terms on VGG16 features, plus
total variation) as the training objective:

    L(ŷ, y) = λ_c ‖φ_relu2_2(ŷ) − φ_relu2_2(y)‖²
            + λ_s Σ_{j ∈ relu1_2, relu2_2, relu3_3, relu4_3} ‖G_j(ŷ) − G_j(s)‖²
            + λ_tv TV(ŷ)

where ``y`` is the content image, ``s`` the style image and ``G_j`` the Gram
matrix of layer ``j`` (normalised by ``C·H·W``). The squared norms are means
(MSE), so the weights do not depend on the image size.

Pieces, in the order a notebook uses them:

* :class:`TransformerNet` -- the image-to-image network (config dataclass
  :class:`TransformerNetConfig`, ``arch = "transformer_net"``).
* :class:`StyleContentData` -- random crops of content images, as ``(x, x)``
  pairs so that :func:`course_lib.core.training.fit`'s default forward yields
  ``(model(x), x)``.
* :class:`PerceptualLoss` -- the loss above; the style Grams are computed once.
* :func:`train_fast` -- everything wired through ``fit`` (progress bar,
  history, checkpoint and resume).
* :func:`apply`, :func:`optimize_for_inference`, :func:`frames_per_second` --
  stylise images of any size, and how fast; on a CPU the optimised path is
  int8 (post-training quantisation): about 2x the frames per second, output
  within ~40-50 dB PSNR of float32.

Differences from the paper, and why:

* Upsampling is nearest-neighbour ×2 followed by a 3×3 convolution, not a
  strided transposed convolution: the transposed convolution's uneven kernel
  overlap paints checkerboards (Odena, Dumoulin and Olah, Distill 2016).
* Instance normalisation (Ulyanov et al. 2016) instead of batch norm, as in
  the paper's later versions and in ``pytorch/examples``.
* The output goes through a sigmoid (``output="sigmoid"``, the default) so it
  lies in ``(0, 1)`` with a gradient everywhere; ``output="clamp"`` clamps
  instead (gradients vanish outside ``[0, 1]``). Johnson used a scaled tanh.
* ``width`` scales every channel count (32/64/128 at ``width=1``): ``width=0.25``
  gives a network ~16x cheaper for CPU lectures.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

import torch
import torch.nn.functional as F

from .losses import gram_matrix, total_variation
from torch import nn
from torch.utils.data import Dataset

__all__ = [
    "TransformerNetConfig", "TransformerNet", "StyleContentData", "PerceptualLoss",
    "train_fast", "apply", "optimize_for_inference", "frames_per_second",
    "CONTENT_LAYER", "STYLE_LAYERS",
]

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


# ---------------------------------------------------------------------------
# 1. The transformation network
# ---------------------------------------------------------------------------

@dataclass
class TransformerNetConfig:
    """Hyper-parameters of :class:`TransformerNet` (all JSON types, for checkpoints).

    ``width`` multiplies the channel counts 32/64/128; ``residual_blocks`` is 5
    in the paper; ``output`` is ``"sigmoid"`` or ``"clamp"``.
    """

    width: float = 1.0
    residual_blocks: int = 5
    output: str = "sigmoid"

    def __post_init__(self):
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not self.width > 0:
            raise ValueError(f"TransformerNetConfig: width must be a positive number, got {self.width!r}")
        if isinstance(self.residual_blocks, bool) or not isinstance(self.residual_blocks, int) \
                or self.residual_blocks < 0:
            raise ValueError("TransformerNetConfig: residual_blocks must be a non-negative int, "
                             f"got {self.residual_blocks!r}")
        if self.output not in ("sigmoid", "clamp"):
            raise ValueError(f"TransformerNetConfig: output must be 'sigmoid' or 'clamp', got {self.output!r}")
        self.width = float(self.width)

    def channels(self) -> tuple[int, int, int]:
        """The three channel counts (32, 64, 128 at width 1); at least 4 each."""
        return tuple(max(4, int(round(c * self.width))) for c in (32, 64, 128))  # type: ignore[return-value]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TransformerNetConfig":
        if not isinstance(d, Mapping):
            raise TypeError(f"TransformerNetConfig.from_dict: d must be a mapping, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"TransformerNetConfig: unknown key(s) {unknown}; known keys are {known}")
        return cls(**d)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    # Reflection padding instead of zeros: zero borders read as dark edges
    # that the style loss then decorates.
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(c_in, c_out, k, stride=stride))


def _conv_norm_relu(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(*_conv(c_in, c_out, k, stride), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU())


class ResidualBlock(nn.Module):
    """``x + IN(conv3x3(ReLU(IN(conv3x3(x)))))`` -- no ReLU after the sum (Gross and Wilber 2016)."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            _conv_norm_relu(channels, channels, 3),
            *_conv(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 convolution: upsampling without checkerboards."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = _conv_norm_relu(c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network: ``(N, 3, H, W) -> (N, 3, H, W)`` in [0, 1].

    9×9 conv (32) → 3×3 stride-2 convs (64, 128) → 5 residual blocks (128) →
    2 × (nearest ×2 + 3×3 conv) (64, 32) → 9×9 conv to RGB → sigmoid (or clamp).
    Every conv but the last is followed by instance norm (affine) and ReLU.

    Any ``H, W`` works: the input is padded (edge replication) to a multiple
    of 4, at least 8, so the two stride-2 convolutions and the two ×2
    upsamplings give back the padded size exactly, and the output is cropped
    back. A single image ``(3, H, W)`` is accepted too.

    Build it from a :class:`TransformerNetConfig`, a dict, or keywords
    (``TransformerNet(width=0.5)``), so that
    ``core.checkpoints.load_pretrained(path, TransformerNet, arch="transformer_net")``
    rebuilds it.

    Example::

        >>> net = TransformerNet(width=0.25)
        >>> net(torch.rand(2, 3, 37, 53)).shape
        torch.Size([2, 3, 37, 53])
    """

    arch = "transformer_net"

    def __init__(self, config: TransformerNetConfig | Mapping[str, Any] | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = TransformerNetConfig.from_dict(kwargs)
        elif kwargs:
            raise TypeError("TransformerNet: pass either a config or keyword arguments, not both")
        elif isinstance(config, Mapping):
            config = TransformerNetConfig.from_dict(config)
        elif not isinstance(config, TransformerNetConfig):
            raise TypeError(f"TransformerNet: config must be a TransformerNetConfig or a dict, "
                            f"got {type(config).__name__}")
        self.config = config
        c1, c2, c3 = config.channels()
        # ``body`` holds no shape-dependent Python: it can be traced as is
        # (see optimize_for_inference); padding and cropping live in forward.
        self.body = nn.Sequential(
            _conv_norm_relu(3, c1, 9),
            _conv_norm_relu(c1, c2, 3, stride=2),
            _conv_norm_relu(c2, c3, 3, stride=2),
            *[ResidualBlock(c3) for _ in range(config.residual_blocks)],
            Upsample(c3, c2),
            Upsample(c2, c1),
            *_conv(c1, 3, 9),
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TransformerNet":
        return cls(TransformerNetConfig.from_dict(d))

    def config_dict(self) -> Dict[str, Any]:
        """The config as plain JSON types (``TransformerNet.from_dict(net.config_dict())`` rebuilds it)."""
        return self.config.to_dict()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, unbatched = _check_input(x)
        return _pad_run_crop(self.body, x, self.config.output, unbatched)


def _check_input(x) -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"TransformerNet expects a torch.Tensor (N, 3, H, W) in [0, 1], got {type(x).__name__}"
                        "; use style.fast.apply(model, image) for PIL images")
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"TransformerNet expects an RGB image (3, H, W) or batch (N, 3, H, W), "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"TransformerNet expects a float tensor in [0, 1], got dtype {x.dtype}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"TransformerNet got an empty image: shape {tuple(x.shape)}")
    unbatched = x.dim() == 3
    return (x.unsqueeze(0) if unbatched else x), unbatched


def _pad_to_multiple_of_4(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = max(8, -(-h // 4) * 4) - h, max(8, -(-w // 4) * 4) - w
    if ph or pw:
        # Replicate, not reflect: reflection needs the pad to be smaller than the image.
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def _output_activation(y: torch.Tensor, output: str) -> torch.Tensor:
    return torch.sigmoid(y) if output == "sigmoid" else y.clamp(0.0, 1.0)


def _pad_run_crop(body, x: torch.Tensor, output: str, unbatched: bool) -> torch.Tensor:
    h, w = x.shape[-2:]
    y = _output_activation(body(_pad_to_multiple_of_4(x))[..., :h, :w], output)
    return y[0] if unbatched else y


# ---------------------------------------------------------------------------
# 2. Data: random crops of content images
# ---------------------------------------------------------------------------

class StyleContentData(Dataset):
    """Random ``size × size`` crops (and horizontal flips) of content images, as ``(x, x)``.

    ``images`` is a list/tuple of tensors ``(3, H, W)`` in [0, 1], a dict
    ``name -> tensor``, a folder (path) of image files or a list of image file
    paths. A folder is listed on first use and each file is read when a crop of
    it is asked for, so a folder of 80k COCO images costs no memory. An image smaller than ``size``
    is first scaled up (bilinear) so that its short side is ``size``.

    ``length`` is the number of crops per epoch (default: one per image);
    item ``i`` is a crop of image ``i % n_images``. The crop position and flip
    are drawn from torch's global generator, which ``fit`` seeds and restores
    on resume, so training is reproducible.

    The pair ``(x, x)`` lets ``core.training.fit``'s default forward return
    ``(model(x), x)``: prediction and content target for :class:`PerceptualLoss`.

    A file that cannot be read (not an image, truncated, a decompression bomb) is
    skipped with a warning and counted (``dataset.skipped``: path -> reason, per
    process); the next readable image stands in, so training never stops on one bad
    file (as in the super-resolution and segmentation units).
    """

    def __init__(self, images, size: int = 256, *, length: int | None = None, flip: bool = True):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"StyleContentData: size must be a positive int, got {size!r}")
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
            raise ValueError(f"StyleContentData: length must be a positive int or None, got {length!r}")
        self.size, self.flip, self._length = size, bool(flip), length
        self._folder: Path | None = None
        self._files: list[Path] | None = None
        self._tensors: list[torch.Tensor] | None = None
        self.skipped: dict[str, str] = {}
        if isinstance(images, (str, os.PathLike)):
            folder = Path(images)
            if not folder.is_dir():
                raise FileNotFoundError(f"StyleContentData: folder {folder} does not exist")
            self._folder = folder
        elif (isinstance(images, (list, tuple)) and images
              and all(isinstance(p, (str, os.PathLike)) for p in images)):  # image files (e.g. a COCO subset)
            self._files = [Path(p) for p in images]
            self._folder = self._files[0].parent
        else:
            if isinstance(images, Mapping):
                items = list(images.items())
            elif isinstance(images, torch.Tensor) and images.dim() == 4:
                items = [(f"[{i}]", t) for i, t in enumerate(images)]
            elif isinstance(images, (list, tuple)):
                items = [(f"[{i}]", t) for i, t in enumerate(images)]
            else:
                raise TypeError("StyleContentData: images must be a list/dict of (3, H, W) tensors, an "
                                f"(N, 3, H, W) tensor or a folder path, got {type(images).__name__}")
            if not items:
                raise ValueError("StyleContentData: no content images given")
            for name, t in items:
                _check_rgb(t, f"StyleContentData: content image {name}")
            self._tensors = [t.detach().float().cpu() for _, t in items]

    def _list(self) -> list[Path]:
        if self._files is None:
            from ..core.images import IMAGE_EXTENSIONS

            self._files = sorted(p for p in self._folder.rglob("*")
                                 if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not self._files:
                raise ValueError(f"StyleContentData: folder {self._folder} holds no image files "
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
        from ..core.images import load_tensor

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
        img = self._image(i % self.n_images)
        s = self.size
        h, w = img.shape[-2:]
        if min(h, w) < s:
            f = s / min(h, w)
            img = F.interpolate(img[None], size=(max(s, round(h * f)), max(s, round(w * f))),
                                mode="bilinear", align_corners=False)[0].clamp(0, 1)
            h, w = img.shape[-2:]
        top = int(torch.randint(0, h - s + 1, ()))
        left = int(torch.randint(0, w - s + 1, ()))
        x = img[:, top:top + s, left:left + s]
        if self.flip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        x = x.contiguous()
        return x, x


def _check_rgb(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (3, H, W) in [0, 1], got {type(t).__name__}")
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"{name} must have shape (3, H, W), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got dtype {t.dtype}")
    if t.shape[-1] == 0 or t.shape[-2] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    return t


# ---------------------------------------------------------------------------
# 3. The perceptual loss
# ---------------------------------------------------------------------------

def _gram(f: torch.Tensor) -> torch.Tensor:
    # Grams in float32 even under CUDA autocast: sums over H*W overflow float16.
    with torch.autocast(f.device.type, enabled=False):
        return gram_matrix(f.float())


class PerceptualLoss(nn.Module):
    """Johnson et al.'s loss: content MSE at relu2_2 + Gram MSE at relu1_2..relu4_3 + TV.

    ``features`` maps an image batch ``(N, 3, H, W)`` in [0, 1] to a dict
    ``{layer name: (N, C, h, w)}`` holding at least ``content_layer`` and the
    ``style_layers`` (e.g. ``VGGFeatures(layers=[...], arch="vgg16")``, which
    normalises with the ImageNet mean/std itself). It is frozen here
    (``eval()``, ``requires_grad_(False)``): the loss never trains it.

    ``style_image`` is ``(3, H, W)``, ``(N, 3, H, W)`` or a list of such: the
    target Gram of each layer is computed **once**, here, and averaged over the
    style images. Grams are normalised by ``C·H·W``, so a style image of
    another size than the training crops still gives comparable targets.

    Default weights are starting points, not tuned values. Measured at 64 px
    with a random-weight VGG16 and an untrained net: content ≈ 0.2,
    unweighted style ≈ 1e-4, unweighted TV ≈ 0.01-0.3 (mean of squared
    differences, :func:`losses.total_variation`). Johnson's TV weights
    1e-6..1e-4 were for a *summed* TV on 0-255 images; they are far too small
    for this mean-based TV.

    ``forward(pred, content)`` returns ``(loss, {"content", "style", "tv"})``
    with the three *weighted* terms -- the format ``fit`` logs.

    Example::

        >>> loss_fn = PerceptualLoss(VGGFeatures(layers=[*STYLE_LAYERS]), style)  # doctest: +SKIP
        >>> loss, parts = loss_fn(model(x), x)                                    # doctest: +SKIP
    """

    def __init__(self, features: nn.Module, style_image, *, content_weight: float = 1.0,
                 style_weight: float = 1e5, tv_weight: float = 1e-2,
                 content_layer: str = CONTENT_LAYER, style_layers: Sequence[str] = STYLE_LAYERS,
                 style_layer_weights: Sequence[float] | None = None):
        super().__init__()
        if not isinstance(features, nn.Module) and not callable(features):
            raise TypeError(f"PerceptualLoss: features must be a module returning a dict, got {type(features).__name__}")
        for name, v in (("content_weight", content_weight), ("style_weight", style_weight), ("tv_weight", tv_weight)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"PerceptualLoss: {name} must be a non-negative number, got {v!r}")
        style_layers = tuple(style_layers)
        if not style_layers:
            raise ValueError("PerceptualLoss: style_layers is empty")
        if style_layer_weights is None:
            style_layer_weights = [1.0] * len(style_layers)
        if len(style_layer_weights) != len(style_layers):
            raise ValueError(f"PerceptualLoss: {len(style_layer_weights)} style_layer_weights for "
                             f"{len(style_layers)} style_layers")
        self.features = features
        if isinstance(features, nn.Module):
            features.eval().requires_grad_(False)
        self.content_weight, self.style_weight, self.tv_weight = float(content_weight), float(style_weight), float(tv_weight)
        self.content_layer, self.style_layers = content_layer, style_layers
        self.style_layer_weights = [float(w) for w in style_layer_weights]

        styles = list(style_image) if isinstance(style_image, (list, tuple)) else [style_image]
        if not styles:
            raise ValueError("PerceptualLoss: no style image given")
        grams: dict[str, list[torch.Tensor]] = {k: [] for k in style_layers}
        device = _module_device(features)
        min_side = getattr(features, "min_side", None)  # VGGFeatures knows how often it pools
        with torch.no_grad():
            for i, s in enumerate(styles):
                if isinstance(s, torch.Tensor) and s.dim() == 4:
                    batch = [_check_rgb(t, f"PerceptualLoss: style image {i}") for t in s]
                else:
                    batch = [_check_rgb(s, "PerceptualLoss: style image" + (f" {i}" if len(styles) > 1 else ""))]
                for t in batch:
                    if isinstance(min_side, int) and min(t.shape[-2:]) < min_side:
                        raise ValueError(f"PerceptualLoss: the style image is {t.shape[-1]}x{t.shape[-2]} pixels; "
                                         f"each side needs >= {min_side} pixels for the loss network "
                                         f"(it pools {min_side.bit_length() - 1} time(s) before its deepest layer)")
                    feats = self._features(t[None].float().to(device))
                    for k in style_layers:
                        grams[k].append(_gram(feats[k])[0])
        for j, k in enumerate(style_layers):
            # Buffers follow .to(device); not persistent: they are derived data.
            self.register_buffer(f"_gram_{j}", torch.stack(grams[k]).mean(0, keepdim=True), persistent=False)

    def _features(self, x: torch.Tensor) -> dict:
        out = self.features(x)
        if not isinstance(out, Mapping):
            raise TypeError(f"PerceptualLoss: features must return a dict name -> tensor, got {type(out).__name__}")
        missing = [k for k in (self.content_layer, *self.style_layers) if k not in out]
        if missing:
            raise KeyError(f"PerceptualLoss: the feature extractor did not return layer(s) {missing}; "
                           f"it returned {sorted(out)}")
        return out

    def target_grams(self) -> dict[str, torch.Tensor]:
        """``{layer: (1, C, C)}``: the style targets computed at construction."""
        return {k: getattr(self, f"_gram_{j}") for j, k in enumerate(self.style_layers)}

    def forward(self, pred: torch.Tensor, content: torch.Tensor):
        for name, t in (("pred", pred), ("content", content)):
            if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 3:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"PerceptualLoss: {name} must have shape (N, 3, H, W), got {got}")
        if pred.shape != content.shape:
            raise ValueError(f"PerceptualLoss: pred {tuple(pred.shape)} and content {tuple(content.shape)} differ")
        if self._gram_0.device != pred.device:
            self.to(pred.device)
        fp = self._features(pred)
        with torch.no_grad():
            fc = self._features(content)[self.content_layer]
        content_term = F.mse_loss(fp[self.content_layer].float(), fc.float())
        style_term = pred.new_zeros((), dtype=torch.float32)
        for (k, target), w in zip(self.target_grams().items(), self.style_layer_weights):
            g = _gram(fp[k])
            style_term = style_term + w * F.mse_loss(g, target.expand_as(g))
        tv_term = total_variation(pred.float())
        parts = {"content": self.content_weight * content_term,
                 "style": self.style_weight * style_term,
                 "tv": self.tv_weight * tv_term}
        loss = parts["content"] + parts["style"] + parts["tv"]
        return loss, {k: v.detach() for k, v in parts.items()}


def _module_device(m) -> torch.device:
    if isinstance(m, nn.Module):
        for t in m.parameters():
            return t.device
        for t in m.buffers():
            return t.device
    return torch.device("cpu")


# ---------------------------------------------------------------------------
# 4. Training, through the course's one loop
# ---------------------------------------------------------------------------

def train_fast(content_images, style_image, *, size: int = 256, steps: int, batch_size: int = 4,
               lr: float = 1e-3, content_weight: float = 1.0, style_weight: float = 1e5,
               tv_weight: float = 1e-2, checkpoint=None, features: nn.Module | None = None,
               width: float = 1.0, progress: bool = True, seed: int = 0, model: TransformerNet | None = None,
               device=None, **fit_kwargs):
    """Train a :class:`TransformerNet` for one style with :func:`core.training.fit`.

    ``content_images``: anything :class:`StyleContentData` takes (list/dict of
    tensors, folder) or a ready Dataset of ``(x, x)`` pairs. ``style_image``:
    a tensor ``(3, H, W)`` (used at its own size) or what :class:`PerceptualLoss`
    takes. ``features`` defaults to ``VGGFeatures(layers=[relu1_2, relu2_2,
    relu3_3, relu4_3], arch="vgg16", weights="auto")``. ``checkpoint``: a path;
    calling again with the same path and settings resumes (``fit``'s feature; a
    larger ``steps`` trains longer), a checkpoint of other settings (content or
    style images, loss weights, width, lr, ...) is refused. Other keywords
    (``eval_every``, ``checkpoint_every``, ``grad_clip``, ``callback``, ...) go to ``fit``.

    Returns ``fit``'s :class:`FitResult`; ``result.model`` is the trained net,
    ``result.extra["config"]`` its config dict and ``result.extra["skipped"]`` the
    unreadable content files skipped (path -> reason).
    """
    from ..core.training import data_fingerprint, fit

    if isinstance(content_images, Dataset) and not isinstance(content_images, StyleContentData):
        data = content_images
    else:
        if isinstance(content_images, StyleContentData):
            data = content_images
        else:
            n = StyleContentData(content_images, size).n_images
            data = StyleContentData(content_images, size, length=max(n, batch_size))
    if features is None:
        from .features import VGGFeatures

        features = VGGFeatures(layers=list(STYLE_LAYERS), arch="vgg16", weights="auto")
    min_side, crop = getattr(features, "min_side", None), getattr(data, "size", None)
    if isinstance(min_side, int) and isinstance(crop, int) and crop < min_side:
        raise ValueError(f"train_fast: crops of {crop}x{crop} pixels are too small for the loss network: it pools "
                         f"{min_side.bit_length() - 1} time(s) before its deepest layer, so each side needs "
                         f">= {min_side} pixels (the TransformerNet itself takes any size)")
    loss_fn = PerceptualLoss(features, style_image, content_weight=content_weight,
                             style_weight=style_weight, tv_weight=tv_weight)
    if model is None:
        torch.manual_seed(seed)  # the initial weights depend on the seed only
        model = TransformerNet(width=width)
    elif not isinstance(model, TransformerNet):
        raise TypeError(f"train_fast: model must be a TransformerNet, got {type(model).__name__}")
    if device is not None:
        fit_kwargs["device"] = device
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
    result.extra["config"] = model.config_dict()
    result.extra["arch"] = TransformerNet.arch
    result.extra["skipped"] = dict(getattr(data, "skipped", {}))  # unreadable content files (this process)
    return result


# ---------------------------------------------------------------------------
# 5. Inference: any size, and a faster CPU path
# ---------------------------------------------------------------------------

class OptimizedTransformerNet(nn.Module):
    """A frozen copy of a :class:`TransformerNet`'s body for CPU inference.

    Made by :func:`optimize_for_inference`; ``description`` names the variant
    (``"int8 (...)"``, ``"freeze"``, ``"freeze_cl"`` or ``"eager"``). Padding
    and cropping stay in Python, so any input size and batch still work; the
    body (traced, quantised or eager) has no shape-dependent code.
    """

    def __init__(self, body, output: str, channels_last: bool, description: str):
        super().__init__()
        self.body, self.output, self.channels_last, self.description = body, output, channels_last, description

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, unbatched = _check_input(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = _pad_run_crop(self.body, x, self.output, unbatched)
        return y.contiguous()


# --- int8: post-training static quantisation ------------------------------------------
#
# Float32 inference already runs near this kind of CPU's practical peak, so the
# remaining lever is arithmetic with fewer bits. Every convolution reads uint8
# activations and int8 weights and accumulates in int32 (oneDNN's u8·s8
# kernels: AVX2 has them, VNNI is not needed), which is about twice the
# float32 rate here -- ~4x for the 9×9 output conv, whose 3 output channels
# float32 oneDNN handles poorly. Between the convolutions, activations are
# stored as uint8: reflection padding and ×2 upsampling copy bytes.
#
# Where the rounding happens matters. Each uint8 tensor t stands for
# scale·(t − zero_point), one fixed pair per tensor from a float32 calibration
# run (Jacob et al., CVPR 2018, "Quantization and Training of Neural Networks
# for Efficient Integer-Arithmetic-Only Inference", sec. 2; Krishnamoorthi 2018,
# "Quantizing deep convolutional networks for efficient inference").
# A fixed range suits the *output* of an instance norm, which has zero mean and
# unit variance per channel whatever the image, but not its *input*: a conv's
# raw response depends on the image's contrast and scale, and instance norm
# then divides by its per-image standard deviation, blowing up the rounding
# error of smooth images. So each conv writes float32 (the int32 sum times the
# two scales); instance norm runs on that with this image's exact statistics
# (batch norm in training mode on one image is instance norm, and PyTorch's
# channels-last batch norm is fast); its affine map, the ReLU, the residual sum
# and the rounding to the next layer's uint8 are folded into one multiply-add
# and one rounding. A first version rounded the conv output to uint8 before
# the norm (quantised instance norm): as fast single-threaded, but at 1024 px
# (upsampled, so smooth, hold-out photos) a 100-step trained net averaged
# 27 dB PSNR against float32 (worst photo 21.5) where this one gives 40 (31).
#
# Other details, measured (PSNR of the output vs float32, hold-out photos):
# * Ranges are the calibration's 1e-4 and 1 - 1e-4 quantiles widened 1.5x: a
#   photo unlike the calibration set otherwise clips; a 100-step trained net
#   went from 38.5 to 57.3 dB on its worst photo at 256 px, a fresh net lost
#   ~1.5 dB.
# * Weights: per output channel, symmetric, in [-63, 63], not [-127, 127].
#   Without VNNI the kernels add u8·s8 products in pairs in int16
#   (vpmaddubsw), and 2·255·127 > 32767 saturates: full-range weights lost
#   ~10 dB.
# * ReLU costs nothing: its output range starts at 0, so rounding clips the
#   negatives (zero_point 0).
#
# The operators are oneDNN's (torch.ops.onednn.qconv_prepack and
# qconv2d_pointwise, which torch.compile's x86 int8 path uses) on plain uint8
# tensors. Rounding to uint8 uses torch.quantize_per_tensor, 6-8x faster than
# round/clamp/convert; PyTorch has deprecated quantised tensors
# (pytorch/pytorch#184982), and without them the slower path is taken. Should
# an operator go or misbehave, the build's self-check fails and
# optimize_for_inference falls back to float32 with a printed note.

_INT8_MIN_PSNR = 30.0  # dB, int8 vs float32 on the first calibration image; below it: fall back to eager
_INT8_WEIGHT_LEVELS = 63  # int8 weights in [-63, 63] (see above)
_INT8_TAIL = 1e-4  # activation ranges from the 1e-4 and 1 - 1e-4 quantiles: rare outliers would waste levels
_INT8_HEADROOM = 1.5  # ... widened by this factor (see above)


class _Int8Unavailable(RuntimeError):
    """The int8 path cannot run here (device, operators, architecture or accuracy)."""


@dataclass
class _Unit:
    """Reflection pad → conv → optional instance norm → optional ReLU: the network's one building block."""

    key: int
    pad: int
    conv: nn.Conv2d
    norm: nn.InstanceNorm2d | None
    relu: bool


def _flatten(modules):
    for m in modules:
        if type(m) is nn.Sequential:
            yield from _flatten(m)
        else:
            yield m


def _units(modules, first_key: int) -> list[_Unit]:
    mods, units = list(_flatten(modules)), []
    while mods:
        if len(mods) < 2 or not isinstance(mods[0], nn.ReflectionPad2d) or type(mods[1]) is not nn.Conv2d:
            raise _Int8Unavailable(f"expected ReflectionPad2d then Conv2d, got {[type(m).__name__ for m in mods[:2]]}")
        pad, conv = mods.pop(0), mods.pop(0)
        if len(set(pad.padding)) != 1 or conv.groups != 1 or conv.dilation != (1, 1) or conv.padding != (0, 0):
            raise _Int8Unavailable(f"unsupported padding/conv settings: {pad}, {conv}")
        norm = mods.pop(0) if mods and isinstance(mods[0], nn.InstanceNorm2d) else None
        if norm is not None and (norm.track_running_stats or not norm.affine):
            raise _Int8Unavailable("only affine instance norm without running statistics is supported")
        relu = bool(mods) and type(mods[0]) is nn.ReLU
        if relu:
            mods.pop(0)
        if relu and norm is None:
            raise _Int8Unavailable("a ReLU right after a conv (no norm) is not supported")
        units.append(_Unit(first_key + len(units), pad.padding[0], conv, norm, relu))
    return units


def _int8_plan(body: nn.Sequential) -> list[tuple[str, list[_Unit]]]:
    """``body`` as steps ``(kind, units)``: "plain" (the units in turn), "residual" (x + units(x)),
    "upsample" (units(nearest ×2 (x))). Only the very last unit may lack a norm."""
    steps, plain, key = [], [], 0

    def add(kind, modules):
        nonlocal key
        steps.append((kind, _units(modules, key)))
        key += len(steps[-1][1])

    for m in body:
        if isinstance(m, (ResidualBlock, Upsample)):
            if plain:
                add("plain", plain)
                plain = []
            add("residual", m.block) if isinstance(m, ResidualBlock) else add("upsample", m.conv)
        else:
            plain.append(m)
    if plain:
        add("plain", plain)
    units = [u for _, us in steps for u in us]
    if any(u.norm is None for u in units[:-1]) or units[-1].norm is not None:
        raise _Int8Unavailable("expected instance norm after every conv but the last")
    return steps


def _observe_range(ranges: dict, key, t: torch.Tensor):
    """Widen ``ranges[key]`` to the 1e-4 and 1 - 1e-4 quantiles of ``t`` (of a strided sample)."""
    flat = t.detach().flatten()
    flat = flat[:: max(1, flat.numel() // (1 << 17))]  # a full sort would be slow
    k = max(1, int(_INT8_TAIL * flat.numel()))
    lo, hi = float(flat.topk(k, largest=False).values[-1]), float(flat.topk(k).values[-1])
    old = ranges.get(key, (lo, hi))
    ranges[key] = (min(old[0], lo), max(old[1], hi))


def _calibrate(steps, x: torch.Tensor, ranges: dict):
    """Run the plan in float32 (it equals ``body(x)``), recording the ranges that become uint8."""
    for i, (kind, units) in enumerate(steps):
        h = F.interpolate(x, scale_factor=2, mode="nearest") if kind == "upsample" else x
        for u in units:
            h = u.conv(F.pad(h, [u.pad] * 4, mode="reflect"))
            if u.norm is not None:
                h = u.norm(h)
                h = torch.relu(h) if u.relu else h
                if not (kind == "residual" and u is units[-1]):
                    _observe_range(ranges, u.key, h)
        if kind == "residual":
            h = x + h
            _observe_range(ranges, ("sum", i), h)
        x = h


def _qparams(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero_point) of uint8 covering [lo, hi] widened by the headroom; zero is always exact."""
    lo, hi = min(float(lo), 0.0) * _INT8_HEADROOM, max(float(hi), 0.0) * _INT8_HEADROOM
    scale = max(hi - lo, 1e-8) / 255.0
    return scale, int(min(255, max(0, round(-lo / scale))))


def _as_uint8(q: torch.Tensor) -> torch.Tensor:
    """The bytes of a quint8 tensor as a uint8 tensor (same storage, no copy)."""
    return torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), q.storage_offset(), q.shape, q.stride())


def _round_to_uint8(z: torch.Tensor) -> torch.Tensor:
    """``clamp(round(z), 0, 255)`` as uint8 (``z`` is overwritten)."""
    if hasattr(torch, "quantize_per_tensor"):
        try:
            return _as_uint8(torch.quantize_per_tensor(z, 1.0, 0, torch.quint8))  # one fused pass
        except (RuntimeError, NotImplementedError):
            pass
    return z.round_().clamp_(0, 255).to(torch.uint8)


class _Int8Unit(nn.Module):
    """One :class:`_Unit`: uint8 in (scale, zero point ``in_qparams``) → int8 conv → float32 →
    [instance norm, (+ skip), ReLU, round to uint8 with ``out_qparams``]."""

    def __init__(self, u: _Unit, in_qparams: tuple[float, int], out_qparams: tuple[float, int] | None,
                 skip_qparams: tuple[float, int] | None = None):
        super().__init__()
        w = u.conv.weight.detach().float()
        w_scale = w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / _INT8_WEIGHT_LEVELS
        w_int8 = (w / w_scale[:, None, None, None]).round().clamp(-_INT8_WEIGHT_LEVELS, _INT8_WEIGHT_LEVELS)
        bias = u.conv.bias.detach().float().clone() if u.conv.bias is not None else torch.zeros(w.shape[0])
        self.pad, self.stride, self.in_qparams = u.pad, list(u.conv.stride), in_qparams
        self.packed = torch.ops.onednn.qconv_prepack(w_int8.to(torch.int8), w_scale, in_qparams[0], in_qparams[1],
                                                     self.stride, [0, 0], [1, 1], 1, None)
        self.register_buffer("w_scale", w_scale)
        self.register_buffer("w_zero_point", torch.zeros(w.shape[0], dtype=torch.long))
        self.register_buffer("bias", bias)
        self.has_norm = u.norm is not None
        if self.has_norm:
            # Norm output y becomes y / s + zp in uint8 units: fold 1/s and zp into the norm's affine map;
            # a skip input t (uint8, s_t, zp_t) adds (t - zp_t)·s_t / s.
            s, zp = out_qparams
            self.eps = u.norm.eps
            self.skip_ratio = skip_qparams[0] / s if skip_qparams else 0.0
            shift = zp - (skip_qparams[1] * self.skip_ratio if skip_qparams else 0.0)
            self.register_buffer("norm_weight", u.norm.weight.detach().float() / s)
            self.register_buffer("norm_bias", u.norm.bias.detach().float() / s + shift)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, conv_threads: int = 0) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, [self.pad] * 4, mode="reflect")
        with _intra_op_threads(conv_threads):
            y = torch.ops.onednn.qconv2d_pointwise(x, self.in_qparams[0], self.in_qparams[1], self.packed,
                                                   self.w_scale, self.w_zero_point, self.bias, self.stride,
                                                   [0, 0], [1, 1], 1, 1.0, 0, torch.float32, "none", [], "")
        if not self.has_norm:
            return y  # the last conv: float32 for the sigmoid
        # Batch norm with batch statistics on one image is instance norm (fast on channels-last).
        z = torch.cat([F.batch_norm(y[i:i + 1], None, None, self.norm_weight, self.norm_bias, training=True,
                                    eps=self.eps) for i in range(len(y))]) if len(y) > 1 else \
            F.batch_norm(y, None, None, self.norm_weight, self.norm_bias, training=True, eps=self.eps)
        if skip is not None:
            z.add_(skip, alpha=self.skip_ratio)
        return _round_to_uint8(z)  # ReLU units have zero point 0: rounding clips the negatives


@contextlib.contextmanager
def _intra_op_threads(n: int):
    """Run the block with ``n`` intra-op threads (0: leave the setting alone)."""
    old = torch.get_num_threads()
    if n <= 0 or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class _Int8Body(nn.Module):
    """The quantised body: float image ``(N, 3, H, W)`` in [0, 1] in, float32 pre-activation out."""

    def __init__(self, steps, ranges: dict):
        super().__init__()
        self.kinds = [kind for kind, _ in steps]
        self.stages = nn.ModuleList()
        qparams = (1.0 / 255.0, 0)  # the input image: 8-bit pixels exactly
        for i, (kind, units) in enumerate(steps):
            step_in, stage = qparams, nn.ModuleList()
            for u in units:
                if u.norm is None:
                    stage.append(_Int8Unit(u, qparams, None))
                elif kind == "residual" and u is units[-1]:
                    out = _qparams(*ranges[("sum", i)])
                    stage.append(_Int8Unit(u, qparams, out, skip_qparams=step_in))
                    qparams = out
                else:
                    lo, hi = ranges[u.key]
                    out = _qparams(0.0 if u.relu else lo, hi)
                    stage.append(_Int8Unit(u, qparams, out))
                    qparams = out
            self.stages.append(stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # With two threads, everything but the convolutions runs on one: those steps are short
        # and memory-bound, and on a 2-core machine shared with other work every parallel region
        # waits for a time slice of the busy core. Measured on the course machine under load,
        # 256²: batch norm 2 ms -> 47 ms a call with two threads; the int8 forward 1.4 s -> 0.5 s.
        # With more threads (an idle laptop) they stay parallel.
        threads = torch.get_num_threads()
        with warnings.catch_warnings(), _intra_op_threads(1 if threads <= 2 else threads):
            warnings.filterwarnings("ignore", message=".*quantiz.*deprecated")
            q = _round_to_uint8(x.float().mul(255.0)).contiguous(memory_format=torch.channels_last)
            for kind, stage in zip(self.kinds, self.stages):
                h = F.interpolate(q, scale_factor=2, mode="nearest") if kind == "upsample" else q
                for j, unit in enumerate(stage):
                    last = j == len(stage) - 1
                    h = unit(h, skip=q if kind == "residual" and last else None, conv_threads=threads)
                q = h
            return q


def _int8_check_available(model: nn.Module) -> None:
    """Raise :class:`_Int8Unavailable` saying why the int8 path cannot run here."""
    device = _module_device(model)
    if device.type != "cpu":
        raise _Int8Unavailable(f"the model is on {device}; the int8 kernels are CPU-only")
    if not torch.backends.mkldnn.is_available():
        raise _Int8Unavailable("this PyTorch build has no oneDNN (mkldnn)")
    missing = [op for op in ("qconv_prepack", "qconv2d_pointwise") if not hasattr(torch.ops.onednn, op)]
    if missing:
        raise _Int8Unavailable(f"this PyTorch has no operator(s) torch.ops.onednn.{', '.join(missing)}")


@functools.lru_cache(maxsize=1)
def _default_calibration(size: int = 160) -> torch.Tensor:
    """``(4, 3, size, size)``: centre crops of four training-side offline photos (:func:`core.datasets.offline_split`)."""
    from ..core import datasets
    from ..core.images import to_tensor

    photos = datasets.offline_natural_images()
    crops = []
    for name in datasets.offline_split()[0][:4]:
        img = photos[name]
        f = size / min(img.size)
        img = img.resize((max(size, round(img.width * f)), max(size, round(img.height * f))))
        left, top = (img.width - size) // 2, (img.height - size) // 2
        crops.append(to_tensor(img.crop((left, top, left + size, top + size))))
    return torch.stack(crops)


def _calibration_batches(calibration) -> list[torch.Tensor]:
    if calibration is None:
        try:
            calibration = _default_calibration()  # cached: read only, never modified
        except Exception as exc:  # the offline photos come from optional packages
            raise _Int8Unavailable(f"no calibration images ({type(exc).__name__}: {exc}); "
                                   "pass calibration=...") from exc
    items = list(calibration) if isinstance(calibration, (list, tuple)) else [calibration]
    if not items:
        raise ValueError("optimize_for_inference: calibration is empty")
    batches = []
    for t in items:
        try:
            x, _ = _check_input(t)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"optimize_for_inference: calibration images must be (3, H, W) or (N, 3, H, W) "
                            f"float tensors in [0, 1]: {exc}") from None
        batches.append(x.detach().float().cpu())
    return batches


def _quantize_int8(model: TransformerNet, calibration) -> tuple[_Int8Body, str]:
    """Calibrate on ``calibration`` and build the int8 body; raise _Int8Unavailable when it cannot run."""
    import copy

    _int8_check_available(model)
    batches = _calibration_batches(calibration)
    body = copy.deepcopy(model.body).eval().float()
    steps = _int8_plan(body)
    ranges: dict = {}
    with torch.no_grad():
        for x in batches:
            _calibrate(steps, _pad_to_multiple_of_4(x), ranges)
        # The self-check compares with the float body itself, so a plan that
        # misread the architecture fails it too.
        x0 = _pad_to_multiple_of_4(batches[0][:1])
        y_float = body(x0)
    try:
        int8 = _Int8Body(steps, ranges)
        with torch.inference_mode():
            y_int8 = int8(x0)
    except (RuntimeError, NotImplementedError, AttributeError, TypeError) as exc:
        raise _Int8Unavailable(f"the int8 operators failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    output = model.config.output
    mse = float(((_output_activation(y_int8, output) - _output_activation(y_float, output)) ** 2).mean())
    psnr = 10 * math.log10(1.0 / max(mse, 1e-20))
    if not psnr >= _INT8_MIN_PSNR:
        raise _Int8Unavailable(f"int8 output is only {psnr:.1f} dB PSNR from float32 on a calibration image "
                               f"(needs >= {_INT8_MIN_PSNR:.0f} dB)")
    n = sum(len(b) for b in batches)
    return int8, f"int8 (oneDNN u8·s8 convs, calibrated on {n} image(s), {psnr:.1f} dB on the first)"


def _trace_body(model: TransformerNet, example: torch.Tensor, channels_last: bool):
    import copy

    body = copy.deepcopy(model.body).eval()
    if channels_last:
        body = body.to(memory_format=torch.channels_last)
        example = example.contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.compile; still the fastest here
        with torch.no_grad():
            traced = torch.jit.trace(body, example, check_trace=False)
            return torch.jit.freeze(traced)  # folds weights as constants; oneDNN conv+relu fusion


def optimize_for_inference(model: TransformerNet, *, example_size: int = 64, variant: str = "auto",
                           calibration=None) -> nn.Module:
    """A CPU-inference copy of ``model``: int8 (about 2x faster, ~40-50 dB PSNR from float32) or float32.

    Variants (``variant=``):

    * ``"int8"`` -- post-training static quantisation (see the comment block
      above ``_Int8Body`` in this file): int8 weights and uint8 activations
      into every convolution; instance norm, ReLU and the residual sums in
      float32 on the conv's output, rounded to uint8 once per layer.
      Calibrated on ``calibration`` -- a ``(3, H, W)``/``(N, 3, H, W)`` tensor
      or a list of them; default: four training-side offline photos
      (:func:`core.datasets.offline_split`), 160 px crops -- then checked
      against float32 on the first calibration image. Where it cannot run
      (model not on the CPU, no oneDNN int8 operators, or under 30 dB PSNR in
      that check), it prints one line saying why and returns ``"eager"``.
    * ``"freeze"`` -- ``torch.jit.trace`` + ``torch.jit.freeze`` (equal to
      eager within 1e-4): weights become constants and the JIT may fuse
      conv+ReLU (oneDNN). Instance norm cannot be folded into the convolution
      as batch norm can: its statistics depend on the input.
    * ``"freeze_cl"`` -- the same in channels-last memory format.
    * ``"eager"`` -- a plain float32 copy of the network (under ``inference_mode``).
    * ``"auto"`` (default) -- ``"int8"`` when the model is on the CPU (and the
      int8 path works), else ``"eager"`` (silently on a GPU, where float32
      is the fast path).

    The trade-off, measured on the course's 2-core CPU (AMD EPYC, AVX2, no
    VNNI; torch 2.14; width 1, batch 1; ``python -m benchmarks style``, on a
    machine shared with other jobs, so timings are noisy):

    * Speed: int8 gave 1.7x (256 px), 2.9x (512) and 2.5x (1024) the frames
      per second of float32 eager with two threads, and 2.3-2.6x in
      single-thread CPU time, which load distorts less. On an idle moment at
      256 px: 258 ms eager, ~150 ms int8. The int8 convolutions are ~2.2x
      faster than float32 ones; what is left is instance norm and rounding.
    * Accuracy: not bit-identical. PSNR against float32 on the four hold-out
      photos: 47-49 dB on average for a net trained 100 steps (worst photo
      41-46 dB at 256-512 px, 31 dB at 1024 px, i.e. on upsampled photos),
      39-40 dB for a freshly initialised net. Images with a side under
      ~16 px are further off (2x2 feature maps give instance norm little to
      average). Keep ``"eager"`` (``optimized=False``) where exact float32
      values matter, e.g. when comparing with a reference.
    * Cost: calibration and self-check take ~1 s at width 1;
      ``apply(..., optimized=True)`` does them once per weight change.

    Float32 variants: neither trace+freeze nor channels-last was measurably
    faster than eager (the time is in oneDNN convolutions, which eager
    already uses, instance norm and padding); channels-last was slower.

    The copy never changes ``model`` (weights are copied; later training
    does not reach it). Padding/cropping stay in Python, so every variant
    accepts any size and batch.
    """
    if not isinstance(model, TransformerNet):
        raise TypeError(f"optimize_for_inference: model must be a TransformerNet, got {type(model).__name__}")
    variants = ("auto", "int8", "freeze", "freeze_cl", "eager")
    if variant not in variants:
        raise ValueError(f"optimize_for_inference: variant must be one of {variants}, got {variant!r}")
    import copy

    if variant in ("auto", "int8"):
        on_gpu = _module_device(model).type != "cpu"
        if variant == "int8" or not on_gpu:
            try:
                body, description = _quantize_int8(model, calibration)
                return OptimizedTransformerNet(body, model.config.output, False, description)
            except _Int8Unavailable as exc:
                print(f"optimize_for_inference: int8 unavailable -- {exc}; using eager float32 instead")
        variant = "eager"
    if variant == "eager":
        return OptimizedTransformerNet(copy.deepcopy(model.body).eval(), model.config.output, False, "eager")
    device = next(model.parameters()).device
    example = torch.rand(1, 3, example_size, example_size, device=device)
    body = _trace_body(model, example, channels_last=variant == "freeze_cl")
    return OptimizedTransformerNet(body, model.config.output, variant == "freeze_cl", variant)


def _params_key(model: nn.Module) -> tuple:
    # Changes whenever a parameter is modified in place (optimiser steps,
    # load_state_dict) or replaced: the cached optimised copy is then stale.
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def _optimized(model: TransformerNet) -> nn.Module:
    cache = model.__dict__.get("_optimized_cache")
    key = _params_key(model)
    if cache is None or cache[0] != key:
        cache = (key, optimize_for_inference(model))
        model.__dict__["_optimized_cache"] = cache  # not a submodule: stays out of state_dict
    return cache[1]


def apply(model: nn.Module, image, *, optimized: bool = False):
    """Stylise ``image`` with ``model``: a tensor ``(3, H, W)``/``(N, 3, H, W)`` in [0, 1] or a PIL image.

    Returns the same kind as given: a tensor of the input's shape, or an RGB
    PIL image of the same size (grayscale and RGBA inputs are converted to RGB
    first, as :func:`core.images.load_image` does).
    Runs in eval mode under ``torch.inference_mode`` and restores the model's
    mode. ``optimized=True`` uses :func:`optimize_for_inference` (made once and
    cached until the weights change); ``model`` may also be the optimised copy.
    On a CPU that copy is int8: about twice as fast, and close to float32
    (typically 40-50 dB PSNR on photos) but not equal to it.
    """
    from PIL import Image

    if not isinstance(model, nn.Module):
        raise TypeError(f"apply: model must be a TransformerNet, got {type(model).__name__}")
    is_pil = isinstance(image, Image.Image)
    if is_pil:
        from ..core.images import load_image, to_tensor

        x = to_tensor(load_image(image, mode="RGB"))
    elif isinstance(image, torch.Tensor):
        _check_input(image)  # fail here, naming the shape, before any work
        x = image
    else:
        raise TypeError(f"apply: image must be a tensor (3, H, W) / (N, 3, H, W) in [0, 1] or a PIL image, "
                        f"got {type(image).__name__}")
    if optimized and isinstance(model, TransformerNet):
        net = _optimized(model)
    else:
        net = model
    device = _module_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            y = net(x.to(device))
    finally:
        model.train(was_training)
    if is_pil:
        from ..core.images import to_pil

        return to_pil(y.cpu())
    return y.to(image.device)


def frames_per_second(model: nn.Module, size=256, repeats: int = 10, *, warmup: int = 2,
                      batch: int = 1, optimized: bool = False) -> float:
    """Images per second of ``model`` on random ``size × size`` inputs (``size`` int or ``(H, W)``).

    Median over ``repeats`` timed runs after ``warmup`` untimed ones, batch
    ``batch``, under ``inference_mode`` on the model's device (synchronised on
    CUDA). ``optimized=True`` times the :func:`optimize_for_inference` copy
    (int8 on a CPU), built before the timing starts.

    Timings on a shared CPU are noisy: compare variants in one session, on an
    otherwise idle machine, and report the conditions.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"frames_per_second: repeats must be a positive int, got {repeats!r}")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    net = _optimized(model) if optimized and isinstance(model, TransformerNet) else model
    device = _module_device(model)
    x = torch.rand(batch, 3, h, w, device=device)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                net(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    times.sort()
    return batch / times[len(times) // 2]
