"""Super-resolution models: ESPCN (sub-pixel convolution) and a JPEG deblocking net.

ESPCN (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016) works at the *low* resolution::

    f1 = tanh(W1 * x + b1)              64 maps, 5x5
    f2 = tanh(W2 * f1 + b2)             32 maps, 3x3
    y  = PS(W3 * f2 + b3)               C r^2 maps, 3x3, then the pixel shuffle PS

The last convolution predicts ``r^2`` sub-pixels per LR pixel and channel, and :func:`pixel_shuffle`
puts each group into an ``r x r`` block of the output: ``r^2`` times cheaper than SRCNN, which
upsamples first and convolves at the high resolution.

    >>> ESPCN(espcn_paper(scale=3))(torch.rand(1, 1, 16, 16)).shape
    torch.Size([1, 1, 48, 48])

Then :func:`icnr_` (no checkerboard at the start), :class:`DeblockNet` (AR-CNN) and :class:`DeblockThenSR`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import torch
import torch.nn as nn

from ..core.checks import ConfigMixin, InputError, check_choice, check_int, check_number, check_tensor

__all__ = ["ESPCNConfig", "espcn_paper", "espcn_lecture", "ESPCN", "activation", "pixel_shuffle",
           "pixel_unshuffle", "icnr_", "DeblockConfig", "DeblockNet", "DeblockThenSR", "count_parameters", "flops"]

ACTIVATIONS = ("tanh", "leaky_relu", "prelu", "relu")


class ESPCN(nn.Module):
    """``(N, C, H, W) -> (N, C, rH, rW)``; ``ESPCN(espcn_paper(3))``, ``ESPCN(scale=2, channels="rgb")``."""

    arch = "espcn"

    def __init__(self, config: ESPCNConfig | dict | None = None, **kwargs):
        super().__init__()
        cfg = self.config = _config(ESPCNConfig, config, kwargs)
        c, r = cfg.in_channels, cfg.scale
        (f1, f2), (k1, k2, k3) = cfg.features, cfg.kernels  # the paper: (64, 32) maps, (5, 3, 3) kernels
        self.features = nn.Sequential(
            nn.Conv2d(c, f1, k1, padding=k1 // 2),               # feature extraction: C -> 64 maps, 5x5
            activation(cfg.activation, f1, cfg.negative_slope),  # tanh (the paper), LeakyReLU, PReLU or ReLU
            nn.Conv2d(f1, f2, k2, padding=k2 // 2),              # non-linear mapping: 64 -> 32 maps, 3x3
            activation(cfg.activation, f2, cfg.negative_slope),
        )
        self.to_subpixels = nn.Conv2d(f2, c * r * r, k3, padding=k3 // 2)  # r*r sub-pixels per LR pixel
        self.shuffle = nn.PixelShuffle(r)  # = pixel_shuffle below, as a fast built-in
        if cfg.icnr:
            icnr_(self.to_subpixels.weight, r)
            nn.init.zeros_(self.to_subpixels.bias)  # a bias that differs between sub-pixels is a checkerboard
        self.scale, self.in_channels, self.out_channels = r, c, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.to_subpixels(self.features(x)))
        if self.config.output_activation == "sigmoid":
            return torch.sigmoid(y)
        if self.config.output_activation == "clamp" and not self.training:
            return y.clamp(0.0, 1.0)
        return y

    @classmethod
    def from_dict(cls, d) -> "ESPCN":
        return cls(ESPCNConfig.from_dict(d))

    def config_dict(self) -> dict:
        """The config as JSON types: ``ESPCN(**model.config_dict())`` rebuilds the model."""
        return self.config.to_dict()


@dataclass
class ESPCNConfig(ConfigMixin):
    """An ESPCN; the defaults are the paper's model at x3 (Y channel, 5-3-3 kernels, 64/32 maps, tanh).

    ``channels``: ``"y"`` (luma only; chroma is enlarged bicubically, see :func:`.inference.upscale`)
    or ``"rgb"``. ``output_activation``: ``None`` (linear, the paper), ``"sigmoid"`` (the lecture:
    always a valid image) or ``"clamp"`` (clamped in eval mode only: while training a clamp would stop
    the gradient of every pixel that overshoots). ``icnr``: start the last layer with :func:`icnr_`.
    """

    scale: int = 3
    channels: str = "y"
    features: Tuple[int, int] = (64, 32)
    kernels: Tuple[int, int, int] = (5, 3, 3)
    activation: str = "tanh"
    negative_slope: float = 0.2
    output_activation: Optional[str] = None
    icnr: bool = False

    def __post_init__(self):  # checked once, here: this is where a checkpoint's config comes in
        check_int(self.scale, "ESPCNConfig.scale", minimum=1)
        check_choice(self.channels, ("rgb", "y"), "ESPCNConfig.channels")
        self.features, self.kernels = tuple(self.features), tuple(self.kernels)  # JSON gives lists
        if len(self.features) != 2 or len(self.kernels) != 3:
            raise InputError(f"ESPCNConfig: features must be two ints (the hidden layers) and kernels three odd "
                             f"ints (one per layer), got features={self.features}, kernels={self.kernels}")
        for i, f in enumerate(self.features):
            check_int(f, f"ESPCNConfig.features[{i}]", minimum=1)
        for i, k in enumerate(self.kernels):
            if check_int(k, f"ESPCNConfig.kernels[{i}]", minimum=1) % 2 == 0:
                raise InputError(f"ESPCNConfig.kernels must be odd ('same' padding keeps the LR size), "
                                 f"got {self.kernels}")
        check_choice(self.activation, ACTIVATIONS, "ESPCNConfig.activation")
        self.negative_slope = check_number(self.negative_slope, "ESPCNConfig.negative_slope", low=0)
        check_choice(self.output_activation, (None, "sigmoid", "clamp"), "ESPCNConfig.output_activation")
        if not isinstance(self.icnr, bool):
            raise InputError(f"ESPCNConfig.icnr must be True or False, got {self.icnr!r}")

    @property
    def in_channels(self) -> int:
        return 1 if self.channels == "y" else 3


def espcn_paper(scale: int = 3) -> ESPCNConfig:
    """Shi et al. 2016: Y channel, 5-3-3 kernels, 64 and 32 maps, tanh (better than ReLU here), linear output."""
    return ESPCNConfig(scale=scale)


def espcn_lecture(scale: int = 3) -> ESPCNConfig:
    """The lecture's Keras model: RGB, three 5x5 layers (64, 64), LeakyReLU(0.2), sigmoid output."""
    return ESPCNConfig(scale=scale, channels="rgb", features=(64, 64), kernels=(5, 5, 5),
                       activation="leaky_relu", output_activation="sigmoid")


