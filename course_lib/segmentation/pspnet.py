"""PSPNet: a dilated ResNet, a pyramid pooling module and a small head.

Zhao, Shi, Qi, Wang & Jia, "Pyramid Scene Parsing Network", CVPR 2017
(arXiv 1612.01105). Read top to bottom:

1. :func:`pyramid_pooling` -- the idea of the paper in a dozen lines (a
   student exercise), and :class:`PyramidPoolingModule`, its ``nn.Module``.
2. The backbone: a torchvision ResNet whose last stages trade their stride
   for dilation (:func:`dilate_stage`), so that the features keep 1/8 or 1/16
   of the input resolution instead of 1/32; and the ``"light"`` ResNet for CPUs.
3. ImageNet weights from the torch hub cache (never a silent download).
4. :class:`PSPNetConfig`, the presets (:data:`PRESETS`, :func:`pspnet`) and
   :class:`PSPNet` itself; :func:`psp_loss` for the auxiliary loss.
5. :func:`optimize_for_inference`, :func:`count_parameters`, :func:`predict_mask`.

The model::

    image (N, 3, H, W) in [0, 1]
      -> ImageNet normalisation (inside the model)
      -> ResNet stem + layer1..layer4, dilated    layer3: (N, C3, H/s', W/s')
                                                   layer4: (N, C4, H/s,  W/s)   s = output stride 8 or 16
      -> pyramid pooling, bins 1, 2, 3, 6          (N, C4 + 4 * C4/4, H/s, W/s)
      -> 3x3 conv + BN + ReLU + dropout + 1x1 conv (N, num_classes, H/s, W/s)
      -> bilinear upsampling                       (N, num_classes, H, W)  logits

(``/s`` rounds up: odd sizes work, and the output is always exactly H x W.)
In training mode an auxiliary head on layer3 predicts the same logits from
the shallower features; its loss, weighted by 0.4 in the paper, helps the
gradient reach the early layers. It is not computed in eval mode.

Example::

    >>> model = pspnet("light", verbose=False)
    >>> model.eval()(torch.rand(1, 3, 65, 47)).shape
    torch.Size([1, 1, 65, 47])
    >>> out = model.train()(torch.rand(2, 3, 64, 64))   # training: a dict
    >>> sorted(out), tuple(out["aux"].shape)
    (['aux', 'out'], (2, 1, 64, 64))
"""
from __future__ import annotations

import copy
import dataclasses
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock

from ..core.images import load_image, to_tensor

__all__ = [
    "pyramid_pooling", "ppm_branch", "PyramidPoolingModule",
    "dilate_stage", "ResNetBackbone",
    "PSPNetConfig", "PRESETS", "pspnet_config", "pspnet", "PSPNet", "psp_loss",
    "optimize_for_inference", "count_parameters", "predict_mask",
    "MEAN", "STD", "AUX_WEIGHT",
]

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, applied inside the model
STD = (0.229, 0.224, 0.225)
AUX_WEIGHT = 0.4  # the paper's weight of the auxiliary loss


# ---------------------------------------------------------------------------
# 1. Pyramid pooling
# ---------------------------------------------------------------------------

