"""PSPNet: a dilated ResNet, a pyramid pooling module and a small head.

Zhao, Shi, Qi, Wang & Jia, "Pyramid Scene Parsing Network", CVPR 2017 (arXiv 1612.01105)::

    image (N, 3, H, W) in [0, 1]
      -> ImageNet normalisation (inside the model)
      -> ResNet stem + layer1..layer4, dilated    layer3: (N, C3, H/s', W/s')
                                                   layer4: (N, C4, H/s,  W/s)   s = output stride 8 or 16
      -> pyramid pooling, bins 1, 2, 3, 6          (N, C4 + 4 * C4/4, H/s, W/s)
      -> 3x3 conv + BN + ReLU + dropout + 1x1 conv (N, num_classes, H/s, W/s)
      -> bilinear upsampling                       (N, num_classes, H, W)  logits

(``/s`` rounds up: odd sizes work, and the output is always exactly H x W.) In training mode an
auxiliary head on layer3 predicts the same logits from the shallower features; its loss, weighted
by 0.4 in the paper (:func:`psp_loss`), helps the gradient reach the early layers.

Here: :func:`pyramid_pooling` (a student exercise), :class:`PSPNet` and its presets (:func:`pspnet`).
The dilated backbone is in :mod:`.backbone`, ``predict_mask`` (one image, checked) in :mod:`.inference`.

    >>> model = pspnet("light", verbose=False)
    >>> model.eval()(torch.rand(1, 3, 65, 47)).shape
    torch.Size([1, 1, 65, 47])
    >>> out = model.train()(torch.rand(2, 3, 64, 64))   # training: a dict
    >>> sorted(out), tuple(out["aux"].shape)
    (['aux', 'out'], (2, 1, 64, 64))
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.checks import ConfigMixin, InputError, check_choice, check_int, check_number
from .backbone import BACKBONES, CHANNELS, ResNetBackbone, resnet_with_weights

__all__ = ["pyramid_pooling", "ppm_branch", "PyramidPoolingModule", "PSPNetConfig", "PRESETS", "pspnet_config",
           "pspnet", "PSPNet", "psp_loss", "MEAN", "STD", "AUX_WEIGHT"]

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, applied inside the model
STD = (0.229, 0.224, 0.225)
AUX_WEIGHT = 0.4  # the paper's weight of the auxiliary loss


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

    The arguments are the fields of :class:`PSPNetConfig`; :func:`pspnet` builds a preset and
    ``PSPNet(**model.config_dict())`` rebuilds the architecture (as checkpoint loading does).
    Output: the logits, or in training mode with ``aux`` the dict ``{"out": logits, "aux":
    aux_logits}`` (torchvision's convention; :func:`psp_loss` takes either). ``weights_used`` is
    ``"imagenet"`` (backbone only) or ``"random"``; the constructor prints which and why
    (``verbose=False`` silences it). Inputs are normalised with ImageNet's mean and std inside.
    """

    arch = "pspnet"

    def __init__(self, backbone: str = "resnet18", num_classes: int = 1, output_stride: int = 8,
                 pretrained: Optional[bool] = None, aux: bool = True, dropout: float = 0.1,
                 bins: Sequence[int] = (1, 2, 3, 6), reduction: int = 4, head_channels: Optional[int] = None,
                 verbose: bool = True):
        super().__init__()
        cfg = self.config = PSPNetConfig(backbone, num_classes, output_stride, pretrained, aux, dropout, bins,
                                         reduction, head_channels)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

        resnet, self.weights_used, reason = resnet_with_weights(cfg.backbone, cfg.output_stride, cfg.pretrained)

        c3, c4 = CHANNELS[cfg.backbone]
        self.backbone = ResNetBackbone(resnet)                                  # -> layer3, layer4 features
        self.ppm = PyramidPoolingModule(c4, cfg.bins, cfg.reduction)            # C4 -> 2 C4 channels
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

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        c3, c4 = self.backbone((x - self.mean) / self.std)
        out = F.interpolate(self.head(self.ppm(c4)), size=size, mode="bilinear", align_corners=False)
        if self.training and self.aux_head is not None:
            aux = F.interpolate(self.aux_head(c3), size=size, mode="bilinear", align_corners=False)
            return {"out": out, "aux": aux}
        return out

    @classmethod
    def from_config(cls, config: PSPNetConfig | Mapping[str, Any], verbose: bool = True) -> "PSPNet":
        if isinstance(config, Mapping):
            config = PSPNetConfig.from_dict(config)
        if not isinstance(config, PSPNetConfig):
            raise InputError(f"PSPNet.from_config: expected a PSPNetConfig or a dict, got {type(config).__name__}")
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

    def extra_repr(self) -> str:
        return f"weights_used={self.weights_used!r}"


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

    Then concatenate ``[features, branch_1, ..., branch_K]`` along channels:
    ``(N, C + sum of the branches' C', H, W)``, ``(N, 2C, H, W)`` for four branches of ``C/4``.
    Each pixel so sees its own feature plus summaries of the whole image (bin
    1), of its half, third and sixth -- context at four scales. ``convs`` holds one
    module per bin (any sequence); a bin larger than the map also works.

        >>> branches = [nn.Conv2d(8, 2, 1) for _ in range(4)]
        >>> pyramid_pooling(torch.rand(1, 8, 9, 7), branches).shape
        torch.Size([1, 16, 9, 7])
    """
    h, w = features.shape[-2:]
    outputs = [features]
    for b, conv in zip(bins, convs, strict=True):
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

    Branches are :func:`ppm_branch`, except that the bin-1 branch has **no BatchNorm** (its
    conv has a bias instead): its input is one value per channel and image, so in training
    BatchNorm would normalise over just ``N`` numbers (batch 1 raises "Expected more than 1 value
    per channel", batch 2 makes every channel +-1 whatever the images). Bins 2, 3 and 6 have 4, 9
    and 36 values per channel and image and keep the paper's BatchNorm.
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6), reduction: int = 4):
        super().__init__()
        self.bins = tuple(bins)
        self.in_channels, self.branch_channels = in_channels, in_channels // reduction
        self.branches = nn.ModuleList(ppm_branch(in_channels, self.branch_channels, norm=b > 1) for b in self.bins)

    @property
    def out_channels(self) -> int:
        return self.in_channels + len(self.bins) * self.branch_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pyramid_pooling(x, self.branches, self.bins)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, {self.in_channels} -> {self.out_channels} channels"


@dataclass
class PSPNetConfig(ConfigMixin):
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

    def __post_init__(self):  # checked where configs enter: constructor, presets, checkpoints
        check_choice(self.backbone, BACKBONES, "PSPNetConfig.backbone")
        check_int(self.num_classes, "PSPNetConfig.num_classes", minimum=1)
        check_choice(self.output_stride, (8, 16), "PSPNetConfig.output_stride")
        check_choice(self.pretrained, (None, True, False), "PSPNetConfig.pretrained")
        if self.pretrained is True and self.backbone == "light":
            raise InputError("PSPNetConfig: there are no ImageNet weights for the 'light' backbone; "
                             "use pretrained=False, or a resnet backbone")
        check_choice(self.aux, (True, False), "PSPNetConfig.aux")
        self.dropout = check_number(self.dropout, "PSPNetConfig.dropout", low=0, high=1, high_open=True)
        if isinstance(self.bins, (int, str)) or not self.bins:
            raise InputError(f"PSPNetConfig.bins must be a non-empty sequence of ints, e.g. (1, 2, 3, 6), "
                             f"got {self.bins!r}")
        self.bins = tuple(check_int(b, "PSPNetConfig.bins", minimum=1) for b in self.bins)  # JSON gives lists
        check_int(self.reduction, "PSPNetConfig.reduction", minimum=1)
        if self.head_channels is not None:
            check_int(self.head_channels, "PSPNetConfig.head_channels", minimum=1)
        if CHANNELS[self.backbone][1] // self.reduction < 1:
            raise InputError(f"PSPNetConfig.reduction {self.reduction} leaves no channels in the pyramid "
                             f"branches of {self.backbone} ({CHANNELS[self.backbone][1]} channels)")


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
        raise InputError(f"pspnet: unknown preset {name!r}; presets are {sorted(PRESETS)}")
    return PSPNetConfig.from_dict({**PRESETS[name].to_dict(), **overrides})


def pspnet(name: str = "light", verbose: bool = True, **overrides) -> "PSPNet":
    """Build the preset ``name``, e.g. ``pspnet("light")`` or ``pspnet("resnet18", num_classes=3)``."""
    return PSPNet.from_config(pspnet_config(name, **overrides), verbose=verbose)


def psp_loss(outputs, target: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             aux_weight: float = AUX_WEIGHT) -> torch.Tensor:
    """``loss_fn(out, target) + aux_weight * loss_fn(aux, target)``, the paper's deep supervision.

    ``outputs`` is what :class:`PSPNet` returns: a logits tensor (eval mode,
    or ``aux=False``: just ``loss_fn(outputs, target)``) or the training dict
    ``{"out": ..., "aux": ...}``. The paper weights the auxiliary loss by 0.4.
    For :func:`course_lib.core.training.fit`:
    ``loss_fn=functools.partial(psp_loss, loss_fn=nn.BCEWithLogitsLoss())``.
    """
    if isinstance(outputs, torch.Tensor):
        return loss_fn(outputs, target)
    if not isinstance(outputs, Mapping) or "out" not in outputs or set(outputs) - {"out", "aux"}:
        got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
        raise InputError(f"psp_loss: outputs must be a tensor or a dict with keys 'out' (and 'aux'), got {got}")
    loss = loss_fn(outputs["out"], target)
    if "aux" in outputs:
        loss = loss + aux_weight * loss_fn(outputs["aux"], target)
    return loss