def activation(name: str, maps: int, negative_slope: float = 0.2) -> nn.Module:
    """tanh (paper), LeakyReLU (lecture), ReLU, or PReLU: one learned slope per map (He et al. 2015)."""
    if name == "prelu":
        return nn.PReLU(maps)
    return {"tanh": nn.Tanh(), "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(negative_slope)}[name]


def _config(cls, config, kwargs):
    """A config from a config, a dict (a checkpoint's sidecar) or keyword arguments."""
    if isinstance(config, cls):
        return dataclasses.replace(config, **kwargs)
    return cls.from_dict({**(config or {}), **kwargs})


def pixel_shuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sub-pixel rearrangement ``(N, C r^2, H, W) -> (N, C, rH, rW)``, equal to ``nn.PixelShuffle(r)``.

    ``out[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h, w]``: the ``r^2`` channels of group ``c``
    at LR pixel ``(h, w)`` become the ``r x r`` output block at ``(h r, w r)``. (TensorFlow's
    ``depth_to_space`` orders the channels ``(i, j, c)``; the convolution before learns either.)

        >>> pixel_shuffle(torch.arange(4.).view(1, 4, 1, 1), 2)
        tensor([[[[0., 1.],
                  [2., 3.]]]])
    """
    check_tensor(x, "pixel_shuffle: x", dims=4, shape_hint="(N, C, H, W)")
    r = check_int(r, "pixel_shuffle: r", minimum=1)
    n, c, h, w = x.shape
    if c % (r * r):
        raise InputError(f"pixel_shuffle: the channels of x must be divisible by r*r = {r * r}, got shape {tuple(x.shape)}")
    x = x.reshape(n, c // (r * r), r, r, h, w)  # split the channel index into (c, i, j)
    x = x.permute(0, 1, 4, 2, 5, 3)             # (n, c, h, i, w, j): i next to h, j next to w
    return x.reshape(n, c // (r * r), h * r, w * r)


def pixel_unshuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """The inverse, ``(N, C, H, W) -> (N, C r^2, H/r, W/r)``, equal to ``nn.PixelUnshuffle(r)``."""
    check_tensor(x, "pixel_unshuffle: x", dims=4, shape_hint="(N, C, H, W)")
    r = check_int(r, "pixel_unshuffle: r", minimum=1)
    n, c, h, w = x.shape
    if h % r or w % r:
        raise InputError(f"pixel_unshuffle: the height and width of x must be divisible by r = {r}, "
                         f"got shape {tuple(x.shape)}")
    x = x.reshape(n, c, h // r, r, w // r, r).permute(0, 1, 3, 5, 2, 4)  # (n, c, i, j, h, w)
    return x.reshape(n, c * r * r, h // r, w // r)


def icnr_(weight: torch.Tensor, scale: int, init: Callable[[torch.Tensor], Any] = nn.init.kaiming_normal_):
    """ICNR initialisation of a sub-pixel convolution weight ``(C r^2, C_in, kH, kW)``, in place.

    Aitken et al. 2017, "Checkerboard artifact free sub-pixel convolution" (arXiv 1707.02937).
    With independent random kernels the ``r^2`` sub-pixels of a block start unrelated: a
    checkerboard. ICNR draws ``C`` kernels with ``init`` and repeats each over its ``r^2``
    sub-pixels, so the shuffled output starts as a nearest-neighbour upsampling of a convolution.
    The bias must be equal within each group (:class:`ESPCN` zeroes it).
    """
    r = check_int(scale, "icnr_: scale", minimum=1)
    if weight.dim() != 4 or weight.shape[0] % (r * r):
        raise InputError(f"icnr_: weight must be a conv weight (C*r*r, C_in, kH, kW) whose output channels divide "
                         f"by scale**2 = {r * r}, got shape {tuple(weight.shape)}")
    sub = torch.empty(weight.shape[0] // (r * r), *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    init(sub)  # fan_in = C_in kH kW, the same as the full kernel's
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(r * r, dim=0))  # channel c r^2 + s (s: sub-pixel) gets kernel c
    return weight


@dataclass
class DeblockConfig(ConfigMixin):
    """``channels``: 1 (Y) or 3 (RGB); ``light``: 32/16/16 maps instead of 64/32/16 (4x fewer operations)."""

    channels: int = 1
    light: bool = False

    def __post_init__(self):
        if isinstance(self.channels, bool) or self.channels not in (1, 3):
            raise InputError(f"DeblockConfig.channels must be 1 or 3, got {self.channels!r}")
        if not isinstance(self.light, bool):
            raise InputError(f"DeblockConfig.light must be True or False, got {self.light!r}")


class DeblockNet(nn.Module):
    """JPEG artefact removal in the style of AR-CNN, ``(N, C, H, W) -> (N, C, H, W)``.

    Dong et al., "Compression Artifacts Reduction by a Deep Convolutional Network", ICCV 2015.
    Two course choices: PReLU (no unit of this small net dies) and a *residual* output
    ``x + net(x)`` whose last layer starts at zero, so the untrained net is the identity and
    learns only the correction. Clamped to [0, 1] in eval mode only (a clamp stops gradients).
    """

    arch = "deblock"
    scale = 1

    def __init__(self, config: DeblockConfig | dict | None = None, **kwargs):
        super().__init__()
        cfg = self.config = _config(DeblockConfig, config, kwargs)
        c = self.in_channels = self.out_channels = cfg.channels
        f1, f2, f3 = (32, 16, 16) if cfg.light else (64, 32, 16)
        self.features = nn.Sequential(
            nn.Conv2d(c, f1, 9, padding=4), nn.PReLU(f1),   # feature extraction: sees whole 8x8 JPEG blocks
            nn.Conv2d(f1, f2, 7, padding=3), nn.PReLU(f2),  # feature enhancement: cleans the noisy features
            nn.Conv2d(f2, f3, 1), nn.PReLU(f3),             # mapping, pixel by pixel
        )
        self.reconstruct = nn.Conv2d(f3, c, 5, padding=2)   # back to image channels
        nn.init.zeros_(self.reconstruct.weight)
        nn.init.zeros_(self.reconstruct.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.reconstruct(self.features(x))
        return y if self.training else y.clamp(0.0, 1.0)

    @classmethod
    def from_dict(cls, d) -> "DeblockNet":
        return cls(DeblockConfig.from_dict(d))

    def config_dict(self) -> dict:
        return self.config.to_dict()


class DeblockThenSR(nn.Module):
    """``sr(deblock(x))``: remove JPEG blocks from the LR image before they are magnified ``r`` times."""

    arch = "deblock_then_sr"

    def __init__(self, deblock: nn.Module, sr: nn.Module):
        super().__init__()
        d_out, s_in = getattr(deblock, "out_channels", None), getattr(sr, "in_channels", None)
        if d_out is not None and s_in is not None and d_out != s_in:
            raise InputError(f"DeblockThenSR: deblock outputs {d_out} channel(s) but sr takes {s_in}")
        self.deblock, self.sr = deblock, sr
        self.scale = getattr(sr, "scale", 1)
        self.in_channels, self.out_channels = getattr(deblock, "in_channels", None), s_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sr(self.deblock(x))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops(model: nn.Module, lr_h: int, lr_w: int) -> int:
    """Floating-point operations of the convolutions for one ``lr_h x lr_w`` input: 2 x multiply-adds.

    A stride-1 "same" ``k x k`` convolution ``c_in -> c_out`` costs ``k^2 c_in c_out`` multiply-adds
    per pixel, and in these models every convolution runs at the LR size. Per output pixel, divide
    by ``lr_h lr_w r^2``. Biases, activations and the shuffle are not counted.
    """
    if not isinstance(model, (ESPCN, DeblockNet, DeblockThenSR)):
        raise InputError(f"flops: model must be an ESPCN, DeblockNet or DeblockThenSR (all their convolutions run "
                         f"at the LR size), got {type(model).__name__}")
    check_int(lr_h, "flops: lr_h", minimum=1)
    check_int(lr_w, "flops: lr_w", minimum=1)
    macs = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))  # k*k*c_in*c_out each
    return 2 * macs * lr_h * lr_w
