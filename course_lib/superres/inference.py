"""Full-image inference: ``upscale(model, image)`` for any image size, and a fast CPU path.

Large images are processed in tiles so that memory stays bounded. Each tile is
extended by ``overlap`` LR pixels on every side (the model's receptive-field
radius by default) and only its centre is kept, so every output pixel sees
exactly the inputs it would see in one untiled pass: the tiled result equals
the untiled one up to floating-point rounding (tested to 1e-5). Above
:data:`LARGE_OUTPUT_PIXELS` output pixels the *whole* pipeline (colour
conversion, model, bicubic chroma, clamping and, for a PIL image, the 8-bit
conversion) runs block by block, so that memory stays at the result plus one
block: a 10000x10000 photo at x3 would otherwise need 7 GB for its enlarged
chroma alone. The blocks carry the same context, so the result is the same up
to float32 rounding (tested to 1e-4; 8-bit outputs to one level).

Y-channel models (the paper's ESPCN) get RGB images in and out: the model
super-resolves luma, chroma is enlarged bicubically (as in the paper).

:func:`optimize_for_inference` turns an ESPCN into a module that computes the
same function about 2-3x faster on a CPU (``upscale(..., optimized=True)``);
its docstring says what was tried and why the kept choices win.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..core.images import check_finite, check_image_tensor, load_image, rgb_to_ycbcr, ycbcr_to_rgb, to_pil, to_tensor

__all__ = ["upscale", "receptive_radius", "model_scale", "optimize_for_inference", "FastESPCN",
           "LARGE_OUTPUT_PIXELS"]

#: Above this many output pixels :func:`upscale` works block by block (:data:`BLOCK` LR pixels a side).
LARGE_OUTPUT_PIXELS = 16_000_000
BLOCK = 512


def receptive_radius(model: nn.Module) -> int:
    """LR pixels on each side that one output pixel depends on (sum of conv half-widths).

    Exact for a chain of stride-1 convolutions with 'same' padding (ESPCN, the
    deblocking net and their pipeline); the pixel shuffle adds nothing.
    """
    radius = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if m.stride != (1, 1):
                raise ValueError(f"receptive_radius: {type(model).__name__} has a strided convolution; "
                                 "pass overlap= explicitly")
            radius += max((m.kernel_size[0] - 1) // 2 * m.dilation[0], (m.kernel_size[1] - 1) // 2 * m.dilation[1])
    return radius


def model_scale(model: nn.Module) -> int:
    scale = getattr(model, "scale", None)
    if scale is None:
        sr = getattr(model, "sr", None)
        scale = getattr(sr, "scale", None)
    if scale is None:
        raise ValueError(f"upscale: cannot tell the scale of {type(model).__name__}; give it a .scale attribute")
    return int(scale)


def _in_channels(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise ValueError(f"upscale: {type(model).__name__} has no convolution to infer input channels from")


@torch.no_grad()
def _tiled(model: nn.Module, x: torch.Tensor, scale: int, tile: int | None, overlap: int) -> torch.Tensor:
    n, c, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return model(x)
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            t1, l1 = min(top + tile + overlap, h), min(left + tile + overlap, w)
            y = model(x[:, :, t0:t1, l0:l1])
            if out is None:
                out = y.new_empty(n, y.shape[1], h * scale, w * scale)
            bt, bl = (top - t0) * scale, (left - l0) * scale
            th, tw = (min(top + tile, h) - top) * scale, (min(left + tile, w) - left) * scale
            out[:, :, top * scale: top * scale + th, left * scale: left * scale + tw] = y[:, :, bt: bt + th, bl: bl + tw]
    return out


def _pipeline(model: nn.Module, x: torch.Tensor, scale: int, tile, overlap: int, cin: int) -> torch.Tensor:
    """``upscale``'s result for ``x`` (N, C, H, W) in one pass (the model tiled by ``tile``), not clamped."""
    if cin == x.shape[1]:
        return _tiled(model, x, scale, tile, overlap)
    if cin == 1 and x.shape[1] == 3:
        ycbcr = rgb_to_ycbcr(x)
        y = _tiled(model, ycbcr[:, :1], scale, tile, overlap)
        cbcr = F.interpolate(ycbcr[:, 1:], scale_factor=scale, mode="bicubic", align_corners=False)
        return ycbcr_to_rgb(torch.cat([y, cbcr], 1))
    return _tiled(model, x.expand(-1, 3, -1, -1), scale, tile, overlap).mean(1, keepdim=True)


