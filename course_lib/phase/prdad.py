"""Phase retrieval networks: an end-to-end MLP baseline, PR-DAD I and PR-DAD II.

PR-DAD (T. Gugel, S. Dekel, "Phase Retrieval Using Deep Auto-Decoders", arXiv:2204.09051) does
not map the Fourier magnitude straight to pixels. A *phase-retrieval network* maps it to a sparse
**encoding** of the image, and a *decoder* maps the encoding to the image:

* **PR-DAD I** -- the encoding is the orthonormal Haar wavelet packet (:mod:`.wavelets`), fixed;
  the decoder is its inverse.
* **PR-DAD II** -- the encoding is learned: a convolutional auto-encoder whose over-complete,
  low-resolution code is trained to be sparse (:class:`SparseAutoEncoder`);
  then its decoder is frozen and the phase-retrieval network learns to predict the code.

Every network takes the raw magnitude ``y = |F P x|`` ``(N, 1, H', W')``, sees it through
:func:`magnitude_features` and returns images ``(N, 1, h, w)``; the losses are in :mod:`.losses`.
``build_model('prdad1', image_size=32, pad=2)`` makes one from a :class:`PRConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence, Tuple

import torch
import torch.nn as nn

from ..core.checks import ConfigMixin, InputError, check_choice, check_int, check_size
from .data import padded_shape
from .losses import AutoEncoderLoss, autoencoder_loss, rotation_invariant_loss  # noqa: F401 (also importable here)
from .wavelets import inverse_haar_packet

__all__ = [
    "magnitude_features", "feature_shape", "rotation_invariant_loss", "FCBlock", "DoubleConv", "MagnitudeMLP",
    "PRDAD1", "SparseAutoEncoder", "autoencoder_loss", "AutoEncoderLoss", "PRDAD2", "PRConfig", "default_config",
    "build_model", "count_parameters", "METHODS",
]

METHODS = ("mlp", "prdad1", "prdad2")


class FCBlock(nn.Sequential):
    """Linear (with bias) -> BatchNorm1d -> PReLU: the lecture's fully connected block."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.PReLU(out_features))