def pyramid_pooling(features: torch.Tensor, convs: Sequence[nn.Module],
                    bins: Sequence[int] = (1, 2, 3, 6)) -> torch.Tensor:
    """Pyramid pooling of Zhao et al. (CVPR 2017, Sec. 3.2, Fig. 3c).

    For each bin size ``b``:

    1. average-pool ``features`` to a ``b x b`` grid (adaptive: cell ``(i, j)``
       is the mean over rows ``floor(i H / b) .. ceil((i+1) H / b) - 1`` and
       the same for columns; bin 1 is the global mean of each channel);
    2. apply the branch ``convs[k]`` (in PSPNet a 1x1 conv to ``C/4``
       channels + BN + ReLU): ``(N, C, b, b) -> (N, C', b, b)``;
    3. upsample bilinearly back to ``H x W`` (``align_corners=False``).

    Then concatenate ``[features, branch_1, ..., branch_K]`` along channels.
    Each pixel so sees its own feature plus summaries of the whole image (bin
    1), of its half, third and sixth -- context at four scales.

    Args:
        features: ``(N, C, H, W)``.
        convs: one module per bin, each ``(N, C, b, b) -> (N, C', b, b)``;
            a list, an ``nn.ModuleList`` or any sequence.
        bins: grid sizes; ``len(bins) == len(convs)``. A bin larger than the
            map also works (adaptive pooling then repeats values).

    Returns:
        ``(N, C + sum of the branches' C', H, W)``; with four branches of
        ``C/4`` channels, ``(N, 2C, H, W)``.

    Example::

        >>> branches = [nn.Conv2d(8, 2, 1) for _ in range(4)]
        >>> pyramid_pooling(torch.rand(1, 8, 9, 7), branches).shape
        torch.Size([1, 16, 9, 7])
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"pyramid_pooling: features must have shape (N, C, H, W), got {got}")
    convs, bins = list(convs), tuple(bins)
    if len(convs) != len(bins):
        raise ValueError(f"pyramid_pooling: need one branch per bin, got {len(convs)} branch(es) "
                         f"for bins {bins}")
    h, w = features.shape[-2:]
    outputs = [features]
    for b, conv in zip(bins, convs):
        pooled = F.adaptive_avg_pool2d(features, b)  # (N, C, b, b)
        reduced = conv(pooled)                        # (N, C', b, b)
        outputs.append(F.interpolate(reduced, size=(h, w), mode="bilinear", align_corners=False))
    return torch.cat(outputs, dim=1)


def ppm_branch(in_channels: int, out_channels: int, norm: bool = True) -> nn.Sequential:
    """One branch of the pyramid: 1x1 conv ``in -> out`` + BN + ReLU (no BN if ``norm=False``)."""
    if norm:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                             nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=True), nn.ReLU(inplace=True))


class PyramidPoolingModule(nn.Module):
    """:func:`pyramid_pooling` with its branches: ``(N, C, H, W) -> (N, C + len(bins) * C // reduction, H, W)``.

    Branches are :func:`ppm_branch` (1x1 conv to ``C // reduction`` + BN +
    ReLU), except that the bin-1 branch has **no BatchNorm** (its conv has a
    bias instead). Its input is one value per channel and image, so in
    training BatchNorm would normalise over just ``N`` numbers: with a batch
    of 1 PyTorch raises ("Expected more than 1 value per channel"), with a
    batch of 2 every channel becomes +-1 whatever the images, and small
    batches in general give statistics that are mostly noise. Dropping the
    norm there is correct at any batch size and still folds away for
    inference; GroupNorm would also work but adds an op that cannot be
    folded, and the global mean it sees is already well scaled. Bins 2, 3
    and 6 have 4, 9 and 36 values per channel and image and keep the paper's
    BatchNorm.
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6), reduction: int = 4):
        super().__init__()
        _check_int(in_channels, "PyramidPoolingModule: in_channels")
        _check_int(reduction, "PyramidPoolingModule: reduction")
        self.bins = _check_bins(bins, "PyramidPoolingModule: bins")
        branch_channels = in_channels // reduction
        if branch_channels < 1:
            raise ValueError(f"PyramidPoolingModule: in_channels // reduction must be >= 1, "
                             f"got {in_channels} // {reduction}")
        self.in_channels, self.branch_channels = in_channels, branch_channels
        self.branches = nn.ModuleList(ppm_branch(in_channels, branch_channels, norm=b > 1) for b in self.bins)

    @property
    def out_channels(self) -> int:
        return self.in_channels + len(self.bins) * self.branch_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pyramid_pooling(x, self.branches, self.bins)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, {self.in_channels} -> {self.out_channels} channels"


# ---------------------------------------------------------------------------
# 2. The dilated ResNet backbone
# ---------------------------------------------------------------------------

_BACKBONES = ("light", "resnet18", "resnet34", "resnet50")
# (layer3 channels, layer4 channels)
_CHANNELS = {"light": (64, 128), "resnet18": (256, 512), "resnet34": (256, 512), "resnet50": (1024, 2048)}
# The light backbone: ResNet-18's layout at a quarter of its width (16, 32, 64,
# 128 channels), one BasicBlock per stage.
_LIGHT_WIDTHS = (16, 32, 64, 128)
_LIGHT_BLOCKS = (1, 1, 1, 1)


