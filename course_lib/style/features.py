"""VGG feature extractor for style transfer, with layers addressed by name.

:class:`VGGFeatures` wraps the convolutional part of torchvision's VGG19 (or VGG16) and returns a dict
``name -> activation`` for the layers asked for, named as in the papers: ``conv1_1, relu1_1, conv1_2, relu1_2,
pool1, conv2_1, ..., relu5_4`` (VGG16 ends at ``relu5_3``; :func:`layer_names` lists them). Images in [0, 1]
(the ImageNet ``MEAN``/``STD`` normalisation is applied inside); ReLUs not in place (they would overwrite the
``conv*`` activations returned); truncated after the last layer asked for; frozen, so gradients flow to the
*input* only. ``pooling="avg"`` (Gatys et al., CVPR 2016: smoother gradients) or ``"max"`` (as trained).

Weights: ``"imagenet"`` (torchvision's, from the torch hub cache or downloaded; an error if neither works),
``"random"``, or ``"auto"`` (default: ImageNet if cached or downloadable within a short timeout, else random).
The constructor prints one line saying which weights it used and why; ``weights_used`` records it.

Random weights still support texture synthesis (Ustyuzhaninov et al., ICLR 2017) and style transfer (He, Wang &
Hopcroft, NeurIPS 2016) provided the activations are well scaled at every depth: after a seeded He initialisation
each convolution (biases are zero) is rescaled so that its output has unit mean square on a fixed batch of
smoothed seeded noise, layer by layer (Mishkin & Matas 2016). Every style layer then contributes to the Gram loss
at a comparable scale.
"""
from __future__ import annotations

import os
import socket
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.checks import InputError, check_choice

