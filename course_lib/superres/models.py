"""Super-resolution models: ESPCN (sub-pixel convolution) and a JPEG deblocking net.

Read top to bottom:

1. :func:`pixel_shuffle` / :func:`pixel_unshuffle` -- the sub-pixel
   rearrangement written out as reshape + permute, as in the lecture.
2. :class:`ESPCNConfig`, the presets :func:`espcn_lecture` and
   :func:`espcn_paper`, and :class:`ESPCN` itself.
3. :func:`icnr_` -- an initialisation that removes the checkerboard at start.
4. :func:`upscale_y_model` / :class:`YCbCrWrapper` -- run a Y-only model on
   an RGB image the way the paper evaluates it.
5. :class:`DeblockNet` (AR-CNN style) and :class:`DeblockThenSR`.
6. :func:`build_model` / :data:`ARCHITECTURES` (rebuild from a checkpoint),
   :func:`count_parameters`, :func:`flops`, :func:`flops_per_output_pixel`.

ESPCN (Shi et al., "Real-Time Single Image and Video Super-Resolution Using
an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016) does all its
work at the *low* resolution: the last convolution outputs ``C * r**2``
channels, and the pixel shuffle rearranges each group of ``r**2`` channels
into an ``r x r`` block of output pixels. Compared with SRCNN, which
upsamples first and convolves at high resolution, this is ``r**2`` times
cheaper for the same kernels.

Example::

    >>> model = ESPCN(espcn_paper(scale=3))
    >>> model(torch.rand(1, 1, 16, 16)).shape
    torch.Size([1, 1, 48, 48])
    >>> upscale_y_model(model, torch.rand(1, 3, 16, 16)).shape  # RGB in, RGB out
    torch.Size([1, 3, 48, 48])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.images import check_image_tensor, rgb_to_ycbcr, ycbcr_to_rgb

__all__ = [
    "pixel_shuffle", "pixel_unshuffle",
    "ESPCNConfig", "espcn_lecture", "espcn_paper", "ESPCN",
    "icnr_",
    "upscale_y_model", "YCbCrWrapper",
    "DeblockConfig", "DeblockNet", "DeblockThenSR",
    "ARCHITECTURES", "build_model",
    "count_parameters", "flops", "flops_per_output_pixel",
]


# ---------------------------------------------------------------------------
# Small validation helpers
# ---------------------------------------------------------------------------

def _check_int(value, name: str, minimum: int = 1) -> int:
    # bool is a subclass of int; scale=True is a bug, not a scale of 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def _check_4d(x, fn: str, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{fn}: {name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    return x


def _check_model_input(x, model_name: str, in_channels: int, hint: str = "") -> Tuple[torch.Tensor, bool]:
    """Validate an image batch for a model; return it as 4-D and whether it was 3-D."""
    check_image_tensor(x, "x")  # tensor, float, (C, H, W) or (N, C, H, W), not empty
    if x.shape[-3] != in_channels:
        raise ValueError(f"{model_name} expects x with {in_channels} channel(s), "
                         f"got shape {tuple(x.shape)}{hint}")
    unbatched = x.dim() == 3
    return (x.unsqueeze(0) if unbatched else x), unbatched


class _ConfigDict:
    """``from_dict`` / ``to_dict`` for config dataclasses, for checkpoint sidecars.

    ``to_dict`` gives plain JSON types (tuples become lists); ``from_dict``
    accepts them back and names any key it does not know -- the usual
    symptom of a checkpoint made by another version of the code.
    """

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        if not isinstance(d, Mapping):
            raise TypeError(f"{cls.__name__}.from_dict: d must be a mapping, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; known keys are {known}")
        return cls(**d)

    def to_dict(self) -> Dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


# ---------------------------------------------------------------------------
# 1. The sub-pixel rearrangement
# ---------------------------------------------------------------------------

def pixel_shuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sub-pixel rearrangement ``(N, C*r*r, H, W) -> (N, C, H*r, W*r)``.

    ``out[n, c, h*r + i, w*r + j] = x[n, c*r*r + i*r + j, h, w]``: the ``r*r``
    channels of group ``c`` at LR pixel ``(h, w)`` become the ``r x r`` block
    of output pixels at ``(h*r, w*r)``. Written out as reshape/permute for
    teaching (what the lecture's Keras ``reshape_subpixel`` does); equal to
    ``torch.nn.PixelShuffle(r)``, which models use because it is faster.

    Channel order matters only for moving weights between frameworks:
    PyTorch groups channels as ``(c, i, j)``, TensorFlow's ``depth_to_space``
    as ``(i, j, c)``. The convolution before the shuffle learns either.

    Example::

        >>> pixel_shuffle(torch.arange(4.).view(1, 4, 1, 1), 2)
        tensor([[[[0., 1.],
                  [2., 3.]]]])
    """
    _check_4d(x, "pixel_shuffle")
    r = _check_int(r, "pixel_shuffle: r")
    n, c, h, w = x.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle: the channels of x must be divisible by r*r = {r * r}, "
                         f"got shape {tuple(x.shape)}")
    out_c = c // (r * r)
    x = x.reshape(n, out_c, r, r, h, w)       # split channel index into (c, i, j)
    x = x.permute(0, 1, 4, 2, 5, 3)           # (n, c, h, i, w, j): i next to h, j next to w
    return x.reshape(n, out_c, h * r, w * r)  # merge (h, i) -> rows, (w, j) -> columns