class DoubleConv(nn.Sequential):
    """(Conv3x3 -> BatchNorm2d -> PReLU) twice; keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.PReLU(out_channels),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.PReLU(out_channels))


class MagnitudeMLP(nn.Module):
    """End-to-end baseline (Uelwer et al.'s E2E MLP): features -> FC blocks -> ``h * w`` pixels -> sigmoid."""

    def __init__(self, in_shape, out_shape, hidden: int = 512, layers: int = 2):
        super().__init__()
        self.in_shape, self.out_shape = check_size(in_shape, "in_shape"), check_size(out_shape, "out_shape")
        fh, fw = feature_shape(self.in_shape)
        h, w = self.out_shape
        self.mlp = nn.Sequential(
            FCBlock(fh * fw, hidden),                               # sees the whole spectrum at once
            *[FCBlock(hidden, hidden) for _ in range(layers - 1)],  # (layers = 2: one more block)
            nn.Linear(hidden, h * w),                               # the output head: no norm, no activation
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = self.mlp(magnitude_features(y).flatten(1))
        return torch.sigmoid(z).view(-1, 1, *self.out_shape)


class PRDAD1(nn.Module):
    """PR-DAD I: features -> FC blocks -> Haar packet coefficients (+ a conv correction) -> inverse packet.

    The MLP predicts ``h * w`` numbers read as the coefficients ``(N, 4**depth, h / 2**depth, w / 2**depth)``
    (orthonormal: as many as pixels); a DoubleConv adds a residual correction that sees all sub-bands of a
    neighbourhood; the fixed inverse packet transform is the decoder. The decoder is linear, so the image is
    clamped to [0, 1] in eval mode only (a clamp in training would stop the gradient of pixels outside the range).
    ``forward(y, return_coeffs=True)`` also returns the coefficients.
    """

    def __init__(self, mag_shape, image_shape, depth: int = 2, hidden: int = 512, layers: int = 2, channels: int = 32):
        super().__init__()
        self.mag_shape, self.image_shape = check_size(mag_shape, "mag_shape"), check_size(image_shape, "image_shape")
        h, w = self.image_shape
        self.depth = check_int(depth, "PRDAD1: depth", minimum=1)
        if h % 2 ** depth or w % 2 ** depth:
            raise InputError(f"PRDAD1: the image size {h}x{w} must be divisible by 2**depth = {2 ** depth} "
                             f"(depth {depth}); use depth 2 for 28x28 images")
        bands = 4 ** depth
        self.coeff_shape = (bands, h // 2 ** depth, w // 2 ** depth)
        fh, fw = feature_shape(self.mag_shape)
        self.mlp = nn.Sequential(
            FCBlock(fh * fw, hidden),
            *[FCBlock(hidden, hidden) for _ in range(layers - 1)],
            nn.Linear(hidden, h * w),                               # the h * w packet coefficients
        )
        self.refine = nn.Sequential(DoubleConv(bands, channels), nn.Conv2d(channels, bands, 1))

    def forward(self, y: torch.Tensor, return_coeffs: bool = False):
        coeffs = self.mlp(magnitude_features(y).flatten(1)).view(-1, *self.coeff_shape)
        coeffs = coeffs + self.refine(coeffs)
        image = inverse_haar_packet(coeffs, self.depth)
        if not self.training:
            image = image.clamp(0, 1)
        return (image, coeffs) if return_coeffs else image


class SparseAutoEncoder(nn.Module):
    """PR-DAD II's auto-encoder: image -> over-complete code at a quarter of the resolution -> image.

    The code ``(N, code_channels, h/4, w/4)`` has more numbers than the image (32 x 8 x 8 = 2048 for
    32 x 32): over-complete, so that it can be sparse. It ends in a 1x1 conv without activation, so
    it can be signed and the L1 penalty can push entries to exactly zero. ``forward(x)`` returns
    ``(reconstruction, code)``; :meth:`encode` and :meth:`decode` are the two halves.
    """

    def __init__(self, image_shape, channels: int = 32, code_channels: int = 32, code_size=8):
        super().__init__()
        self.image_shape, self.code_size = check_size(image_shape, "image_shape"), check_size(code_size, "code_size")
        if self.image_shape != (4 * self.code_size[0], 4 * self.code_size[1]):
            raise InputError(f"SparseAutoEncoder: the image ({self.image_shape[0]}x{self.image_shape[1]}) must be "
                             f"4 times code_size ({self.code_size[0]}x{self.code_size[1]}), e.g. 32x32 with code 8x8")
        self.code_channels = code_channels
        c = channels
        self.encoder = nn.Sequential(
            DoubleConv(1, c),                                       # h x w
            nn.AvgPool2d(2), DoubleConv(c, 2 * c),                  # h/2 x w/2
            nn.AvgPool2d(2), DoubleConv(2 * c, 4 * c),              # h/4 x w/4
            nn.Conv2d(4 * c, code_channels, 1),                     # the code: linear, signed
        )
        self.decoder = nn.Sequential(
            DoubleConv(code_channels, 4 * c),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), DoubleConv(4 * c, 2 * c),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), DoubleConv(2 * c, c),
            nn.Conv2d(c, 1, 1), nn.Sigmoid(),                       # the image in [0, 1]
        )

    @property
    def code_shape(self) -> Tuple[int, int, int]:
        return (self.code_channels, *self.code_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor):
        code = self.encoder(x)
        return self.decoder(code), code


class PRDAD2(nn.Module):
    """PR-DAD II: features -> FC blocks -> a small map -> DoubleConv -> code -> the frozen decoder -> image.

    The auto-encoder is frozen at construction (:meth:`freeze_decoder`); :meth:`unfreeze_decoder` allows fine-tuning
    the decoder at the end. Its encoder is kept (frozen) so that a loss can compare the predicted code with
    ``autoencoder.encode(target)``. ``forward(y, return_code=True)`` also returns the code.
    """

    def __init__(self, mag_shape, autoencoder: SparseAutoEncoder, hidden: int = 512, layers: int = 2,
                 channels: int = 32, seed_channels: int = 16):
        super().__init__()
        self.mag_shape = check_size(mag_shape, "mag_shape")
        self.autoencoder = autoencoder
        code_channels, s, t = autoencoder.code_shape
        self.seed_shape = (seed_channels, s, t)
        fh, fw = feature_shape(self.mag_shape)
        self.mlp = nn.Sequential(
            FCBlock(fh * fw, hidden),
            *[FCBlock(hidden, hidden) for _ in range(layers - 1)],
            nn.Linear(hidden, seed_channels * s * t),               # a seed_channels x code_size map
        )
        self.to_code = nn.Sequential(DoubleConv(seed_channels, channels), nn.Conv2d(channels, code_channels, 1))
        self.freeze_decoder()

    def forward(self, y: torch.Tensor, return_code: bool = False):
        seed = self.mlp(magnitude_features(y).flatten(1)).view(-1, *self.seed_shape)
        code = self.to_code(seed)
        image = self.autoencoder.decode(code)
        return (image, code) if return_code else image

    def freeze_decoder(self) -> None:
        """Fix the auto-encoder (no gradients; BatchNorm statistics frozen too)."""
        self._frozen = True
        self.autoencoder.requires_grad_(False)
        self.autoencoder.eval()

    def unfreeze_decoder(self) -> None:
        """Let the decoder train with the rest (fine-tuning). The encoder stays frozen."""
        self._frozen = False
        self.autoencoder.decoder.requires_grad_(True)
        self.autoencoder.decoder.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        # model.train() must not switch a frozen auto-encoder's BatchNorm back to batch statistics
        self.autoencoder.encoder.eval()
        if self._frozen:
            self.autoencoder.decoder.eval()
        return self


def magnitude_features(y: torch.Tensor) -> torch.Tensor:
    """What every network sees: ``(N, 1, H', W') -> (N, 1, H', W'//2 + 1)``, in three steps.

    1. **Symmetrise**: for a real image ``|Y(-k)| = |Y(k)|``, so average each frequency with its
       mirror ``(-k) mod (H', W')``: noiseless data is unchanged, independent noise is averaged down.
    2. **Keep one half** (the ``rfft2`` half-plane): the other half repeats it, and the first fully
       connected layer, by far the largest, halves in size.
    3. **log1p**: the magnitude spans orders of magnitude (the DC term dwarfs the high frequencies).
       Rows are ``fftshift``-ed so that a plot shows the low frequencies in the middle of the left edge.
    """
    mirror = torch.roll(torch.flip(y, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))  # y[(-k) mod M]
    half = (0.5 * (y + mirror))[..., : y.shape[-1] // 2 + 1]
    return torch.fft.fftshift(torch.log1p(half.clamp_min(0)), dim=-2)


def feature_shape(mag_shape: Sequence[int]) -> Tuple[int, int]:
    """Shape of :func:`magnitude_features` for a magnitude of shape ``(H', W')``."""
    return int(mag_shape[0]), int(mag_shape[1]) // 2 + 1


@dataclass
class PRConfig(ConfigMixin):
    """Everything :func:`build_model` needs; ``to_dict()`` rebuilds the model (checkpoint sidecars).

    ``image_size``: ``h = w``; ``pad``: oversampling per axis (magnitude ``pad * h`` square);
    ``hidden``/``layers``: the FC part; ``channels``: the conv parts; ``depth``: PR-DAD I's packet
    depth; ``ae_channels``, ``code_channels``, ``code_size`` (``image_size / 4``), ``seed_channels``:
    PR-DAD II's auto-encoder and features network.
    """

    method: str
    image_size: int
    pad: float = 2
    hidden: int = 512
    layers: int = 2
    channels: int = 32
    depth: int = 2
    ae_channels: int = 8
    code_channels: int = 32
    code_size: int = 8
    seed_channels: int = 16

    def __post_init__(self):
        check_choice(self.method, METHODS, "PRConfig: method")
        check_int(self.image_size, "PRConfig: image_size", minimum=4)
        padded_shape((self.image_size, self.image_size), self.pad)  # checks pad

    @property
    def mag_shape(self) -> Tuple[int, int]:
        return padded_shape((self.image_size, self.image_size), self.pad)


def default_config(method: str, image_size: int, pad=2) -> PRConfig:
    """Sizes that train to a useful model in a few minutes on a 2-core CPU.

    Up to 32 px (digits): FC width 512, packet depth 2 (16 sub-bands of 7x7 or 8x8), code
    ``32 x (size/4)^2`` (over-complete 2x). 64 px (faces): FC width 384 (the input layer dominates:
    8,320 features at pad 2), packet depth 3 (64 sub-bands of 8x8), code ``32 x 16 x 16``.
    """
    if image_size % 4:
        raise InputError(f"default_config: image_size must be divisible by 4 (28, 32, 64, ...), got {image_size}")
    small = image_size <= 32
    return PRConfig(method=method, image_size=image_size, pad=pad, hidden=512 if small else 384,
                    depth=2 if small or image_size % 8 else 3, code_size=image_size // 4, code_channels=32)


def build_model(method: str, image_size: int, pad=2, **overrides) -> nn.Module:
    """A fresh ``'mlp'``, ``'prdad1'`` or ``'prdad2'`` for ``image_size`` px images padded by ``pad``.

    Starts from :func:`default_config`; ``overrides`` change any :class:`PRConfig` field. The model's
    ``config`` attribute holds the :class:`PRConfig`, and ``build_model(**model.config.to_dict())``
    rebuilds it (what checkpoint loading does). For ``'prdad2'`` the auto-encoder inside is new:
    pre-train ``model.autoencoder`` first.
    """
    check_choice(method, METHODS, "build_model: method")
    cfg = replace(default_config(method, image_size, pad), **overrides)
    size = (cfg.image_size, cfg.image_size)
    if cfg.method == "mlp":
        model = MagnitudeMLP(cfg.mag_shape, size, cfg.hidden, cfg.layers)
    elif cfg.method == "prdad1":
        model = PRDAD1(cfg.mag_shape, size, cfg.depth, cfg.hidden, cfg.layers, cfg.channels)
    else:
        ae = SparseAutoEncoder(size, cfg.ae_channels, cfg.code_channels, cfg.code_size)
        model = PRDAD2(cfg.mag_shape, ae, cfg.hidden, cfg.layers, cfg.channels, cfg.seed_channels)
    model.config = cfg
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
