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
  stylise images of any size, and how fast.

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

import dataclasses
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


def _pad_run_crop(body, x: torch.Tensor, output: str, unbatched: bool) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = max(8, -(-h // 4) * 4) - h, max(8, -(-w // 4) * 4) - w
    if ph or pw:
        # Replicate, not reflect: reflection needs the pad to be smaller than the image.
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    y = body(x)[..., :h, :w]
    y = torch.sigmoid(y) if output == "sigmoid" else y.clamp(0.0, 1.0)
    return y[0] if unbatched else y


# ---------------------------------------------------------------------------
# 2. Data: random crops of content images
# ---------------------------------------------------------------------------

class StyleContentData(Dataset):
    """Random ``size × size`` crops (and horizontal flips) of content images, as ``(x, x)``.

    ``images`` is a list/tuple of tensors ``(3, H, W)`` in [0, 1], a dict
    ``name -> tensor``, or a folder (path) of image files. A folder is listed
    on first use and each file is read when a crop of it is asked for, so a
    folder of 80k COCO images costs no memory. An image smaller than ``size``
    is first scaled up (bilinear) so that its short side is ``size``.

    ``length`` is the number of crops per epoch (default: one per image);
    item ``i`` is a crop of image ``i % n_images``. The crop position and flip
    are drawn from torch's global generator, which ``fit`` seeds and restores
    on resume, so training is reproducible.

    The pair ``(x, x)`` lets ``core.training.fit``'s default forward return
    ``(model(x), x)``: prediction and content target for :class:`PerceptualLoss`.
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
        if isinstance(images, (str, os.PathLike)):
            folder = Path(images)
            if not folder.is_dir():
                raise FileNotFoundError(f"StyleContentData: folder {folder} does not exist")
            self._folder = folder
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

        return load_tensor(self._list()[k], mode="RGB")

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
        with torch.no_grad():
            for i, s in enumerate(styles):
                if isinstance(s, torch.Tensor) and s.dim() == 4:
                    batch = [_check_rgb(t, f"PerceptualLoss: style image {i}") for t in s]
                else:
                    batch = [_check_rgb(s, "PerceptualLoss: style image" + (f" {i}" if len(styles) > 1 else ""))]
                for t in batch:
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
    calling again with the same path resumes (``fit``'s feature). Other
    keywords (``eval_every``, ``checkpoint_every``, ``grad_clip``, ``callback``,
    ...) go to ``fit``.

    Returns ``fit``'s :class:`FitResult`; ``result.model`` is the trained net
    and ``result.extra["config"]`` its config dict.
    """
    from ..core.training import fit

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
    loss_fn = PerceptualLoss(features, style_image, content_weight=content_weight,
                             style_weight=style_weight, tv_weight=tv_weight)
    if model is None:
        torch.manual_seed(seed)  # the initial weights depend on the seed only
        model = TransformerNet(width=width)
    elif not isinstance(model, TransformerNet):
        raise TypeError(f"train_fast: model must be a TransformerNet, got {type(model).__name__}")
    if device is not None:
        fit_kwargs["device"] = device
    result = fit(model, loss_fn, data, steps=steps, batch_size=batch_size, lr=lr, checkpoint=checkpoint,
                 seed=seed, progress=progress, desc="fast style", **fit_kwargs)
    result.extra["config"] = model.config_dict()
    result.extra["arch"] = TransformerNet.arch
    return result


# ---------------------------------------------------------------------------
# 5. Inference: any size, and a faster CPU path
# ---------------------------------------------------------------------------

class OptimizedTransformerNet(nn.Module):
    """A frozen, traced copy of a :class:`TransformerNet`'s body for CPU inference.

    Made by :func:`optimize_for_inference`. Padding and cropping stay in
    Python, so any input size still works; the traced body has no
    shape-dependent code.
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


def optimize_for_inference(model: TransformerNet, *, example_size: int = 64, variant: str = "auto") -> nn.Module:
    """A CPU-inference copy of ``model``, equal to eager within 1e-4.

    Variants (``variant=``):

    * ``"freeze"`` -- ``torch.jit.trace`` + ``torch.jit.freeze``: weights become
      constants and the JIT may fuse conv+ReLU (oneDNN). Instance norm cannot
      be folded into the convolution as batch norm can: its statistics depend
      on the input.
    * ``"freeze_cl"`` -- the same in channels-last memory format.
    * ``"eager"`` -- a plain copy of the network (run under ``inference_mode``).
    * ``"auto"`` (default) -- ``"eager"``. Measured on the course's 2-core CPU
      (torch 2.14, width 1, batch 1), neither trace+freeze nor channels-last
      was measurably faster than eager: the time goes to the oneDNN
      convolutions (~57 %), which eager already uses, instance norm (~23 %)
      and reflection padding (~9 %), none of which the JIT fuses; channels-last
      was slower (up to 2x at 512²). The variants stay for other machines:
      time them with :func:`frames_per_second`.

    The weights are copied: later training of ``model`` does not reach the copy.
    Padding/cropping stay in Python, so the traced variants accept any size.
    """
    if not isinstance(model, TransformerNet):
        raise TypeError(f"optimize_for_inference: model must be a TransformerNet, got {type(model).__name__}")
    if variant == "auto":
        variant = "eager"
    if variant not in ("freeze", "freeze_cl", "eager"):
        raise ValueError(f"optimize_for_inference: variant must be 'auto', 'freeze', 'freeze_cl' or 'eager', "
                         f"got {variant!r}")
    device = next(model.parameters()).device
    if variant == "eager":
        import copy

        return OptimizedTransformerNet(copy.deepcopy(model.body).eval(), model.config.output, False, "eager")
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
    CUDA). ``optimized=True`` times the :func:`optimize_for_inference` copy.

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
