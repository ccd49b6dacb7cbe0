"""The image transformation network of fast style transfer (Johnson, Alahi and Fei-Fei, ECCV 2016).

One forward pass maps a photo to its stylised version, ``(N, 3, H, W) -> (N, 3, H, W)`` in [0, 1]:

    9×9 conv (32) → 3×3 stride-2 conv (64) → 3×3 stride-2 conv (128)      down to H/4 × W/4
    → 5 residual blocks (128)                                             at H/4 × W/4
    → 2 × (nearest ×2, 3×3 conv) (64, 32) → 9×9 conv to RGB → sigmoid     back to H × W

Every conv but the last is followed by instance norm (affine) and ReLU. Differences from the paper:

* Upsampling is nearest-neighbour ×2 followed by a 3×3 convolution, not a strided transposed
  convolution, whose uneven kernel overlap paints checkerboards (Odena, Dumoulin and Olah, Distill 2016).
* Instance normalisation (Ulyanov et al. 2016) instead of batch norm, as in the paper's later versions
  and in pytorch/examples ``fast_neural_style``.
* Reflection padding: zero borders read as dark edges that the style loss then decorates.
* The output goes through a sigmoid (``output="sigmoid"``) so it lies in (0, 1) with a gradient
  everywhere; ``output="clamp"`` clamps instead. Johnson used a scaled tanh.
* ``width`` scales every channel count (32/64/128 at ``width=1``): ``width=0.25`` is ~16x cheaper.

The training (perceptual loss, data, :func:`~course_lib.style.fast.train_fast`) is in :mod:`.fast`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import ConfigMixin, InputError, check_choice, check_int, check_number

__all__ = ["TransformerNetConfig", "TransformerNet", "ResidualBlock", "Upsample", "conv_norm_relu"]


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network (the architecture in the module docstring).

    Any ``H, W`` works: the input is padded (edge replication) to a multiple of 4, at least 8, so the
    two stride-2 convolutions and the two ×2 upsamplings give back the padded size, and the output is
    cropped back. A single image ``(3, H, W)`` works too. Built from a :class:`TransformerNetConfig`,
    a dict (a checkpoint's sidecar) or keywords (``TransformerNet(width=0.5)``).

        >>> TransformerNet(width=0.25)(torch.rand(2, 3, 37, 53)).shape
        torch.Size([2, 3, 37, 53])
    """

    arch = "transformer_net"

    def __init__(self, config: "TransformerNetConfig | Mapping[str, Any] | None" = None, **kwargs):
        super().__init__()
        self.config = config = TransformerNetConfig.build(config, kwargs)
        c1, c2, c3 = config.channels()  # 32, 64, 128 at width 1 (the shapes below)
        # one Sequential, so the state_dict keys (body.0.1.weight, ...) stay those of earlier checkpoints
        self.body = nn.Sequential(
            conv_norm_relu(3, c1, 9),                                   # (N, 32, H, W)
            conv_norm_relu(c1, c2, 3, stride=2),                        # (N, 64, H/2, W/2)
            conv_norm_relu(c2, c3, 3, stride=2),                        # (N, 128, H/4, W/4)
            *[ResidualBlock(c3) for _ in range(config.residual_blocks)],  # 5 in the paper
            Upsample(c3, c2),                                           # (N, 64, H/2, W/2)
            Upsample(c2, c1),                                           # (N, 32, H, W)
            nn.ReflectionPad2d(4), nn.Conv2d(c1, 3, 9),                 # (N, 3, H, W), no norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return self.forward(x[None])[0]
        h, w = x.shape[-2:]
        y = self.body(pad_to_multiple_of_4(x))[..., :h, :w]
        return torch.sigmoid(y) if self.config.output == "sigmoid" else y.clamp(0.0, 1.0)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TransformerNet":
        return cls(TransformerNetConfig.from_dict(d))

    def config_dict(self) -> Dict[str, Any]:
        """The config as plain JSON types (``TransformerNet.from_dict(net.config_dict())`` rebuilds it)."""
        return self.config.to_dict()


def conv_norm_relu(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    """Reflection pad → k×k conv → instance norm → ReLU."""
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(c_in, c_out, k, stride=stride),
                         nn.InstanceNorm2d(c_out, affine=True), nn.ReLU())


class ResidualBlock(nn.Module):
    """``x + IN(conv3×3(ReLU(IN(conv3×3(x)))))``: no ReLU after the sum (Gross and Wilber 2016)."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            conv_norm_relu(channels, channels, 3),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then conv3×3 + IN + ReLU: upsampling without checkerboards."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = conv_norm_relu(c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def pad_to_multiple_of_4(x: torch.Tensor) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` at the bottom/right to sides that are multiples of 4 and at least 8."""
    h, w = x.shape[-2:]
    ph, pw = max(8, -(-h // 4) * 4) - h, max(8, -(-w // 4) * 4) - w
    # replicate, not reflect: reflection needs the pad to be smaller than the image
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


@dataclass
class TransformerNetConfig(ConfigMixin):
    """Hyper-parameters of :class:`TransformerNet` (JSON types, for checkpoints; see the module docstring)."""

    width: float = 1.0
    residual_blocks: int = 5
    output: str = "sigmoid"

    def __post_init__(self):
        self.width = check_number(self.width, "TransformerNetConfig: width", low=0.0, low_open=True)
        check_int(self.residual_blocks, "TransformerNetConfig: residual_blocks", minimum=0)
        check_choice(self.output, ("sigmoid", "clamp"), "TransformerNetConfig: output")

    def channels(self) -> tuple[int, int, int]:
        """The three channel counts (32, 64, 128 at width 1); at least 4 each."""
        return tuple(max(4, int(round(c * self.width))) for c in (32, 64, 128))  # type: ignore[return-value]

    @classmethod
    def build(cls, config, kwargs: Mapping[str, Any]) -> "TransformerNetConfig":
        """A config from a config, a dict or keyword arguments (exactly one of them)."""
        if config is None:
            return cls.from_dict(kwargs)
        if kwargs:
            raise InputError("TransformerNet: pass either a config or keyword arguments, not both")
        if isinstance(config, Mapping):
            return cls.from_dict(config)
        if not isinstance(config, cls):
            raise InputError(f"TransformerNet: config must be a TransformerNetConfig or a dict, "
                             f"got {type(config).__name__}")
        return config