def dilate_stage(stage: nn.Sequential, dilation: int, previous_dilation: int = 1) -> nn.Sequential:
    """Turn a stride-2 ResNet stage into a stride-1 stage with dilated 3x3 convs, in place.

    A 3x3 conv with dilation ``d`` samples its inputs ``d`` pixels apart: it
    keeps the receptive field the stride-2 version had without shrinking the
    map (Yu & Koltun 2016; DeepLab). Rule, as torchvision's
    ``replace_stride_with_dilation`` builds it for Bottleneck blocks: the conv
    that had the stride loses it and keeps ``previous_dilation``, every 3x3
    conv after it in the stage gets ``dilation``; the 1x1 shortcut loses its
    stride. ``padding = dilation`` keeps "same" sizes.

    torchvision refuses ``replace_stride_with_dilation`` for BasicBlock
    networks (ResNet-18/34), hence this function; it works for both block types.
    """
    _check_int(dilation, "dilate_stage: dilation")
    seen_stride = False
    for block in stage:
        for m in block.modules():  # registration order = order of use in torchvision's blocks
            if not isinstance(m, nn.Conv2d):
                continue
            strided = m.stride != (1, 1)
            m.stride = (1, 1)
            if m.kernel_size == (3, 3):
                d = previous_dilation if (strided and not seen_stride) else dilation
                m.dilation, m.padding = (d, d), (d, d)
            seen_stride = seen_stride or strided
    return stage


def _light_resnet() -> nn.Module:
    """ResNet-18's architecture at quarter width, built from torchvision's BasicBlock."""
    w0 = _LIGHT_WIDTHS[0]
    net = nn.Module()
    net.conv1 = nn.Conv2d(3, w0, 7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(w0)
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    c_in = w0
    for i, (width, n) in enumerate(zip(_LIGHT_WIDTHS, _LIGHT_BLOCKS), start=1):
        stride = 1 if i == 1 else 2
        down = None
        if stride != 1 or c_in != width:
            down = nn.Sequential(nn.Conv2d(c_in, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
        blocks = [BasicBlock(c_in, width, stride, down)] + [BasicBlock(width, width) for _ in range(n - 1)]
        setattr(net, f"layer{i}", nn.Sequential(*blocks))
        c_in = width
    for m in net.modules():  # torchvision's ResNet initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net


class ResNetBackbone(nn.Module):
    """Stem + layer1..layer4 of a ResNet; ``forward(x) -> (layer3, layer4)`` features.

    ``x`` is a normalised image batch ``(N, 3, H, W)``. With output stride
    ``s``, layer4 has ``ceil(H / s) x ceil(W / s)`` pixels (every stride-2
    step rounds up); layer3 the same at ``s = 8`` and half of layer2's at ``s = 16``.
    """

    def __init__(self, resnet: nn.Module):
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)  # stride 4
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2                            # stride 4, 8
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4                            # 8|16, 8|16

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.layer2(self.layer1(self.stem(x)))
        c3 = self.layer3(x)
        return c3, self.layer4(c3)


def _build_resnet(backbone: str, output_stride: int) -> nn.Module:
    """The torchvision ResNet (or the light one) with strides replaced by dilation, random weights."""
    dilate3, dilate4 = output_stride == 8, True  # os 16: layer4 only; os 8: layer3 and layer4
    if backbone == "resnet50":  # Bottleneck: torchvision does it
        return torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, dilate3, dilate4])
    net = _light_resnet() if backbone == "light" else getattr(torchvision.models, backbone)(weights=None)
    # BasicBlock: by hand (torchvision raises "Dilation > 1 not supported in BasicBlock")
    if dilate3:
        dilate_stage(net.layer3, dilation=2, previous_dilation=1)
        dilate_stage(net.layer4, dilation=4, previous_dilation=2)
    else:
        dilate_stage(net.layer4, dilation=2, previous_dilation=1)
    return net


# ---------------------------------------------------------------------------
# 3. ImageNet weights: from the torch hub cache, downloaded only when asked
# ---------------------------------------------------------------------------

DOWNLOAD_TIMEOUT_S = 10.0


def _imagenet_url(backbone: str) -> str:
    enum = {"resnet18": torchvision.models.ResNet18_Weights, "resnet34": torchvision.models.ResNet34_Weights,
            "resnet50": torchvision.models.ResNet50_Weights}[backbone]
    return enum.IMAGENET1K_V1.url


def _imagenet_cache_path(backbone: str) -> Path:
    # where torchvision (torch.hub.load_state_dict_from_url) stores and looks for it
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_imagenet_url(backbone))