__all__ = ["VGGFeatures", "layer_names", "min_input_side", "features_for", "MEAN", "STD", "ARCHS"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# convolutions per block
_BLOCKS = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}
_CHANNELS = (64, 128, 256, 512, 512)
ARCHS = tuple(_BLOCKS)
_URLS = {  # torchvision's IMAGENET1K_V1 weights
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
DOWNLOAD_TIMEOUT_S = 5.0


def layer_names(arch: str = "vgg19") -> list[str]:
    """All addressable layer names of ``arch`` in forward order: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, ...``"""
    names = []
    for b, n in enumerate(_BLOCKS[check_choice(arch, ARCHS, 'arch')], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def min_input_side(layers: Iterable[str], arch: str = "vgg19") -> int:
    """The smallest image side (pixels) that reaches every layer of ``layers``: ``2 ** poolings``.

    Each 2x2 pooling on the way halves the side (rounding down); a side that reaches 0 fails.
    VGG19 down to ``conv5_1`` (Gatys' style layers): 16; VGG16 down to ``relu4_3`` (Johnson's): 8.
    """
    names = layer_names(arch)
    layers = [layers] if isinstance(layers, str) else list(layers)
    deepest = max(names.index(n) for n in layers)
    return 2 ** sum(n.startswith("pool") for n in names[: deepest + 1])


def _build(arch: str, pooling: str) -> nn.Sequential:
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    c_in = 3
    for b, (n, c) in enumerate(zip(_BLOCKS[arch], _CHANNELS), start=1):
        for i in range(1, n + 1):
            layers[f"conv{b}_{i}"] = nn.Conv2d(c_in, c, 3, padding=1)
            layers[f"relu{b}_{i}"] = nn.ReLU(inplace=False)
            c_in = c
        layers[f"pool{b}"] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
    return nn.Sequential(layers)


def _torchvision_state(arch: str, allow_download: bool):
    """ImageNet conv weights keyed ``features.<index>...`` or raise OSError/RuntimeError."""
    url = _URLS[arch]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True), f"found in the torch hub cache ({cached})"
    if not allow_download:
        raise OSError(f"not cached at {cached}")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # no network must fail fast, never hang
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    finally:
        socket.setdefaulttimeout(old)
    return state, f"downloaded from {url}"


def _load_imagenet(net: nn.Sequential, state) -> None:
    # torchvision's features are numbered 0, 1, 2, ... in the same order as our named layers
    mapping = {str(i): name for i, name in enumerate(net._modules)}
    own = {}
    for key, value in state.items():
        if key.startswith("features."):
            _, idx, kind = key.split(".")
            own[f"{mapping[idx]}.{kind}"] = value
    net.load_state_dict(own, strict=True)


@torch.no_grad()
def _random_normalised(net: nn.Sequential, seed: int, mean, std) -> None:
    """Seeded He init, then scale each conv so its output has unit mean square on a reference batch."""
    g = torch.Generator().manual_seed(seed)
    for m in net:
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            m.bias.zero_()
    g = torch.Generator().manual_seed(seed + 1)  # the reference batch: smooth seeded noise, a stand-in for photos
    x = F.interpolate(torch.rand(4, 3, 16, 16, generator=g), size=64, mode="bilinear", align_corners=False)
    x = ((x + 0.1 * torch.rand(4, 3, 64, 64, generator=g)).clamp(0, 1) - mean) / std
    for m in net:
        x = m(x)
        if isinstance(m, nn.Conv2d):
            scale = x.pow(2).mean().sqrt().clamp_min(1e-12)
            m.weight.div_(scale)  # bias is zero, so the output scales by the same factor
            x = x / scale


class VGGFeatures(nn.Module):
    """Frozen VGG19/VGG16 returning the activations of named layers.

    ``layers``: names from :func:`layer_names` (e.g. ``("conv4_2", "conv1_1")``); ``arch``: ``"vgg19"`` or
    ``"vgg16"``; ``weights``: ``"auto"`` | ``"imagenet"`` | ``"random"`` and ``pooling``: ``"avg"`` | ``"max"`` (see
    the module docstring); ``seed``: of the random weights; ``verbose``: print which weights were used.
    ``forward(x)`` takes ``(N, 3, H, W)`` or ``(3, H, W)`` (one channel is repeated to three) in [0, 1] and
    returns ``{name: (N, C_l, H_l, W_l)}``.
    """

    def __init__(self, layers: Iterable[str], arch: str = "vgg19", weights: str = "auto",
                 pooling: str = "avg", seed: int = 0, verbose: bool = True):
        super().__init__()
        check_choice(arch, ARCHS, "VGGFeatures: arch")
        layers = tuple(dict.fromkeys((layers,) if isinstance(layers, str) else layers))  # unique, in order
        if not layers:
            raise InputError("VGGFeatures: ask for at least one layer, e.g. ('conv4_2',)")
        valid = layer_names(arch)
        unknown = [name for name in layers if name not in valid]
        if unknown:
            raise InputError(f"VGGFeatures: unknown layer(s) {unknown} for {arch}; valid names: {', '.join(valid)}")
        check_choice(weights, ("auto", "imagenet", "random"), "VGGFeatures: weights")
        check_choice(pooling, ("max", "avg"), "VGGFeatures: pooling")
        self.arch, self.pooling, self.layers = arch, pooling, layers
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

        net = _build(arch, pooling)
        if weights in ("auto", "imagenet"):
            try:
                state, how = _torchvision_state(arch, allow_download=True)
                _load_imagenet(net, state)
                self.weights_used, reason = "imagenet", how
            except Exception as exc:  # no network, refused, corrupt cache ...
                if weights == "imagenet":
                    raise RuntimeError(
                        f"VGGFeatures: ImageNet weights for {arch} are neither cached in "
                        f"{Path(torch.hub.get_dir()) / 'checkpoints'} nor downloadable from {_URLS[arch]} "
                        f"({type(exc).__name__}: {exc}). Download the file by other means and put it there, "
                        "or use weights='random'.") from None
                _random_normalised(net, seed, self.mean, self.std)
                self.weights_used = "random (offline fallback)"
                reason = (f"ImageNet weights not cached and not downloadable ({type(exc).__name__}); "
                          "results look different from the papers' -- see the module docstring")
        else:
            _random_normalised(net, seed, self.mean, self.std)
            self.weights_used, reason = "random", "asked for with weights='random'"
        if pooling == "avg" and self.weights_used == "imagenet":
            reason += "; max pooling replaced by average pooling"

        last = max(valid.index(name) for name in layers)
        self.features = nn.Sequential(OrderedDict(list(net.named_children())[: last + 1]))
        self.requires_grad_(False)
        self.eval()
        if verbose:
            print(f"VGGFeatures({arch}, {pooling} pooling): using {self.weights_used} weights -- {reason}")

    @property
    def min_side(self) -> int:
        """The smallest image side the requested layers can be computed for (see :func:`min_input_side`)."""
        return min_input_side(self.layers, self.arch)

    def train(self, mode: bool = True):  # frozen: always in eval mode
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict:
        if x.dim() == 3:
            x = x.unsqueeze(0)
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std  # gray (N, 1, H, W) repeated to RGB
        out = {}
        for name, module in self.features.named_children():
            x = module(x)
            if name in self.layers:
                out[name] = x
        return out

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}, weights_used={self.weights_used!r}"


def features_for(features: VGGFeatures | None, layers, weights: str = "auto", seed: int = 0,
                 who: str = "stylize") -> VGGFeatures:
    """``features`` if it computes every layer of ``layers``, or (``None``) a new average-pooling VGG19."""
    if features is None:
        return VGGFeatures(layers, weights=weights, pooling="avg", seed=seed)
    missing = [n for n in layers if n not in features.layers]
    if missing:
        raise InputError(f"{who}: the features given do not compute layer(s) {missing}; "
                         f"build VGGFeatures({list(layers)!r}, ...)")
    return features
