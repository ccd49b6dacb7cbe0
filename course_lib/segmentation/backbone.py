"""PSPNet's backbone: a torchvision ResNet whose last stages trade their stride for dilation (:func:`dilate_stage`),
keeping 1/8 or 1/16 of the input resolution instead of 1/32; ImageNet weights by :func:`imagenet_state`."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock

__all__ = ["BACKBONES", "CHANNELS", "dilate_stage", "ResNetBackbone", "build_resnet", "imagenet_state",
           "resnet_with_weights"]

BACKBONES = ("light", "resnet18", "resnet34", "resnet50")
#: (layer3 channels, layer4 channels)
CHANNELS = {"light": (64, 128), "resnet18": (256, 512), "resnet34": (256, 512), "resnet50": (1024, 2048)}
DOWNLOAD_TIMEOUT_S = 10.0


def dilate_stage(stage: nn.Sequential, dilation: int, previous_dilation: int = 1) -> nn.Sequential:
    """Turn a stride-2 ResNet stage into a stride-1 stage with dilated 3x3 convs, in place.

    A 3x3 conv with dilation ``d`` samples its inputs ``d`` pixels apart: it keeps the receptive field the
    stride-2 version had without shrinking the map (Yu & Koltun 2016; DeepLab). Rule, as torchvision's
    ``replace_stride_with_dilation`` builds it for Bottleneck blocks: the conv that had the stride loses it and
    keeps ``previous_dilation``, every 3x3 conv after it in the stage gets ``dilation``; the 1x1 shortcut loses
    its stride. ``padding = dilation`` keeps "same" sizes. It works for both block types (torchvision refuses
    BasicBlock networks, ResNet-18/34).
    """
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
    """ResNet-18's layout at a quarter of its width (16, 32, 64, 128 channels), one BasicBlock per stage."""
    net = nn.Module()
    net.conv1 = nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(16)
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    c_in = 16
    for i, width in enumerate((16, 32, 64, 128), start=1):
        stride = 1 if i == 1 else 2
        down = None if i == 1 else nn.Sequential(nn.Conv2d(c_in, width, 1, stride=2, bias=False), nn.BatchNorm2d(width))
        setattr(net, f"layer{i}", nn.Sequential(BasicBlock(c_in, width, stride, down)))
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


def build_resnet(backbone: str, output_stride: int) -> nn.Module:
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


def imagenet_state(backbone: str, allow_download: bool) -> Tuple[Optional[dict], str]:
    """``(state_dict, how)``, or ``(None, why not)`` when not cached and downloading is not allowed."""
    weights = {"resnet18": torchvision.models.ResNet18_Weights, "resnet34": torchvision.models.ResNet34_Weights,
               "resnet50": torchvision.models.ResNet50_Weights}[backbone]
    url = weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)  # where torch.hub keeps it
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


def resnet_with_weights(backbone: str, output_stride: int, pretrained: Optional[bool]):
    """``(dilated ResNet, "imagenet" | "random", why)``; the weights are looked up first, so that
    ``pretrained=True`` fails fast, before anything is built."""
    state, reason = None, "asked for with pretrained=False"
    if backbone == "light":
        reason = "there are no ImageNet weights for the light backbone"
    elif pretrained is not False:
        state, reason = imagenet_state(backbone, allow_download=pretrained is True)
    resnet = build_resnet(backbone, output_stride)
    if state is not None:
        resnet.load_state_dict(state, strict=True)  # dilation changes no parameter shape
    return resnet, ("imagenet" if state is not None else "random"), reason