@torch.no_grad()
def _by_blocks(model: nn.Module, src, scale: int, tile, overlap: int, cin: int, dev, clamp: bool,
               block: int | None = None):
    """:func:`_pipeline` block by block; ``src`` is a tensor (N, C, H, W) or an RGB/L PIL image.

    Each block carries ``max(overlap, 3)`` LR pixels of context per side (the model's receptive
    radius; the bicubic chroma reads 2), so its kept centre equals the untiled result up to the
    float32 rounding of the bicubic's source coordinates (~2e-5). A PIL image is read block by
    block and gives a PIL image, each block rounded to 8 bits as :func:`to_pil` does: the memory
    is the two images and one block.
    """
    block = BLOCK if block is None else block
    as_pil = isinstance(src, Image.Image)
    h, w = (src.size[1], src.size[0]) if as_pil else src.shape[-2:]
    m = max(overlap, 3)
    out = None
    for top in range(0, h, block):
        for left in range(0, w, block):
            t0, l0 = max(top - m, 0), max(left - m, 0)
            t1, l1 = min(top + block + m, h), min(left + block + m, w)
            x = to_tensor(np.asarray(src.crop((l0, t0, l1, t1))))[None] if as_pil else src[:, :, t0:t1, l0:l1]
            y = _pipeline(model, x.to(dev, torch.float32), scale, tile, overlap, cin)
            bt, bl = (top - t0) * scale, (left - l0) * scale
            bh, bw = (min(top + block, h) - top) * scale, (min(left + block, w) - left) * scale
            y = y[:, :, bt: bt + bh, bl: bl + bw]
            y = y.clamp(0, 1) if clamp or as_pil else y
            if as_pil:
                y = np.ascontiguousarray((y[0].cpu() * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy())
                if out is None:
                    out = Image.new("L" if y.shape[2] == 1 else "RGB", (w * scale, h * scale))
                out.paste(Image.fromarray(y[..., 0] if y.shape[2] == 1 else y), (left * scale, top * scale))
            else:
                if out is None:
                    out = y.new_empty(y.shape[0], y.shape[1], h * scale, w * scale)
                out[:, :, top * scale: top * scale + bh, left * scale: left * scale + bw] = y
    return out


@torch.no_grad()
def upscale(model: nn.Module, image, *, tile: int | None | str = "auto", overlap: int | None = None,
            device: torch.device | str | None = None, clamp: bool = True, optimized: bool = False):
    """Super-resolve a whole image with ``model`` (in eval mode, without gradients).

    Parameters
    ----------
    model: an SR model with a ``.scale`` (ESPCN, DeblockThenSR); RGB or Y-only.
    image: tensor ``(C, H, W)`` / ``(N, C, H, W)`` in [0, 1], or a PIL image (a PIL image is returned).
    tile: LR tile side (None: one pass; "auto": 256, or one pass for a :class:`FastESPCN`,
        which bounds its memory itself by working in strips).
    overlap: LR context per side (default: the receptive radius).
    optimized: run ``optimize_for_inference(model)`` first (CPU; same output to 1e-4, 2-3x faster).
        To upscale many images, call :func:`optimize_for_inference` once and pass its result.

    A Y-only model given an RGB image runs on luma; Cb and Cr are enlarged with
    bicubic interpolation and the result converted back to RGB.

    Above :data:`LARGE_OUTPUT_PIXELS` output pixels everything runs in blocks of
    :data:`BLOCK` LR pixels (same result; a PIL image is never converted to floats as a
    whole), so memory stays at the result plus one block.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"upscale: model must be an nn.Module, got {type(model).__name__}")
    pil = not isinstance(image, torch.Tensor)
    if pil and isinstance(image, Image.Image):
        if image.mode not in ("RGB", "L"):  # as to_tensor converts it
            image = load_image(image, mode="RGB" if image.mode not in ("1", "I;16", "I", "F", "LA") else "L")
        if 0 in image.size:
            raise ValueError(f"upscale: image is empty: {image.size[0]}x{image.size[1]} pixels")
        src = image  # 8 bits a value; converted to floats as a whole, or block by block when large
        shape = (1, 1 if image.mode == "L" else 3, image.size[1], image.size[0])
    else:
        src = to_tensor(image) if pil else image
        check_image_tensor(src, "upscale: image")
        check_finite(src, "upscale: image")
        shape = tuple(src.shape) if src.dim() == 4 else (1,) + tuple(src.shape)
    if tile != "auto" and tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"upscale: tile must be a positive int, None or 'auto', got {tile!r}")
    cin = _in_channels(model)
    if not (cin == shape[1] or (cin == 1 and shape[1] == 3) or (cin == 3 and shape[1] == 1)):
        raise ValueError(f"upscale: the model takes {cin} channel(s), the image has {shape[1]}")
    if optimized and not isinstance(model, FastESPCN):
        on_cpu = device is None or torch.device(device).type == "cpu"
        if on_cpu:
            model = optimize_for_inference(model, verbose=False)
    if tile == "auto":
        tile = None if isinstance(model, FastESPCN) else 256
    scale = model_scale(model)
    overlap = receptive_radius(model) if overlap is None else int(overlap)
    was_training = model.training
    model.eval()
    if device is not None and not isinstance(model, FastESPCN):
        model.to(device)
    dev = next(model.parameters()).device
    large = shape[-2] * shape[-1] * scale * scale > LARGE_OUTPUT_PIXELS
    try:
        if large:
            out = _by_blocks(model, src if isinstance(src, Image.Image) else src.reshape(shape), scale, tile,
                             overlap, cin, dev, clamp)
            if isinstance(out, Image.Image):  # a PIL image in, 8-bit blocks out
                return out
        else:
            x = to_tensor(src) if isinstance(src, Image.Image) else src
            x = x.reshape(shape).to(dev, torch.float32)
            out = _pipeline(model, x, scale, tile, overlap, cin)
            out = out.clamp(0, 1) if clamp else out
    finally:
        model.train(was_training)
    single = pil or image.dim() == 3
    out = out[0] if single else out
    return to_pil(out.cpu()) if pil else out


# ---------------------------------------------------------------------------
# The optimised CPU path
# ---------------------------------------------------------------------------

_ONEDNN_ACTIVATIONS = {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "sigmoid", "prelu": "none"}


class _Stage:
    """One convolution of :class:`FastESPCN`, with its weights already rewritten for the kernels used."""

    def __init__(self, weight, bias, attr, scalars, fill, prelu=None, im2col=False, winograd=None):
        self.k = weight.shape[-1]
        self.radius = self.k // 2
        self.im2col = im2col
        if im2col:  # a k x k convolution of c channels = a 1x1 convolution of the c*k*k patch values
            weight = weight.reshape(weight.shape[0], -1, 1, 1)
        self.weight = weight.contiguous(memory_format=torch.channels_last)
        self.bias = bias.contiguous()
        self.attr, self.scalars, self.fill, self.prelu = attr, scalars, fill, prelu
        self.winograd = winograd  # None or m (2 or 4): a 3x3 layer done by Winograd F(m x m, 3 x 3)
        if winograd:
            from .winograd import winograd_weight

            self.u = winograd_weight(weight, winograd)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.winograd:
            from .winograd import winograd_conv3x3

            y = winograd_conv3x3(x, self.u, self.bias, self.winograd, padding=0)
            if self.attr == "sigmoid":
                y = y.sigmoid_()
            elif self.attr == "relu":
                y = y.relu_()
            elif self.attr == "leaky_relu":
                y = F.leaky_relu(y, self.scalars[0], inplace=True)
        else:
            if self.im2col:
                n, c, h, w = x.shape
                k = self.k
                # (N, C, H', W', k, k) -> (N, H', W', C*k*k): each LR pixel's patch, channels-last
                x = x.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5)
                x = x.reshape(n, h - k + 1, w - k + 1, c * k * k).permute(0, 3, 1, 2)
            y = torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, [0, 0], [1, 1], [1, 1], 1,
                                                        self.attr, self.scalars, "")
        if self.prelu is not None:
            y = F.prelu(y, self.prelu)
        return y


class FastESPCN(nn.Module):
    """An :class:`ESPCN` rewritten for CPU inference; build it with :func:`optimize_for_inference`.

    It computes the same function as the model it was made from (a snapshot of
    its weights, in eval mode) and accepts ``(N, C, H, W)`` or ``(C, H, W)``
    float32 CPU tensors. Only inference: no gradients flow through it.
    """

    def __init__(self, model: nn.Module, *, strip_rows: int | None = None, winograd: int | None = None,
                 im2col_max: int = 128):
        super().__init__()
        from .models import ESPCN

        if not isinstance(model, ESPCN):
            raise TypeError(f"FastESPCN: model must be an ESPCN, got {type(model).__name__}")
        if strip_rows is not None and (isinstance(strip_rows, bool) or not isinstance(strip_rows, int)
                                       or strip_rows < 1):
            raise ValueError(f"FastESPCN: strip_rows must be a positive int or None, got {strip_rows!r}")
        if winograd not in (None, 2, 4):
            raise ValueError(f"FastESPCN: winograd must be None, 2 or 4, got {winograd!r}")
        cfg = model.config
        self.config = cfg
        self.strip_rows, self.winograd = strip_rows, winograd
        # A copy of the eager model as a submodule: receptive_radius() and upscale() read its
        # convolutions, and it is the reference the rewritten stages are checked against.
        self.eager = copy.deepcopy(model).eval()
        convs = [m for m in model.features if isinstance(m, nn.Conv2d)] + [model.to_subpixels]
        acts = [m for m in model.features if not isinstance(m, nn.Conv2d)]
        self.stages: list[_Stage] = []
        # The hidden activations are computed in a rewritten form h = a * s + c. For tanh,
        # s = sigmoid(2 z) and h = tanh(z) = 2 s - 1 (a = 2, c = -1): oneDNN's fused sigmoid is
        # several times cheaper than its tanh, and the affine map folds into the next weights.
        a, c = 1.0, 0.0
        with torch.no_grad():
            for i, conv in enumerate(convs):
                w = conv.weight.detach().float() * a
                b = conv.bias.detach().float() + c * conv.weight.detach().float().sum((1, 2, 3))
                last = i == len(convs) - 1
                prelu = None
                if last:
                    attr, scalars, fill = ("sigmoid" if cfg.output_activation == "sigmoid" else "none"), [], 0.0
                    a, c = 1.0, 0.0
                else:
                    attr, scalars = _ONEDNN_ACTIVATIONS[cfg.activation], []
                    if cfg.activation == "tanh":
                        w, b = 2 * w, 2 * b
                        a, c, fill = 2.0, -1.0, 0.5  # h = 0 outside the image <=> s = 1/2
                    else:
                        a, c, fill = 1.0, 0.0, 0.0
                        if cfg.activation == "leaky_relu":
                            scalars = [cfg.negative_slope]
                        elif cfg.activation == "prelu":
                            prelu = acts[i].weight.detach().float().clone()
                if last and w.shape[0] % 8:
                    # oneDNN's AVX2 kernels work on blocks of 8 output channels; 9 (x3) or 27 (RGB x3)
                    # channels run faster as 16 or 32 with zero weights, sliced off after the convolution.
                    extra = 8 - w.shape[0] % 8
                    w = torch.cat([w, w.new_zeros(extra, *w.shape[1:])])
                    b = torch.cat([b, b.new_zeros(extra)])
                im2col = i == 0 and conv.in_channels * conv.kernel_size[0] ** 2 <= im2col_max
                wino = winograd if conv.kernel_size == (3, 3) and not im2col else None
                self.stages.append(_Stage(w, b, attr, scalars, fill, prelu, im2col, wino))
        self.radius = sum(s.radius for s in self.stages)

    # the attributes upscale() and the notebooks read
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
        return self.eager.macs_per_input_pixel()

    #: Bytes of the widest feature map of one strip. 20 MB keeps a strip in a server's L3 cache; on
    #: the 2-core EPYC of the benchmark strips of 64 to 192 rows of a 640-wide frame all ran within
    #: 10 % of each other, 16 rows 45 % slower and the whole frame at once 70 % slower.
    strip_bytes = 20 << 20

    def rows_per_strip(self, width: int) -> int:
        """LR rows per strip (``strip_rows``, or :attr:`strip_bytes` of the widest feature map)."""
        if self.strip_rows is not None:
            return self.strip_rows
        widest = max(s.weight.shape[0] for s in self.stages[:-1]) if len(self.stages) > 1 else 16
        return max(8, self.strip_bytes // (4 * widest * (width + 2 * self.radius)))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_tensor(x, f"FastESPCN(channels={self.config.channels!r}): x", channels=self.in_channels)
        single = x.dim() == 3
        x = x.unsqueeze(0) if single else x
        if x.device.type != "cpu":
            raise ValueError(f"FastESPCN runs on the CPU; got a tensor on {x.device} (use the eager model there)")
        x = x.float()
        n, _, h, w = x.shape
        r, big_r = self.scale, self.radius
        out = x.new_empty(n, self.out_channels, h * r, w * r)
        xp = F.pad(x, (big_r, big_r, big_r, big_r))  # zeros outside the image, as the "same" padding
        rows = self.rows_per_strip(w)
        # Strips of LR rows, each with its receptive field around it: all feature maps of a strip
        # stay in the caches, where a whole-frame layer would stream 60 MB through memory.
        for top in range(0, h, rows):
            bottom = min(top + rows, h)
            y = xp[:, :, top: bottom + 2 * big_r]
            margin = big_r  # rows/columns of context still around the strip
            for stage in self.stages:
                y = stage(y)
                margin -= stage.radius
                if margin:
                    # Outside the image the next layer must see zeros (its "same" padding): the
                    # convolution computed something there, overwrite it.
                    y[:, :, :, :margin] = stage.fill
                    y[:, :, :, y.shape[-1] - margin:] = stage.fill
                    if top < margin:
                        y[:, :, : margin - top] = stage.fill
                    if bottom + margin > h:
                        y[:, :, h - (top - margin):] = stage.fill
            y = y[:, : self.out_channels * r * r]  # drop the zero channels added for speed
            if self.config.output_activation == "clamp":
                y = y.clamp(0.0, 1.0)
            out[:, :, top * r: bottom * r] = F.pixel_shuffle(y, r)
        return out[0] if single else out

    def extra_repr(self) -> str:
        kinds = []
        for s in self.stages:
            kind = f"winograd F({s.winograd}x{s.winograd},3x3)" if s.winograd else (
                f"im2col {s.k}x{s.k} as 1x1" if s.im2col else f"oneDNN {s.k}x{s.k}")
            kinds.append(f"{kind}+{s.attr}")
        return f"x{self.scale}, strip_rows={self.strip_rows or 'auto'}, stages=[{', '.join(kinds)}]"


def optimize_for_inference(model: nn.Module, example_shape=None, *, strip_rows: int | None = None,
                           winograd: int | None = None, verbose: bool = True) -> nn.Module:
    """A module computing ``model``'s function faster on a CPU (outputs equal to 1e-4).

    For an :class:`ESPCN` on a CPU with oneDNN this returns a :class:`FastESPCN`
    (a snapshot of the weights, inference only); it is checked against the eager
    model on a test input first. For anything else, or if a step fails, it prints
    a note and returns the eager ``model`` itself, so calling it is always safe.
    ``example_shape`` (e.g. ``(1, 1, 360, 640)``) runs one warm-up call, in which
    oneDNN builds its kernels. ``strip_rows`` fixes the strip height (default:
    :attr:`FastESPCN.strip_bytes`); ``winograd=2`` or ``4`` computes the 3x3 layers
    with :mod:`.winograd` instead (slower here -- for teaching and comparison).

    Use it as ``fast = optimize_for_inference(model)`` and ``fast(y)``, or
    ``upscale(model, image, optimized=True)``.

    **What it does, and why** (measured for the x3 paper model on a 1080p frame,
    LR 640x360, 10.4 GFLOP, on a 2-core AVX2 EPYC with 2 threads; see
    ``benchmarks/results/superres.md`` for the current numbers):

    1. *Strips.* The frame is cut into strips of LR rows, each with its receptive
       field (4 rows) of context, and all three layers run on one strip before the
       next. The eager model writes the 59 MB first feature map of a frame to
       memory and reads it back; a strip's maps stay in the caches. Memory, not
       arithmetic, was the bottleneck: the first layer alone took 60-110 ms on
       a whole frame and 20-25 ms in strips (one thread).
    2. *oneDNN with the activation fused*, channels-last
       (``torch.ops.mkldnn._convolution_pointwise``, the kernel that
       ``torch.compile`` calls). Zero padding becomes explicit context plus
       "fill what lies outside the image" after each layer.
    3. *tanh as a sigmoid*: ``tanh(z) = 2 sigmoid(2 z) - 1``. oneDNN's fused
       sigmoid added ~0.5 ns per value, its tanh ~5 ns (AVX2, one thread), and
       there are 22 million activations per frame. The factor 2 goes into the
       layer's weights, the map ``2 s - 1`` into the next layer's weights and bias
       (``W' = 2 W``, ``b' = b - sum W``), and "zero outside the image" becomes
       ``s = 1/2``. The result differs from eager by ~3e-6.
    4. *First layer as a 1x1 convolution of im2col patches* (1 channel x 5x5 = 25
       values per pixel): oneDNN's direct kernel for a one-channel input took
       ~110 ms per frame (7 GFLOP/s), the 1x1 form ~26 ms (one thread).
    5. *Last layer padded from 9 to 16 output channels* with zero weights
       (AVX2 holds 8 floats; oneDNN blocks channels by 8): 30 -> 24 ms (one thread).

    Result: eager float32 0.23-0.25 s/frame, this 0.095 s (2.5x, ~110 GFLOP/s).

    **Tried and not kept** (s/frame, same machine): ``torch.inference_mode``
    0.23-0.26 (the time is in the convolutions, not in autograd bookkeeping);
    channels_last 0.17-0.18; ``jit.trace`` + ``jit.freeze`` 0.23-0.25, with
    oneDNN graph fusion (conv+tanh fused) 0.15; ``torch.utils.mkldnn`` tensors
    0.18-0.20; ``torch.compile`` (inductor, freezing) 0.15 after 5-20 s of
    compiling for each new input shape; NNPACK's Winograd F(6x6, 3x3) for the
    64->32 layer, whole frame or in strips, 0.18-0.27; one thread instead of two
    0.175; the hand-written Winograd of :mod:`.winograd` in the strips 0.47
    (F(4x4)) and 0.86-0.88 (F(2x2)).

    **Why Winograd loses here** although it needs 4x fewer multiplications in
    the layer that holds 80 % of the work: oneDNN's direct 64->32 convolution
    already runs at ~150 GFLOP/s, about 95 % of the two cores' peak, while the
    transforms written as torch operations are separate passes over memory
    (tiles 2.25x the data, two transform products, the scatter back), which cost
    more than the saved products. cuDNN, oneDNN on AVX-512 and NNPACK fuse the
    transforms into the matrix product's loads and stores. That layer alone is
    8.5 GFLOP, 55 ms at peak, so direct convolution cannot reach 0.055 s per
    1080p frame on these two cores; only a fused Winograd kernel could.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize_for_inference: model must be an nn.Module, got {type(model).__name__}")
    from .models import ESPCN

    def fallback(why: str) -> nn.Module:
        if verbose:
            print(f"optimize_for_inference: {why}; using the eager model")
        return model.eval()

    if not isinstance(model, ESPCN):
        return fallback(f"no optimised path for {type(model).__name__} (only ESPCN)")
    if not torch.backends.mkldnn.is_available():
        return fallback("this PyTorch build has no oneDNN (mkldnn)")
    if next(model.parameters()).device.type != "cpu":
        return fallback(f"the model is on {next(model.parameters()).device}, the fast path is for the CPU")
    try:
        fast = FastESPCN(model, strip_rows=strip_rows, winograd=winograd)
        # Check on a small input that the rewritten model computes the same function.
        probe = torch.rand(2, model.in_channels, 13, 11, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            err = (fast(probe) - fast.eager(probe)).abs().max().item()
        if not err < 1e-4:
            return fallback(f"the optimised model differs from the eager one by {err:.2g} on a test input")
        if example_shape is not None:
            with torch.inference_mode():
                fast(torch.rand(*example_shape))  # warm-up: oneDNN creates its kernels on the first call
    except Exception as exc:  # an op missing from this build, an odd config, ...
        return fallback(f"the optimised path failed ({type(exc).__name__}: {exc})")
    return fast