def pixel_unshuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """Inverse of :func:`pixel_shuffle`: ``(N, C, H, W) -> (N, C*r*r, H/r, W/r)``.

    Equal to ``torch.nn.PixelUnshuffle(r)``; ``H`` and ``W`` must divide by ``r``.
    """
    _check_4d(x, "pixel_unshuffle")
    r = _check_int(r, "pixel_unshuffle: r")
    n, c, h, w = x.shape
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle: the height and width of x must be divisible by r = {r}, "
                         f"got shape {tuple(x.shape)}")
    x = x.reshape(n, c, h // r, r, w // r, r)  # (n, c, h, i, w, j)
    x = x.permute(0, 1, 3, 5, 2, 4)            # (n, c, i, j, h, w)
    return x.reshape(n, c * r * r, h // r, w // r)


# ---------------------------------------------------------------------------
# 2. ESPCN
# ---------------------------------------------------------------------------

_ACTIVATIONS = ("relu", "leaky_relu", "prelu", "tanh")
_OUTPUT_ACTIVATIONS = (None, "sigmoid", "clamp")
_CHANNELS = {"rgb": 3, "y": 1}


@dataclass
class ESPCNConfig(_ConfigDict):
    """Everything that defines an ESPCN; the defaults are the paper's model at x3.

    * ``scale``: upscaling factor ``r`` (2, 3, 4 usual; any int >= 1).
    * ``channels``: ``"rgb"`` (3 in, 3 out) or ``"y"`` (luma only, 1 in, 1 out;
      chroma is upscaled bicubically, see :func:`upscale_y_model`).
    * ``features``: feature maps of the hidden layers.
    * ``kernels``: kernel sizes, one per hidden layer plus the last; odd, so
      that "same" padding keeps the LR size and the output is exactly ``r``x.
    * ``activation`` after each hidden layer (``negative_slope`` is the slope
      of ``leaky_relu``).
    * ``output_activation``: ``None`` (linear), ``"sigmoid"`` (outputs in
      (0, 1), as the lecture), or ``"clamp"`` (linear while training, clamped
      to [0, 1] in eval mode -- clamping while training would stop the
      gradient of every pixel that overshoots, so it could never come back).
    * ``icnr``: initialise the last layer with :func:`icnr_`.
    """

    scale: int = 3
    channels: str = "y"
    features: Tuple[int, ...] = (64, 32)
    kernels: Tuple[int, ...] = (5, 3, 3)
    activation: str = "tanh"
    negative_slope: float = 0.2
    output_activation: Optional[str] = None
    icnr: bool = False

    def __post_init__(self):
        _check_int(self.scale, "ESPCNConfig.scale")
        if self.channels not in _CHANNELS:
            raise ValueError(f"ESPCNConfig.channels must be 'rgb' or 'y', got {self.channels!r}")
        # JSON gives lists back; store tuples so that configs compare and hash the same.
        self.features = tuple(self.features)
        self.kernels = tuple(self.kernels)
        for i, f in enumerate(self.features):
            _check_int(f, f"ESPCNConfig.features[{i}]")
        for i, k in enumerate(self.kernels):
            _check_int(k, f"ESPCNConfig.kernels[{i}]")
            if k % 2 == 0:
                raise ValueError(f"ESPCNConfig.kernels must be odd (symmetric 'same' padding), "
                                 f"got {self.kernels}")
        if len(self.kernels) != len(self.features) + 1:
            raise ValueError(f"ESPCNConfig: need one kernel size per hidden layer plus the last, i.e. "
                             f"{len(self.features) + 1} for features={self.features}, got kernels={self.kernels}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"ESPCNConfig.activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        if isinstance(self.negative_slope, bool) or not isinstance(self.negative_slope, (int, float)) \
                or self.negative_slope < 0:
            raise ValueError(f"ESPCNConfig.negative_slope must be a number >= 0, got {self.negative_slope!r}")
        self.negative_slope = float(self.negative_slope)
        if self.output_activation not in _OUTPUT_ACTIVATIONS:
            raise ValueError(f"ESPCNConfig.output_activation must be one of {_OUTPUT_ACTIVATIONS}, "
                             f"got {self.output_activation!r}")
        if not isinstance(self.icnr, bool):
            raise TypeError(f"ESPCNConfig.icnr must be True or False, got {self.icnr!r}")

    @property
    def in_channels(self) -> int:
        return _CHANNELS[self.channels]

    def layer_shapes(self) -> list:
        """``[(in_channels, out_channels, kernel), ...]`` of every convolution.

        The model is built from this list and :func:`flops` counts from it,
        so the two cannot disagree.
        """
        c, r = self.in_channels, self.scale
        chans = [c, *self.features, c * r * r]
        return [(chans[i], chans[i + 1], k) for i, k in enumerate(self.kernels)]


def espcn_lecture(scale: int = 3) -> ESPCNConfig:
    """The lecture's Keras model: RGB; Conv 64 5x5 + LeakyReLU(0.2), Conv 64
    5x5 + LeakyReLU(0.2), Conv ``3*r*r`` 5x5 with sigmoid, sub-pixel reshape.

    The sigmoid keeps every output in (0, 1), a valid image from the first step.
    """
    return ESPCNConfig(scale=scale, channels="rgb", features=(64, 64), kernels=(5, 5, 5),
                       activation="leaky_relu", negative_slope=0.2, output_activation="sigmoid")


def espcn_paper(scale: int = 3) -> ESPCNConfig:
    """Shi et al. 2016: Y channel only, kernels 5-3-3 with 64 and 32 maps, tanh, linear output.

    The paper found tanh better than ReLU for this small network; we keep it
    for the reproduction. Cb and Cr are upscaled bicubically
    (:func:`upscale_y_model`).
    """
    return ESPCNConfig(scale=scale, channels="y", features=(64, 32), kernels=(5, 3, 3),
                       activation="tanh", output_activation=None)


def _activation(name: str, channels: int, negative_slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "prelu":
        return nn.PReLU(channels)  # one learned slope per feature map (He et al. 2015)
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; use one of {_ACTIVATIONS}")


class ESPCN(nn.Module):
    """Efficient sub-pixel convolutional network: ``(N, C, H, W) -> (N, C, r*H, r*W)``.

    Hidden convolutions with "same" padding and the chosen activation, a last
    convolution to ``C * r**2`` channels, then the pixel shuffle. Build it from
    an :class:`ESPCNConfig`, a dict (``ESPCN.from_dict``), or keyword
    arguments (``ESPCN(scale=2, channels="rgb")``) -- the last form lets
    ``core.checkpoints.load_pretrained(path, ESPCN, arch="espcn")`` rebuild it.
    Input may also be a single image ``(C, H, W)``.
    """

    arch = "espcn"

    def __init__(self, config: ESPCNConfig | Mapping[str, Any] | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = ESPCNConfig.from_dict(kwargs)
        elif kwargs:
            raise TypeError("ESPCN: pass either a config or keyword arguments, not both")
        elif isinstance(config, Mapping):
            config = ESPCNConfig.from_dict(config)
        elif not isinstance(config, ESPCNConfig):
            raise TypeError(f"ESPCN: config must be an ESPCNConfig or a dict, got {type(config).__name__}")
        self.config = config

        *hidden, (last_in, last_out, last_k) = config.layer_shapes()
        layers = []
        for c_in, c_out, k in hidden:
            layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2),
                       _activation(config.activation, c_out, config.negative_slope)]
        self.features = nn.Sequential(*layers)
        # Predicts r*r values per LR pixel and channel: the sub-pixels.
        self.to_subpixels = nn.Conv2d(last_in, last_out, last_k, padding=last_k // 2)
        self.shuffle = nn.PixelShuffle(config.scale)
        if config.icnr:
            icnr_(self.to_subpixels.weight, config.scale)
            # A bias that differs between the r*r sub-pixels of a group would
            # bring the checkerboard right back; start it at zero.
            nn.init.zeros_(self.to_subpixels.bias)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ESPCN":
        return cls(ESPCNConfig.from_dict(d))

    def config_dict(self) -> Dict[str, Any]:
        """The config as plain JSON types: ``build_model("espcn", **model.config_dict())`` rebuilds it."""
        return self.config.to_dict()

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    @property
    def out_channels(self) -> int:
        return self.config.in_channels

    def macs_per_input_pixel(self) -> int:
        # Every convolution runs at the LR size: k*k*c_in*c_out multiply-adds per LR pixel.
        return sum(k * k * c_in * c_out for c_in, c_out, k in self.config.layer_shapes())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hint = ""
        c = x.shape[-3] if isinstance(x, torch.Tensor) and x.dim() >= 3 else None
        if self.config.channels == "y" and c == 3:
            hint = ("; this model works on the Y channel: use rgb_to_y(x), or "
                    "upscale_y_model(model, rgb) to super-resolve an RGB image")
        elif self.config.channels == "rgb" and c == 1:
            hint = "; this is an RGB model: use a model with channels='y' for one-channel images"
        x, unbatched = _check_model_input(x, f"ESPCN(channels={self.config.channels!r})",
                                          self.in_channels, hint)
        out = self.shuffle(self.to_subpixels(self.features(x)))
        if self.config.output_activation == "sigmoid":
            out = torch.sigmoid(out)
        elif self.config.output_activation == "clamp" and not self.training:
            out = out.clamp(0.0, 1.0)
        return out.squeeze(0) if unbatched else out


# ---------------------------------------------------------------------------
# 3. ICNR initialisation
# ---------------------------------------------------------------------------

def icnr_(weight: torch.Tensor, scale: int,
          init: Callable[[torch.Tensor], Any] = nn.init.kaiming_normal_) -> torch.Tensor:
    """ICNR initialisation of a sub-pixel convolution weight, in place.

    Aitken et al. 2017, "Checkerboard artifact free sub-pixel convolution"
    (arXiv 1707.02937). With independent random kernels, the ``r*r``
    sub-pixels of each output block start out unrelated, and the network
    begins (and often stays) with a checkerboard pattern. ICNR initialises a
    kernel for ``C`` outputs with ``init`` and repeats each one over its
    ``r*r`` sub-pixel positions, so that at initialisation the shuffled
    output is exactly a nearest-neighbour upsampling of a convolution --
    smooth at the block scale and free of checkerboard.

    ``weight`` has shape ``(C*r*r, C_in, kH, kW)`` in PyTorch's channel order
    (see :func:`pixel_shuffle`). The bias (if any) must be equal within each
    group of ``r*r`` channels for the property to hold; :class:`ESPCN` zeroes it.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"icnr_: weight must be a conv weight of shape (C*r*r, C_in, kH, kW), got {shape}")
    r = _check_int(scale, "icnr_: scale")
    out_c, *rest = weight.shape
    if out_c % (r * r):
        raise ValueError(f"icnr_: the output channels of weight must be divisible by scale**2 = {r * r}, "
                         f"got shape {tuple(weight.shape)}")
    sub = torch.empty(out_c // (r * r), *rest, dtype=weight.dtype, device=weight.device)
    init(sub)  # fan_in = C_in*kH*kW, the same as the full kernel's
    with torch.no_grad():
        # Channel c*r*r + s (s = sub-pixel) gets kernel c: repeat each kernel r*r times in a row.
        weight.copy_(sub.repeat_interleave(r * r, dim=0))
    return weight


# ---------------------------------------------------------------------------
# 4. Y-only models on RGB images
# ---------------------------------------------------------------------------

def upscale_y_model(model: nn.Module, rgb_lr: torch.Tensor) -> torch.Tensor:
    """Super-resolve an RGB image with a model that works on the luma channel.

    The paper's protocol: convert to YCbCr (BT.601, :func:`rgb_to_ycbcr`), run
    ``model`` on Y, upscale Cb and Cr bicubically
    (``F.interpolate(mode="bicubic", align_corners=False)``) to the size of
    the model's output, recombine, convert back to RGB and clamp to [0, 1].
    The eye is much less sensitive to detail in chroma, so the network
    spends its capacity on luma only.

    ``rgb_lr``: ``(N, 3, H, W)`` or ``(3, H, W)`` in [0, 1]. Returns the same
    layout at the model's output size. Call ``model.eval()`` and use
    ``torch.no_grad()`` yourself for inference; train the model on Y, since
    the final clamp stops gradients of overshooting pixels.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"upscale_y_model: model must be an nn.Module, got {type(model).__name__}")
    if getattr(model, "in_channels", 1) != 1:
        raise ValueError(f"upscale_y_model: model must take one (Y) channel, but "
                         f"{type(model).__name__} takes {model.in_channels}; an RGB model can be "
                         f"applied to the RGB image directly")
    check_image_tensor(rgb_lr, "upscale_y_model: rgb_lr")
    if rgb_lr.shape[-3] != 3:
        raise ValueError(f"upscale_y_model: rgb_lr must be an RGB image with 3 channels, "
                         f"got shape {tuple(rgb_lr.shape)}")
    unbatched = rgb_lr.dim() == 3
    x = rgb_lr.unsqueeze(0) if unbatched else rgb_lr

    ycbcr = rgb_to_ycbcr(x)
    y_sr = model(ycbcr[:, :1])
    if not isinstance(y_sr, torch.Tensor) or y_sr.dim() != 4 or y_sr.shape[1] != 1 \
            or y_sr.shape[0] != x.shape[0]:
        got = tuple(y_sr.shape) if isinstance(y_sr, torch.Tensor) else type(y_sr).__name__
        raise ValueError(f"upscale_y_model: the model must return (N, 1, H', W') for Y input of shape "
                         f"{tuple(ycbcr[:, :1].shape)}, got {got}")
    cbcr = F.interpolate(ycbcr[:, 1:], size=y_sr.shape[-2:], mode="bicubic", align_corners=False)
    rgb = ycbcr_to_rgb(torch.cat([y_sr, cbcr.to(y_sr.dtype)], dim=1)).clamp(0.0, 1.0)
    return rgb.squeeze(0) if unbatched else rgb


class YCbCrWrapper(nn.Module):
    """``nn.Module`` form of :func:`upscale_y_model`: RGB in, RGB out, ``model`` sees Y only.

    Works for any one-channel model: ``YCbCrWrapper(ESPCN(espcn_paper(3)))``,
    ``YCbCrWrapper(DeblockNet(channels=1))`` or a :class:`DeblockThenSR` of the two.
    """

    in_channels = 3
    out_channels = 3

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"YCbCrWrapper: model must be an nn.Module, got {type(model).__name__}")
        if getattr(model, "in_channels", 1) != 1:
            raise ValueError(f"YCbCrWrapper: model must take one (Y) channel, but "
                             f"{type(model).__name__} takes {model.in_channels}")
        self.model = model

    @property
    def scale(self) -> int:
        return getattr(self.model, "scale", 1)

    def macs_per_input_pixel(self) -> int:
        # The colour conversions and bicubic chroma are a few dozen operations
        # per pixel, negligible next to the network; not counted.
        return self.model.macs_per_input_pixel()

    def forward(self, rgb_lr: torch.Tensor) -> torch.Tensor:
        return upscale_y_model(self.model, rgb_lr)


# ---------------------------------------------------------------------------
# 5. JPEG deblocking
# ---------------------------------------------------------------------------

@dataclass
class DeblockConfig(_ConfigDict):
    """Config of :class:`DeblockNet`.

    * ``channels``: 1 (Y) or 3 (RGB).
    * ``light``: halve the feature maps of the first two layers (32, 16, 16
      instead of 64, 32, 16) -- about 4x fewer operations, for a lecture laptop.
    """

    channels: int = 1
    light: bool = False

    def __post_init__(self):
        if isinstance(self.channels, bool) or self.channels not in (1, 3):
            raise ValueError(f"DeblockConfig.channels must be 1 or 3, got {self.channels!r}")
        if not isinstance(self.light, bool):
            raise TypeError(f"DeblockConfig.light must be True or False, got {self.light!r}")

    def layer_shapes(self) -> list:
        """``[(in_channels, out_channels, kernel), ...]``: AR-CNN's four layers."""
        c = self.channels
        f1, f2, f3 = (32, 16, 16) if self.light else (64, 32, 16)
        return [
            (c, f1, 9),   # feature extraction: large kernel sees whole 8x8 JPEG blocks and their borders
            (f1, f2, 7),  # feature enhancement: cleans the noisy features of compression artifacts
            (f2, f3, 1),  # mapping: per-pixel nonlinear map to restoration features
            (f3, c, 5),   # reconstruction: back to image channels
        ]


class DeblockNet(nn.Module):
    """JPEG artifact removal in the style of AR-CNN, ``(N, C, H, W) -> (N, C, H, W)``.

    Dong et al., "Compression Artifacts Reduction by a Deep Convolutional
    Network", ICCV 2015: feature extraction 9x9 (64), feature enhancement
    7x7 (32), mapping 1x1 (16), reconstruction 5x5 -- all "same" padding.

    Two course choices differ from the paper: PReLU activations (a learned
    negative slope, so no unit of this small net dies), and a *residual*
    output, ``x + net(x)``: a JPEG image is already close to the clean one,
    so the net only has to predict the correction. The reconstruction layer
    starts at zero, i.e. the untrained model is the identity and training
    starts from "change nothing" instead of from noise. In eval mode the
    output is clamped to [0, 1]; not while training, where a clamp would stop
    the gradient of every overshooting pixel.
    """

    arch = "deblock"
    scale = 1  # same size in and out

    def __init__(self, config: DeblockConfig | Mapping[str, Any] | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = DeblockConfig.from_dict(kwargs)
        elif kwargs:
            raise TypeError("DeblockNet: pass either a config or keyword arguments, not both")
        elif isinstance(config, Mapping):
            config = DeblockConfig.from_dict(config)
        elif not isinstance(config, DeblockConfig):
            raise TypeError(f"DeblockNet: config must be a DeblockConfig or a dict, got {type(config).__name__}")
        self.config = config

        *hidden, (last_in, last_out, last_k) = config.layer_shapes()
        layers = []
        for c_in, c_out, k in hidden:
            layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.PReLU(c_out)]
        self.features = nn.Sequential(*layers)
        self.reconstruct = nn.Conv2d(last_in, last_out, last_k, padding=last_k // 2)
        nn.init.zeros_(self.reconstruct.weight)
        nn.init.zeros_(self.reconstruct.bias)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeblockNet":
        return cls(DeblockConfig.from_dict(d))

    def config_dict(self) -> Dict[str, Any]:
        return self.config.to_dict()

    @property
    def in_channels(self) -> int:
        return self.config.channels

    @property
    def out_channels(self) -> int:
        return self.config.channels

    def macs_per_input_pixel(self) -> int:
        return sum(k * k * c_in * c_out for c_in, c_out, k in self.config.layer_shapes())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, unbatched = _check_model_input(x, f"DeblockNet(channels={self.config.channels})",
                                          self.in_channels)
        out = x + self.reconstruct(self.features(x))
        if not self.training:
            out = out.clamp(0.0, 1.0)
        return out.squeeze(0) if unbatched else out


class DeblockThenSR(nn.Module):
    """Deblock the LR image, then super-resolve it: ``sr(deblock(x))``.

    JPEG block edges in the LR image would otherwise be treated as detail
    and magnified ``r`` times. Both parts run at the LR size.
    """

    arch = "deblock_then_sr"

    def __init__(self, deblock: nn.Module, sr: nn.Module):
        super().__init__()
        for name, m in (("deblock", deblock), ("sr", sr)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"DeblockThenSR: {name} must be an nn.Module, got {type(m).__name__}")
        d_out, s_in = getattr(deblock, "out_channels", None), getattr(sr, "in_channels", None)
        if d_out is not None and s_in is not None and d_out != s_in:
            raise ValueError(f"DeblockThenSR: deblock outputs {d_out} channel(s) but sr takes {s_in}")
        self.deblock = deblock
        self.sr = sr

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeblockThenSR":
        """``{"deblock": DeblockConfig dict, "sr": ESPCNConfig dict}``."""
        if not isinstance(d, Mapping) or set(d) != {"deblock", "sr"}:
            got = sorted(d) if isinstance(d, Mapping) else type(d).__name__
            raise ValueError(f"DeblockThenSR.from_dict: expected keys ['deblock', 'sr'], got {got}")
        return cls(DeblockNet.from_dict(d["deblock"]), ESPCN.from_dict(d["sr"]))

    def config_dict(self) -> Dict[str, Any]:
        if not (isinstance(self.deblock, DeblockNet) and isinstance(self.sr, ESPCN)):
            raise TypeError("DeblockThenSR.config_dict: only a DeblockNet followed by an ESPCN can be "
                            "rebuilt from a config")
        return {"deblock": self.deblock.config_dict(), "sr": self.sr.config_dict()}

    @property
    def scale(self) -> int:
        return getattr(self.sr, "scale", 1)

    @property
    def in_channels(self):
        return getattr(self.deblock, "in_channels", None)

    @property
    def out_channels(self):
        return getattr(self.sr, "out_channels", None)

    def macs_per_input_pixel(self) -> int:
        return self.deblock.macs_per_input_pixel() + self.sr.macs_per_input_pixel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sr(self.deblock(x))


# ---------------------------------------------------------------------------
# 6. Registry and cost
# ---------------------------------------------------------------------------

#: Architecture name -> class; each has ``from_dict`` and ``config_dict``.
ARCHITECTURES: Dict[str, type] = {
    "espcn": ESPCN,
    "deblock": DeblockNet,
    "deblock_then_sr": DeblockThenSR,
}


def build_model(arch: str, **config) -> nn.Module:
    """Build a model by name from its config, e.g. when loading a checkpoint.

    ``build_model("espcn", **espcn_paper(3).to_dict())``;
    ``build_model(model.arch, **model.config_dict())`` makes a fresh copy.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"build_model: unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch].from_dict(config)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters: model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _macs_per_input_pixel(model, fn: str) -> int:
    if not hasattr(model, "macs_per_input_pixel"):
        raise TypeError(f"{fn}: model must be one of {[c.__name__ for c in ARCHITECTURES.values()]} "
                        f"or a YCbCrWrapper (they know their layer shapes), got {type(model).__name__}")
    return model.macs_per_input_pixel()


def flops(model: nn.Module, lr_h: int, lr_w: int) -> int:
    """Floating-point operations of the convolutions for one ``lr_h x lr_w`` input.

    Counted analytically from the config as ``2 * multiply-adds`` (one
    multiply and one add each); biases, activations and the shuffle are
    ignored. A stride-1 "same" convolution ``c_in -> c_out`` with a ``k x k``
    kernel costs ``k*k*c_in*c_out`` multiply-adds per pixel, and in these
    models every convolution runs at the LR size.
    """
    _check_int(lr_h, "flops: lr_h")
    _check_int(lr_w, "flops: lr_w")
    return 2 * _macs_per_input_pixel(model, "flops") * lr_h * lr_w


def flops_per_output_pixel(model: nn.Module) -> float:
    """:func:`flops` divided by the number of output (HR) pixels, ``r*r`` per LR pixel."""
    return 2 * _macs_per_input_pixel(model, "flops_per_output_pixel") / getattr(model, "scale", 1) ** 2