def _imagenet_state(backbone: str, allow_download: bool) -> Tuple[Optional[dict], str]:
    """``(state_dict, how)``, or ``(None, why not)`` when not cached and downloading is not allowed."""
    url, cached = _imagenet_url(backbone), _imagenet_cache_path(backbone)
    if cached.is_file():
        try:
            return torch.load(cached, map_location="cpu", weights_only=True), f"ImageNet, from the torch hub cache ({cached})"
        except Exception as exc:
            if not allow_download:
                return None, f"the cached file {cached} is unreadable ({type(exc).__name__}); delete it"
            raise RuntimeError(f"PSPNet: the cached ImageNet weights {cached} are unreadable "
                               f"({type(exc).__name__}: {exc}); delete the file and try again, or download "
                               f"{url} to that path by hand") from None
    if not allow_download:
        return None, f"ImageNet weights not in the torch hub cache at {cached} (pretrained=True downloads them)"
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # offline must fail fast, never hang
    try:
        state = torch.hub.load_state_dict_from_url(url, model_dir=str(cached.parent), map_location="cpu",
                                                   progress=True, weights_only=True)
    except Exception as exc:
        raise RuntimeError(
            f"PSPNet: pretrained=True but the ImageNet weights of {backbone} are not cached at {cached} and "
            f"could not be downloaded from {url} ({type(exc).__name__}: {exc}). Download that file by other "
            f"means and put it at {cached}, or use pretrained=None (ImageNet if cached, else random) or "
            f"pretrained=False.") from None
    finally:
        socket.setdefaulttimeout(old)
    return state, f"ImageNet, downloaded from {url}"


# ---------------------------------------------------------------------------
# 4. The model
# ---------------------------------------------------------------------------

def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def _check_bins(bins, name: str) -> Tuple[int, ...]:
    if isinstance(bins, int) or not isinstance(bins, Sequence) or not bins:
        raise ValueError(f"{name} must be a non-empty sequence of ints, e.g. (1, 2, 3, 6), got {bins!r}")
    for b in bins:
        _check_int(b, name)
    return tuple(bins)


