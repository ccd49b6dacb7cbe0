"""Phase retrieval networks: an end-to-end MLP baseline, PR-DAD I and PR-DAD II.

PR-DAD (T. Gugel, S. Dekel, "Phase Retrieval Using Deep Auto-Decoders",
arXiv:2204.09051) does not map the Fourier magnitude straight to pixels.
A *phase-retrieval network* maps it to a sparse **encoding** of the image,
and a *decoder* maps the encoding to the image:

* **PR-DAD I** -- the encoding is the orthonormal Haar wavelet packet
  transform (:mod:`.wavelets`), fixed; the decoder is its inverse.
* **PR-DAD II** -- the encoding is learned: a convolutional auto-encoder
  whose over-sampled, low-resolution code is trained to be sparse
  (:class:`SparseAutoEncoder`, :func:`autoencoder_loss`); after pre-training,
  its decoder is frozen and the phase-retrieval network learns to predict
  the code (:class:`PRDAD2`).

Read top to bottom:

1. :func:`magnitude_features` -- how every network sees the magnitude.
2. :func:`rotation_invariant_loss` -- the loss that accepts the twin image.
3. Building blocks :class:`FCBlock`, :class:`MLP`, :class:`DoubleConv`.
4. :class:`MagnitudeMLP` (baseline), :class:`PRDAD1`,
   :class:`SparseAutoEncoder` + :func:`autoencoder_loss`, :class:`PRDAD2`.
5. :class:`PRConfig`, :func:`build_model`, :func:`count_parameters`.

All networks take the raw magnitude ``y = |F P x|`` of shape ``(N, 1, H', W')``
(:func:`course_lib.phase.data.simulate_measurement`) and return images
``(N, 1, h, w)``.

Example::

    >>> model = build_model('prdad1', image_size=32, pad=2)
    >>> y = torch.rand(4, 1, 64, 64)
    >>> model(y).shape
    torch.Size([4, 1, 32, 32])
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Sequence, Tuple

import torch
import torch.nn as nn

from .data import padded_shape
from .wavelets import inverse_haar_packet

__all__ = [
    "magnitude_features", "feature_shape", "rotation_invariant_loss",
    "FCBlock", "MLP", "DoubleConv", "ConvNet",
    "MagnitudeMLP", "PRDAD1", "SparseAutoEncoder", "autoencoder_loss", "AutoEncoderLoss",
    "PRDAD2", "PRConfig", "default_config", "build_model", "count_parameters", "METHODS",
]

METHODS = ("mlp", "prdad1", "prdad2")


def _pair(v, name: str) -> Tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if (not isinstance(v, (tuple, list)) or len(v) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in v)):
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of them, got {v!r}")
    return int(v[0]), int(v[1])


def _check_input(y, expected: Tuple[int, int], model: str) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[1] != 1:
        raise ValueError(f"{model}: expects magnitudes of shape (N, 1, {expected[0]}, "
                         f"{expected[1]}), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if tuple(y.shape[-2:]) != tuple(expected):
        raise ValueError(f"{model}: built for magnitudes of size {expected[0]}x{expected[1]}, got "
                         f"{y.shape[-2]}x{y.shape[-1]} (shape {tuple(y.shape)}); the image size "
                         f"or the padding factor differs from the one the model was built for")
    return y


# ---------------------------------------------------------------------------
# 1. What the networks see
# ---------------------------------------------------------------------------

def magnitude_features(y: torch.Tensor) -> torch.Tensor:
    """The input normalisation of every network here: ``(N, 1, H', W') -> (N, 1, H', W'//2 + 1)``.

    Three steps, each for a reason:

    1. **Symmetrise**: for a real image ``|Y(-k)| = |Y(k)|``, so average
       each frequency with its mirror ``(-k) mod (H', W')``. Noiseless data
       is unchanged; independent noise on the two halves is averaged down.
    2. **Keep one half** (``W'//2 + 1`` columns, the ``rfft2`` half-plane):
       the other half repeats it, and the first fully connected layer, by far
       the largest, halves in size.
    3. **log1p**: the magnitude spans orders of magnitude (the DC term
       ``sum(x) / sqrt(H'W')`` dwarfs the high frequencies); the log puts
       them on a comparable scale. Rows are ``fftshift``-ed so that a plot
       shows the low frequencies in the middle of the left edge.
    """
    if not isinstance(y, torch.Tensor) or y.dim() != 4:
        raise ValueError(f"magnitude_features: y must have shape (N, 1, H', W'), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    mirror = torch.roll(torch.flip(y, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))  # y[(-k) mod M]
    y = 0.5 * (y + mirror)
    half = y[..., : y.shape[-1] // 2 + 1]
    return torch.fft.fftshift(torch.log1p(half.clamp_min(0)), dim=-2)


def feature_shape(mag_shape: Sequence[int]) -> Tuple[int, int]:
    """Shape of :func:`magnitude_features` for a magnitude of shape ``(H', W')``."""
    return int(mag_shape[0]), int(mag_shape[1]) // 2 + 1


# ---------------------------------------------------------------------------
# 2. The loss
# ---------------------------------------------------------------------------

def rotation_invariant_loss(pred: torch.Tensor, target: torch.Tensor, base: str = "mse") -> torch.Tensor:
    """Per image, the smaller of ``base(pred, target)`` and ``base(rot180(pred), target)``; mean over images.

    ``x`` and its 180° rotation have the same Fourier magnitude (the "twin
    image"), so a network cannot know which one it is asked for, and must
    not be punished for choosing the other. ``pred``, ``target``:
    ``(N, C, h, w)``; ``base``: ``'mse'`` or ``'l1'``.

    About the twin: in the zero-padded frame the twin of ``x`` is
    ``x[(-n) mod (H', W')]``, i.e. the rotated image moved by a circular
    shift inside the pad. For a network that outputs the image at its own
    size ``h x w`` (and is trained on images at a fixed position), the shift
    carries no information and the 180° rotation *is* the twin. Classical
    algorithms working in the padded frame also need a shift registration
    (see the metrics).

    Example::

        >>> x = torch.rand(2, 1, 8, 8)
        >>> float(rotation_invariant_loss(torch.rot90(x, 2, dims=(-2, -1)), x))
        0.0
    """
    if not (isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor)
            and pred.dim() == 4 and pred.shape == target.shape):
        raise ValueError(f"rotation_invariant_loss: pred and target must be (N, C, h, w) tensors "
                         f"of the same shape, got "
                         f"{tuple(getattr(pred, 'shape', ()))} and {tuple(getattr(target, 'shape', ()))}")
    if base not in ("mse", "l1"):
        raise ValueError(f"rotation_invariant_loss: base must be 'mse' or 'l1', got {base!r}")
    err = (lambda a: (a - target) ** 2) if base == "mse" else (lambda a: (a - target).abs())
    direct = err(pred).mean(dim=(1, 2, 3))
    rotated = err(torch.rot90(pred, 2, dims=(-2, -1))).mean(dim=(1, 2, 3))
    return torch.minimum(direct, rotated).mean()


# ---------------------------------------------------------------------------
# 3. Building blocks
# ---------------------------------------------------------------------------

class FCBlock(nn.Sequential):
    """Linear (with bias) -> BatchNorm1d -> PReLU, the lecture's fully connected block."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features),
                         nn.PReLU(out_features))


class MLP(nn.Sequential):
    """``dims = [d0, d1, ..., dk]``: FCBlocks ``d0 -> d1 -> ... -> d(k-1)``, then a plain Linear to ``dk``.

    The last layer has no normalisation or activation: it is the output head,
    and the caller decides what its numbers mean (pixels, coefficients, code).
    """

    def __init__(self, dims: Sequence[int]):
        dims = [int(d) for d in dims]
        if len(dims) < 2 or min(dims) < 1:
            raise ValueError(f"MLP: dims must list at least 2 positive widths, got {dims!r}")
        layers = [FCBlock(a, b) for a, b in zip(dims[:-2], dims[1:-1])]
        super().__init__(*layers, nn.Linear(dims[-2], dims[-1]))


class DoubleConv(nn.Sequential):
    """(Conv3x3 -> BatchNorm2d -> PReLU) twice; keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.PReLU(out_channels),
        )


class ConvNet(nn.Sequential):
    """A small ConvNet ``in -> channels -> out``: ``blocks`` DoubleConvs, then a 1x1 conv.

    Used to refine what the fully connected part predicts: the FC layers
    see the whole spectrum at once, the convolutions add local structure.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int = 32, blocks: int = 1):
        layers = [DoubleConv(in_channels if i == 0 else channels, channels) for i in range(blocks)]
        super().__init__(*layers, nn.Conv2d(channels, out_channels, 1))


# ---------------------------------------------------------------------------
# 4. The models
# ---------------------------------------------------------------------------

class MagnitudeMLP(nn.Module):
    """End-to-end baseline: magnitude -> MLP -> sigmoid -> image in ``[0, 1]``.

    The E2E MLP of Uelwer et al.'s comparisons: fully connected blocks
    from :func:`magnitude_features` straight to the ``h * w`` pixels.
    ``in_shape``: ``(H', W')`` of the magnitude, ``out_shape``: ``(h, w)``.
    """

    def __init__(self, in_shape, out_shape, hidden: int = 512, layers: int = 2):
        super().__init__()
        self.in_shape, self.out_shape = _pair(in_shape, "in_shape"), _pair(out_shape, "out_shape")
        fh, fw = feature_shape(self.in_shape)
        h, w = self.out_shape
        self.mlp = MLP([fh * fw] + [hidden] * layers + [h * w])

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        _check_input(y, self.in_shape, "MagnitudeMLP")
        z = self.mlp(magnitude_features(y).flatten(1))
        return torch.sigmoid(z).view(-1, 1, *self.out_shape)


class PRDAD1(nn.Module):
    """PR-DAD I: magnitude -> Haar wavelet packet coefficients -> inverse packet transform -> image.

    1. An MLP maps :func:`magnitude_features` to ``h * w`` numbers, read as
       the coefficients ``(N, 4**depth, h / 2**depth, w / 2**depth)``
       (orthonormal: as many coefficients as pixels).
    2. A small ConvNet adds a residual correction: at each position of the
       coarse grid it sees all sub-bands of the neighbourhood.
    3. The fixed inverse packet transform (:func:`~.wavelets.inverse_haar_packet`)
       is the decoder.

    The image is not squashed by a sigmoid -- the decoder is linear -- so it
    is clamped to ``[0, 1]`` in eval mode only (in training a clamp would stop
    the gradient of pixels predicted outside the range).
    ``forward(y, return_coeffs=True)`` also returns the coefficients, e.g.
    for a loss on ``haar_packet(target, depth)``.
    """

    def __init__(self, mag_shape, image_shape, depth: int = 2, hidden: int = 512,
                 layers: int = 2, channels: int = 32):
        super().__init__()
        self.mag_shape, self.image_shape = _pair(mag_shape, "mag_shape"), _pair(image_shape, "image_shape")
        h, w = self.image_shape
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"PRDAD1: depth must be an int >= 1, got {depth!r}")
        if h % 2 ** depth or w % 2 ** depth:
            raise ValueError(f"PRDAD1: the image size {h}x{w} must be divisible by 2**depth = "
                             f"{2 ** depth} (depth {depth}); use depth 2 for 28x28 images")
        self.depth = depth
        self.coeff_shape = (4 ** depth, h // 2 ** depth, w // 2 ** depth)
        fh, fw = feature_shape(self.mag_shape)
        self.mlp = MLP([fh * fw] + [hidden] * layers + [h * w])
        self.refine = ConvNet(4 ** depth, 4 ** depth, channels)

    def forward(self, y: torch.Tensor, return_coeffs: bool = False):
        _check_input(y, self.mag_shape, "PRDAD1")
        coeffs = self.mlp(magnitude_features(y).flatten(1)).view(-1, *self.coeff_shape)
        coeffs = coeffs + self.refine(coeffs)
        image = inverse_haar_packet(coeffs, self.depth)
        if not self.training:
            image = image.clamp(0, 1)
        return (image, coeffs) if return_coeffs else image


class SparseAutoEncoder(nn.Module):
    """Conv encoder to an over-sampled low-resolution code, and a decoder back (PR-DAD II's auto-encoder).

    Encoder: DoubleConv at full resolution, then ``levels`` times (average
    pool 2x2, DoubleConv with twice the channels), then a 1x1 conv to
    ``code_channels`` -- no activation, so the code can be signed and the L1
    penalty can push entries to exactly zero. Decoder: the mirror image
    (DoubleConv, bilinear upsampling), ending in a 1x1 conv and a sigmoid.

    The code ``(N, code_channels, code_size, code_size)`` has *more* numbers
    than the image (e.g. 32 x 8 x 8 = 2048 for a 32 x 32 image): over-complete,
    so that it can be sparse. ``image_size / code_size`` must be a power of 2.

    ``forward(x)`` returns ``(reconstruction, code)``; :meth:`encode`,
    :meth:`decode` are the two halves.
    """

    def __init__(self, image_shape, channels: int = 32, code_channels: int = 32, code_size=8):
        super().__init__()
        self.image_shape = _pair(image_shape, "image_shape")
        self.code_size = _pair(code_size, "code_size")
        h, w = self.image_shape
        ratio = h / self.code_size[0]
        levels = int(round(math.log2(ratio))) if ratio >= 1 else -1
        if (levels < 0 or 2 ** levels * self.code_size[0] != h
                or 2 ** levels * self.code_size[1] != w):
            raise ValueError(f"SparseAutoEncoder: image {h}x{w} must be code_size "
                             f"{self.code_size[0]}x{self.code_size[1]} times the same power of 2 "
                             f"along both axes (e.g. 32x32 with code 8x8)")
        self.code_channels = int(code_channels)
        widths = [channels * 2 ** i for i in range(levels + 1)]

        enc = [DoubleConv(1, widths[0])]
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.AvgPool2d(2), DoubleConv(a, b)]
        enc.append(nn.Conv2d(widths[-1], self.code_channels, 1))
        self.encoder = nn.Sequential(*enc)

        dec = [DoubleConv(self.code_channels, widths[-1])]
        for a, b in zip(widths[:0:-1], widths[-2::-1]):
            dec += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), DoubleConv(a, b)]
        dec += [nn.Conv2d(widths[0], 1, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    @property
    def code_shape(self) -> Tuple[int, int, int]:
        return (self.code_channels, *self.code_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, *self.image_shape):
            raise ValueError(f"SparseAutoEncoder: expects images (N, 1, {self.image_shape[0]}, "
                             f"{self.image_shape[1]}), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        code = self.encode(x)
        return self.decode(code), code


def _autoencoder_terms(x, reconstruction, code, lam):
    rec = rotation_invariant_loss(reconstruction, x, "mse")
    sparsity = code.abs().mean()
    return rec + lam * sparsity, {"reconstruction": rec.detach(), "sparsity": sparsity.detach()}


def autoencoder_loss(x: torch.Tensor, enc, dec, lam: float = 1e-3):
    """PR-DAD II's auto-encoder objective: ``||x - dec(enc(x))||^2`` (180°-invariant) ``+ lam * mean|enc(x)|``.

    The reconstruction term is :func:`rotation_invariant_loss` (``'mse'``):
    the phase-retrieval network will later predict codes only up to the
    twin, so the auto-encoder may answer with either. The L1 term (the mean
    absolute code entry) makes the code sparse. ``enc``, ``dec``: callables
    (e.g. ``ae.encode``, ``ae.decode``). Returns ``(loss, {'reconstruction':
    ..., 'sparsity': ...})`` -- the form ``core.training.fit`` accepts.
    """
    if not (isinstance(lam, (int, float)) and lam >= 0):
        raise ValueError(f"autoencoder_loss: lam must be a number >= 0, got {lam!r}")
    code = enc(x)
    return _autoencoder_terms(x, dec(code), code, lam)


class AutoEncoderLoss:
    """:func:`autoencoder_loss` as ``loss_fn(output, x)`` for ``fit(ae, AutoEncoderLoss(lam), ...)``.

    ``output`` is ``SparseAutoEncoder``'s ``(reconstruction, code)``; the data
    set yields ``(x, x)`` pairs, e.g. ``TensorDataset(images, images)``::

        ae = model.autoencoder                      # of build_model('prdad2', ...)
        for p in ae.parameters(): p.requires_grad_(True)
        fit(ae, AutoEncoderLoss(1e-3), TensorDataset(train, train), steps=...)
        model.freeze_decoder()                      # then train the PR-DAD II model
    """

    def __init__(self, lam: float = 1e-3):
        if not (isinstance(lam, (int, float)) and lam >= 0):
            raise ValueError(f"AutoEncoderLoss: lam must be a number >= 0, got {lam!r}")
        self.lam = lam

    def __call__(self, output, x):
        reconstruction, code = output
        return _autoencoder_terms(x, reconstruction, code, self.lam)


class PRDAD2(nn.Module):
    """PR-DAD II: magnitude -> features network -> code -> frozen decoder -> image.

    The features network mirrors PR-DAD I's: an MLP from
    :func:`magnitude_features` to a small ``seed_channels x code_size``
    map, then a ConvNet to the code's channels. The decoder of a pre-trained
    :class:`SparseAutoEncoder` turns the code into the image; it is frozen
    at construction (:meth:`freeze_decoder`), and :meth:`unfreeze_decoder`
    allows fine-tuning everything at the end. The auto-encoder's encoder is
    kept (frozen) so that a loss can compare the predicted code with
    ``autoencoder.encode(target)``.

    ``forward(y, return_code=True)`` also returns the code.
    """

    def __init__(self, mag_shape, autoencoder: SparseAutoEncoder, hidden: int = 512,
                 layers: int = 2, channels: int = 32, seed_channels: int = 16):
        super().__init__()
        if not isinstance(autoencoder, SparseAutoEncoder):
            raise TypeError(f"PRDAD2: autoencoder must be a SparseAutoEncoder, got "
                            f"{type(autoencoder).__name__}")
        self.mag_shape = _pair(mag_shape, "mag_shape")
        self.autoencoder = autoencoder
        c, s, t = autoencoder.code_shape
        self.seed_shape = (seed_channels, s, t)
        fh, fw = feature_shape(self.mag_shape)
        self.mlp = MLP([fh * fw] + [hidden] * layers + [seed_channels * s * t])
        self.to_code = ConvNet(seed_channels, c, channels)
        self.freeze_decoder()

    def freeze_decoder(self) -> None:
        """Fix the auto-encoder (no gradients; BatchNorm statistics frozen too)."""
        self._frozen = True
        for p in self.autoencoder.parameters():
            p.requires_grad_(False)
        self.autoencoder.eval()

    def unfreeze_decoder(self) -> None:
        """Let the decoder train with the rest (fine-tuning). The encoder stays frozen."""
        self._frozen = False
        for p in self.autoencoder.decoder.parameters():
            p.requires_grad_(True)
        self.autoencoder.decoder.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        # model.train() must not switch a frozen auto-encoder's BatchNorm back to batch statistics.
        self.autoencoder.encoder.eval()
        if self._frozen:
            self.autoencoder.decoder.eval()
        return self

    def forward(self, y: torch.Tensor, return_code: bool = False):
        _check_input(y, self.mag_shape, "PRDAD2")
        seed = self.mlp(magnitude_features(y).flatten(1)).view(-1, *self.seed_shape)
        code = self.to_code(seed)
        image = self.autoencoder.decode(code)
        return (image, code) if return_code else image


# ---------------------------------------------------------------------------
# 5. Configs and factory
# ---------------------------------------------------------------------------

@dataclass
class PRConfig:
    """Everything :func:`build_model` needs; ``to_dict()`` rebuilds the model (checkpoint sidecars).

    ``image_size``: ``h = w``; ``pad``: oversampling factor per axis
    (magnitude ``pad * h`` square). ``hidden``/``layers``: the FC part;
    ``channels``: the ConvNets; ``depth``: PR-DAD I's packet depth;
    ``ae_channels``, ``code_channels``, ``code_size``, ``seed_channels``:
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
        if self.method not in METHODS:
            raise ValueError(f"PRConfig: method must be one of {METHODS}, got {self.method!r}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 4:
            raise ValueError(f"PRConfig: image_size must be an int >= 4, got {self.image_size!r}")
        padded_shape((self.image_size, self.image_size), self.pad)  # validates pad

    @property
    def mag_shape(self) -> Tuple[int, int]:
        return padded_shape((self.image_size, self.image_size), self.pad)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PRConfig":
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"PRConfig: unknown key(s) {unknown}; known keys are {known}")
        return cls(**d)


def default_config(method: str, image_size: int, pad=2) -> PRConfig:
    """Sizes that train to a useful model in a few minutes on a 2-core CPU.

    Up to 32 px (digits): FC width 512, packet depth 2 (16 sub-bands of 7x7
    or 8x8), code ``32 x (size/4)^2`` (over-complete 2x). 64 px (faces): FC
    width 384 (the input layer dominates: 8,320 features at pad 2), packet
    depth 3 (64 sub-bands of 8x8), code ``32 x 16 x 16``.
    """
    small = image_size <= 32
    if image_size % 4:
        raise ValueError(f"default_config: image_size must be divisible by 4 (28, 32, 64, ...), "
                         f"got {image_size}")
    depth = 2 if small or image_size % 8 else 3
    return PRConfig(method=method, image_size=image_size, pad=pad,
                    hidden=512 if small else 384, depth=depth,
                    code_size=image_size // 4, code_channels=32)


def build_model(method: str, image_size: int, pad=2, **overrides) -> nn.Module:
    """A fresh ``'mlp'``, ``'prdad1'`` or ``'prdad2'`` model for ``image_size`` px images padded by ``pad``.

    Starts from :func:`default_config`; ``overrides`` change any
    :class:`PRConfig` field. The model's ``config`` attribute holds the
    :class:`PRConfig`, and ``build_model(**model.config.to_dict())`` rebuilds
    it (what ``core.checkpoints.load_pretrained`` does). For ``'prdad2'`` the
    auto-encoder inside is new: pre-train ``model.autoencoder`` first.
    """
    cfg = dataclasses.replace(default_config(method, image_size, pad), **overrides) \
        if overrides else default_config(method, image_size, pad)
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