@dataclass
class PSPNetConfig:
    """Everything that defines a :class:`PSPNet`.

    * ``backbone``: ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` (torchvision)
      or ``"light"`` (ResNet-18's layout at quarter width, one block per stage;
      no ImageNet weights exist for it).
    * ``num_classes``: output channels; 1 for a binary mask (sigmoid +
      BCE/Jaccard), K >= 2 for softmax + cross-entropy.
    * ``output_stride``: 8 (the paper; layer3 and layer4 dilated) or 16
      (layer4 only; about 3x cheaper for ResNet-18, the CPU choice).
    * ``pretrained``: ``True`` ImageNet weights, from the torch hub cache or
      downloaded, an error otherwise; ``None`` ImageNet weights if cached,
      random init otherwise (never downloads); ``False`` random init.
    * ``aux``: build the auxiliary head on layer3 (used in training only).
    * ``dropout``: before the last 1x1 conv of both heads (paper: 0.1).
    * ``bins``, ``reduction``: the pyramid (paper: 1, 2, 3, 6 and C/4).
    * ``head_channels``: of the 3x3 conv of the head; ``None`` = layer4's
      channels / 4 (512 for ResNet-50, as in the paper). The auxiliary head
      uses layer3's channels / 4 (256 for ResNet-50, as in the reference code).
    """

    backbone: str = "resnet18"
    num_classes: int = 1
    output_stride: int = 8
    pretrained: Optional[bool] = None
    aux: bool = True
    dropout: float = 0.1
    bins: Tuple[int, ...] = (1, 2, 3, 6)
    reduction: int = 4
    head_channels: Optional[int] = None

    def __post_init__(self):
        if self.backbone not in _BACKBONES:
            raise ValueError(f"PSPNetConfig.backbone must be one of {_BACKBONES}, got {self.backbone!r}")
        _check_int(self.num_classes, "PSPNetConfig.num_classes")
        if isinstance(self.output_stride, bool) or self.output_stride not in (8, 16):
            raise ValueError(f"PSPNetConfig.output_stride must be 8 or 16, got {self.output_stride!r}")
        if not (self.pretrained is None or isinstance(self.pretrained, bool)):
            raise ValueError(f"PSPNetConfig.pretrained must be None, True or False, got {self.pretrained!r}")
        if self.pretrained is True and self.backbone == "light":
            raise ValueError("PSPNetConfig: there are no ImageNet weights for the 'light' backbone; "
                             "use pretrained=False, or a resnet backbone")
        if not isinstance(self.aux, bool):
            raise TypeError(f"PSPNetConfig.aux must be True or False, got {self.aux!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0 <= self.dropout < 1:
            raise ValueError(f"PSPNetConfig.dropout must be a number in [0, 1), got {self.dropout!r}")
        self.dropout = float(self.dropout)
        self.bins = _check_bins(self.bins, "PSPNetConfig.bins")  # JSON gives lists back: store a tuple
        _check_int(self.reduction, "PSPNetConfig.reduction")
        if self.head_channels is not None:
            _check_int(self.head_channels, "PSPNetConfig.head_channels")
        if _CHANNELS[self.backbone][1] // self.reduction < 1:
            raise ValueError(f"PSPNetConfig.reduction {self.reduction} leaves no channels in the pyramid "
                             f"branches of {self.backbone} ({_CHANNELS[self.backbone][1]} channels)")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PSPNetConfig":
        if not isinstance(d, Mapping):
            raise TypeError(f"PSPNetConfig.from_dict: d must be a mapping, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"PSPNetConfig: unknown key(s) {unknown}; known keys are {known}")
        return cls(**d)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON types (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


#: Named presets (see :func:`pspnet`).
PRESETS: Dict[str, PSPNetConfig] = {
    # trains on a 2-core CPU in minutes at 128-160 px; output stride 8 keeps
    # a 16x20 map at 128x160, enough for the 6x6 bin to mean something
    "light": PSPNetConfig(backbone="light", output_stride=8, pretrained=False),
    # ImageNet ResNet-18 if cached; output stride 16 for CPUs
    "resnet18": PSPNetConfig(backbone="resnet18", output_stride=16, pretrained=None),
    # the paper's setting (ResNet-50 at output stride 8), for a GPU
    "resnet50": PSPNetConfig(backbone="resnet50", output_stride=8, pretrained=None),
}


def pspnet_config(name: str = "light", **overrides) -> PSPNetConfig:
    """The preset ``name`` (``"light"``, ``"resnet18"``, ``"resnet50"``) with fields replaced by ``overrides``."""
    if name not in PRESETS:
        raise ValueError(f"pspnet: unknown preset {name!r}; presets are {sorted(PRESETS)}")
    return PSPNetConfig.from_dict({**PRESETS[name].to_dict(), **overrides})


def pspnet(name: str = "light", verbose: bool = True, **overrides) -> "PSPNet":
    """Build the preset ``name``, e.g. ``pspnet("light")`` or ``pspnet("resnet18", num_classes=3)``."""
    return PSPNet.from_config(pspnet_config(name, **overrides), verbose=verbose)


def _head(in_channels: int, mid_channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    """3x3 conv + BN + ReLU + dropout + 1x1 conv to the classes (the paper's final layers)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid_channels),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(mid_channels, num_classes, 1),
    )


class PSPNet(nn.Module):
    """PSPNet for images in [0, 1]: ``(N, 3, H, W) -> (N, num_classes, H, W)`` logits.

    ``PSPNet(backbone="resnet18", num_classes=1, output_stride=8,
    pretrained=None, aux=True, dropout=0.1, bins=(1, 2, 3, 6), reduction=4,
    head_channels=None, verbose=True)``; the fields are those of
    :class:`PSPNetConfig`. ``PSPNet.from_config(cfg)`` and :func:`pspnet`
    build from a config or a preset; ``PSPNet(**model.config_dict())``
    rebuilds the architecture (what ``core.checkpoints.load_pretrained`` does).

    **Output.** In eval mode, and in training mode without ``aux``: the
    logits tensor. In training mode with ``aux``: a dict ``{"out": logits,
    "aux": aux_logits}``, both ``(N, num_classes, H, W)`` -- the convention of
    torchvision's segmentation models; :func:`psp_loss` takes either form and
    applies the auxiliary weight (0.4). The dict, not a tuple, so that code
    indexing ``out["out"]`` cannot silently take the wrong element.

    **Weights.** ``model.weights_used`` is ``"imagenet"`` (backbone only; the
    heads start random) or ``"random"``; the constructor prints one line
    saying which and why (``verbose=False`` silences it).

    Inputs are normalised with the ImageNet mean and std inside the model.
    The output is upsampled to exactly the input size, whatever it is.
    """

    arch = "pspnet"

    def __init__(self, backbone: str = "resnet18", num_classes: int = 1, output_stride: int = 8,
                 pretrained: Optional[bool] = None, aux: bool = True, dropout: float = 0.1,
                 bins: Sequence[int] = (1, 2, 3, 6), reduction: int = 4, head_channels: Optional[int] = None,
                 verbose: bool = True):
        super().__init__()
        cfg = PSPNetConfig(backbone, num_classes, output_stride, pretrained, aux, dropout, bins, reduction,
                           head_channels)
        self.config = cfg
        self.inference_only = False  # set by optimize_for_inference (BatchNorm folded away)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

        # ImageNet weights first: pretrained=True fails fast, before anything is built
        state, reason = None, "asked for with pretrained=False"
        if cfg.backbone == "light":
            reason = "there are no ImageNet weights for the light backbone"
        elif cfg.pretrained is not False:
            state, reason = _imagenet_state(cfg.backbone, allow_download=cfg.pretrained is True)
        resnet = _build_resnet(cfg.backbone, cfg.output_stride)
        if state is not None:
            resnet.load_state_dict(state, strict=True)  # dilation changes no parameter shape
        self.weights_used = "imagenet" if state is not None else "random"
        self.backbone = ResNetBackbone(resnet)

        c3, c4 = _CHANNELS[cfg.backbone]
        self.ppm = PyramidPoolingModule(c4, cfg.bins, cfg.reduction)
        self.head = _head(self.ppm.out_channels, cfg.head_channels or c4 // 4, cfg.num_classes, cfg.dropout)
        self.aux_head = _head(c3, max(c3 // 4, 1), cfg.num_classes, cfg.dropout) if cfg.aux else None
        for m in [*self.ppm.modules(), *self.head.modules(), *(self.aux_head.modules() if cfg.aux else ())]:
            if isinstance(m, nn.Conv2d):
                # fan_in keeps the scale of the bin-1 branch, which has no BatchNorm after it
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for head in (self.head, self.aux_head):
            if head is not None:
                # Small classifier weights, so that training starts from logits near 0 (p ~ 0.5);
                # He init with fan_out = num_classes would give logits in the tens.
                nn.init.normal_(head[-1].weight, std=0.01)

        if verbose:
            print(f"PSPNet({cfg.backbone}, output stride {cfg.output_stride}): {self.weights_used} backbone "
                  f"weights -- {reason}")

    @classmethod
    def from_config(cls, config: PSPNetConfig | Mapping[str, Any], verbose: bool = True) -> "PSPNet":
        if isinstance(config, Mapping):
            config = PSPNetConfig.from_dict(config)
        if not isinstance(config, PSPNetConfig):
            raise TypeError(f"PSPNet.from_config: expected a PSPNetConfig or a dict, got {type(config).__name__}")
        return cls(**dataclasses.asdict(config), verbose=verbose)

    def config_dict(self) -> Dict[str, Any]:
        """The config as JSON types, with ``pretrained=False``: a checkpoint brings its own weights."""
        return {**self.config.to_dict(), "pretrained": False}

    @property
    def output_stride(self) -> int:
        return self.config.output_stride

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, x: torch.Tensor):
        if self.training and self.inference_only:
            raise RuntimeError("PSPNet: this copy was made by optimize_for_inference (BatchNorm folded into "
                               "the convolutions, no auxiliary head); it cannot be trained -- train the original")
        _check_batch(x, "PSPNet")
        size = x.shape[-2:]
        c3, c4 = self.backbone((x - self.mean) / self.std)
        out = F.interpolate(self.head(self.ppm(c4)), size=size, mode="bilinear", align_corners=False)
        if self.training and self.aux_head is not None:
            aux = F.interpolate(self.aux_head(c3), size=size, mode="bilinear", align_corners=False)
            return {"out": out, "aux": aux}
        return out

    def extra_repr(self) -> str:
        return f"weights_used={self.weights_used!r}"


def _check_batch(x, who: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a float tensor (N, 3, H, W) in [0, 1], got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        hint = " (a single image: add the batch dimension with x[None], or use predict_mask)" \
            if x.dim() == 3 and x.shape[0] == 3 else ""
        raise ValueError(f"{who} expects a batch of RGB images (N, 3, H, W), got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a float tensor in [0, 1], got dtype {x.dtype} "
                        f"(for uint8 images use x.float() / 255)")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{who}: the input is empty, shape {tuple(x.shape)}")


def psp_loss(outputs, target: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             aux_weight: float = AUX_WEIGHT) -> torch.Tensor:
    """``loss_fn(out, target) + aux_weight * loss_fn(aux, target)``, the paper's deep supervision.

    ``outputs`` is what :class:`PSPNet` returns: a logits tensor (eval mode,
    or ``aux=False``: just ``loss_fn(outputs, target)``) or the training dict
    ``{"out": ..., "aux": ...}``. The paper weights the auxiliary loss by 0.4.
    For :func:`course_lib.core.training.fit`:
    ``loss_fn=functools.partial(psp_loss, loss_fn=nn.BCEWithLogitsLoss())``.
    """
    if not callable(loss_fn):
        raise TypeError(f"psp_loss: loss_fn must be callable, got {type(loss_fn).__name__}")
    if isinstance(outputs, torch.Tensor):
        return loss_fn(outputs, target)
    if not isinstance(outputs, Mapping) or "out" not in outputs or set(outputs) - {"out", "aux"}:
        got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
        raise ValueError(f"psp_loss: outputs must be a tensor or a dict with keys 'out' (and 'aux'), got {got}")
    loss = loss_fn(outputs["out"], target)
    if "aux" in outputs:
        loss = loss + aux_weight * loss_fn(outputs["aux"], target)
    return loss


# ---------------------------------------------------------------------------
# 5. Inference
# ---------------------------------------------------------------------------

def _fold_batchnorm(module: nn.Module) -> int:
    """Fold every BatchNorm2d into the Conv2d registered just before it; returns the count.

    In torchvision's ResNet blocks and in ``nn.Sequential`` a BatchNorm that
    directly follows a conv in registration order is applied to that conv's
    output (conv1/bn1, conv2/bn2, downsample[0]/[1], ...), which is what makes
    the fold valid; :func:`optimize_for_inference` checks the result numerically.
    """
    folded = 0
    for child in module.children():
        folded += _fold_batchnorm(child)
    children = list(module.named_children())
    for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def optimize_for_inference(model: PSPNet, verbose: bool = True) -> PSPNet:
    """An eval-mode copy of ``model`` for prediction: outputs equal to the eager model's to 1e-4.

    * BatchNorm folded into the preceding convolutions
      (``torch.nn.utils.fusion.fuse_conv_bn_eval``: ``W' = W * gamma / sigma``,
      ``b' = (b - mu) * gamma / sigma + beta``) -- one pass over memory less per layer;
    * the auxiliary head dropped (it is never used in eval mode);
    * weights in channels_last layout, which oneDNN/cuDNN convolutions prefer.

    ``model`` itself is left unchanged. The copy cannot be trained (its
    forward raises in training mode). It is checked against the eager model
    on a small input; a mismatch beyond ``1e-4 * max(1, |logits|)`` raises
    (untrained networks can have logits in the hundreds, and float32 rounding
    scales with them).
    """
    if not isinstance(model, PSPNet):
        raise TypeError(f"optimize_for_inference: expected a PSPNet, got {type(model).__name__}")
    fast = copy.deepcopy(model).eval()
    fast.aux_head = None
    folded = _fold_batchnorm(fast)
    left = [n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise RuntimeError(f"optimize_for_inference: could not fold BatchNorm layer(s) {left}")
    fast = fast.to(memory_format=torch.channels_last)
    fast.inference_only = True

    device = next(model.parameters()).device
    probe = torch.rand(2, 3, 37, 29, generator=torch.Generator().manual_seed(0)).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = model(probe)
            err = (fast(probe) - ref).abs().max().item()
    finally:
        model.train(was_training)
    # float32 rounding grows with the size of the logits: compare relative to them (and to 1)
    scale = max(1.0, ref.abs().max().item())
    if not err <= 1e-4 * scale:
        raise RuntimeError(f"optimize_for_inference: the optimised model differs from the eager one by "
                           f"{err:.3g} on a test input (logits up to {scale:.3g})")
    if verbose:
        print(f"optimize_for_inference: folded {folded} BatchNorm layers, dropped the auxiliary head, "
              f"channels_last; max difference {err:.1e} on a test input")
    return fast


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters: model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _single_image(image) -> torch.Tensor:
    """A PIL image or a tensor (3, H, W) / (1, 3, H, W) in [0, 1] -> (1, 3, H, W) float."""
    if not isinstance(image, torch.Tensor):
        if type(image).__module__.startswith("PIL."):
            return to_tensor(load_image(image, mode="RGB"))[None]  # any mode -> RGB, alpha flattened
        raise TypeError(f"predict_mask: image must be a PIL image or a tensor (3, H, W) / (1, 3, H, W) "
                        f"in [0, 1], got {type(image).__name__}")
    x = image
    if x.dim() == 4 and x.shape[0] != 1:
        raise ValueError(f"predict_mask: one image at a time, got a batch of shape {tuple(x.shape)}; "
                         f"call the model directly for batches")
    if x.dim() not in (3, 4):
        raise ValueError(f"predict_mask: image must have shape (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-3] != 3:
        hint = " (grayscale? repeat it: x.expand(3, -1, -1))" if x.shape[-3] == 1 else \
            " (RGBA? drop alpha: x[:3])" if x.shape[-3] == 4 else ""
        raise ValueError(f"predict_mask: image must have 3 (RGB) channels, got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"predict_mask: image must be a float tensor in [0, 1], got dtype {x.dtype} "
                        f"(for uint8 use image.float() / 255)")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"predict_mask: the image is empty, shape {tuple(x.shape)}")
    lo, hi = x.min().item(), x.max().item()
    if not (lo >= -1e-3 and hi <= 1 + 1e-3):  # also catches NaN
        raise ValueError(f"predict_mask: image values must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]"
                         + (" (0-255 values? divide by 255)" if hi > 1.5 else ""))
    return x.reshape(1, 3, *x.shape[-2:])


def _resize_target(size, h: int, w: int, stride: int) -> Tuple[int, int]:
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"predict_mask: size must be an int or (height, width), got {size!r}")
        return _check_int(size[0], "predict_mask: size[0]"), _check_int(size[1], "predict_mask: size[1]")
    _check_int(size, "predict_mask: size")
    scale = size / max(h, w)  # longer side -> size, both sides a multiple of the output stride
    return (max(stride, round(h * scale / stride) * stride), max(stride, round(w * scale / stride) * stride))


def predict_mask(model: nn.Module, image, size=None, threshold: Optional[float] = 0.5) -> torch.Tensor:
    """Segment one image; returns ``(H, W)`` float at the image's own resolution.

    Args:
        model: a :class:`PSPNet` (or any model ``(1, 3, h, w) -> (1, K, h, w)`` logits);
            run in eval mode and without gradients, its mode restored afterwards.
        image: PIL image (any mode; converted to RGB) or float tensor
            ``(3, H, W)`` / ``(1, 3, H, W)`` in [0, 1].
        size: ``None`` runs at the image's size; an int scales the longer
            side to ``size`` and rounds both sides to a multiple of the
            model's output stride; ``(h, w)`` resizes to exactly that. The
            logits are resized back to ``H x W`` before the sigmoid.
        threshold: ``None`` returns the foreground probability map in [0, 1];
            a number (default 0.5) returns the mask ``probability >= threshold``
            as 0./1. floats.

    The foreground probability is ``sigmoid(logit)`` for one class and the
    softmax probability of class 1 for two classes; for more classes use the
    model's logits directly.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"predict_mask: model must be an nn.Module, got {type(model).__name__}")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0 <= threshold <= 1):
        raise ValueError(f"predict_mask: threshold must be None or a number in [0, 1], got {threshold!r}")
    x = _single_image(image)
    h, w = x.shape[-2:]
    param = next(model.parameters(), None)
    x = x.to(param.device if param is not None else "cpu")
    if size is not None:
        target = _resize_target(size, h, w, getattr(model, "output_stride", 8))
        if target != (h, w):
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        model.train(was_training)
    if isinstance(logits, Mapping):
        logits = logits["out"]
    if logits.dim() != 4 or logits.shape[0] != 1:
        raise ValueError(f"predict_mask: the model must return logits (1, K, h, w), got {tuple(logits.shape)}")
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    k = logits.shape[1]
    if k == 1:
        prob = torch.sigmoid(logits[0, 0])
    elif k == 2:
        prob = torch.softmax(logits[0], dim=0)[1]
    else:
        raise ValueError(f"predict_mask: the model has {k} classes; a foreground probability needs 1 (sigmoid) "
                         f"or 2 (softmax) -- use model(x).softmax(1) for {k} classes")
    prob = prob.float().cpu()
    return prob if threshold is None else (prob >= threshold).float()
