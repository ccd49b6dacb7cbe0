"""Whole-image inference: ``upscale(model, image)`` for a tensor or a PIL image of any size.

A Y-channel model (the paper's ESPCN) given an RGB image super-resolves luma; Cb and Cr are enlarged
bicubically, as in the paper. An image larger than :data:`BLOCK` x :data:`BLOCK` LR pixels is processed block
by block (colour conversion, model, chroma, clamping and, for a PIL image, the 8-bit conversion), so that memory
stays at the result plus one block. Each block carries the model's receptive radius of context on every side
and only its centre is kept: the result equals the one-pass result up to float32 rounding (~2e-5; tested).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..core.checks import InputError, check_finite, check_int
from ..core.images import check_image_tensor, load_image, rgb_to_ycbcr, to_pil, to_tensor, ycbcr_to_rgb
from .fast import FastESPCN, optimize_for_inference

__all__ = ["upscale", "receptive_radius", "BLOCK"]

#: Side, in LR pixels, of the blocks of ``upscale(..., tile="auto")`` for images larger than this.
BLOCK = 512


def receptive_radius(model: nn.Module) -> int:
    """LR pixels on each side that one output pixel depends on: the sum of the convolutions' half-widths
    (exact for a chain of stride-1 "same" convolutions: ESPCN, the deblocking net, both in a row)."""
    radius = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if m.stride != (1, 1):
                raise InputError(f"receptive_radius: {type(model).__name__} has a strided convolution; "
                                 "pass overlap= explicitly")
            radius += max((m.kernel_size[0] - 1) // 2 * m.dilation[0], (m.kernel_size[1] - 1) // 2 * m.dilation[1])
    return radius


def _by_blocks(fn, src, h: int, w: int, scale: int, block: int, margin: int):
    """``fn`` (LR crop -> its SR) block by block, each block with ``margin`` LR pixels of context. ``src``: a
    tensor ``(N, C, H, W)``, or a PIL image read crop by crop, whose result is pasted from 8-bit blocks."""
    out = None
    for top in range(0, h, block):
        for left in range(0, w, block):
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            t1, l1 = min(top + block + margin, h), min(left + block + margin, w)
            if isinstance(src, Image.Image):
                x = to_tensor(np.asarray(src.crop((l0, t0, l1, t1))))[None]
            else:
                x = src[:, :, t0:t1, l0:l1]
            bh, bw = (min(top + block, h) - top) * scale, (min(left + block, w) - left) * scale
            y = fn(x)[:, :, (top - t0) * scale:, (left - l0) * scale:][:, :, :bh, :bw]
            if isinstance(src, Image.Image):
                piece = to_pil(y[0].clamp(0, 1).cpu())
                out = Image.new(piece.mode, (w * scale, h * scale)) if out is None else out
                out.paste(piece, (left * scale, top * scale))
            else:
                out = y.new_empty(*y.shape[:2], h * scale, w * scale) if out is None else out
                out[:, :, top * scale: top * scale + bh, left * scale: left * scale + bw] = y
    return out


@torch.no_grad()
def upscale(model: nn.Module, image, *, tile: int | None | str = "auto", overlap: int | None = None,
            device: torch.device | str | None = None, clamp: bool = True, optimized: bool = False):
    """Super-resolve a whole image with ``model`` (in eval mode, without gradients).

    model: an SR model with a ``.scale`` (ESPCN, DeblockThenSR, FastESPCN); RGB or Y-only.
    image: a tensor ``(C, H, W)`` / ``(N, C, H, W)`` in [0, 1], or a PIL image (a PIL image is returned).
    tile: block side in LR pixels; ``None``: one pass; ``"auto"``: :data:`BLOCK` for images larger than
        that, else one pass. Blocks give the same result (see the module docstring).
    overlap: LR context per side of a block (default: the model's receptive radius).
    optimized: on the CPU, run :func:`.fast.optimize_for_inference` first (to upscale many images, call it
        once and pass its result as ``model``).
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"upscale: model must be an nn.Module, got {type(model).__name__}")
    pil = not isinstance(image, torch.Tensor)
    if pil:
        if not isinstance(image, Image.Image):
            image = to_pil(to_tensor(image))
        if image.mode not in ("RGB", "L"):  # as to_tensor converts it
            image = load_image(image, mode="RGB" if image.mode not in ("1", "I;16", "I", "F", "LA") else "L")
        if 0 in image.size:
            raise InputError(f"upscale: image is empty: {image.size[0]}x{image.size[1]} pixels")
        (w, h), c = image.size, (1 if image.mode == "L" else 3)
    else:
        check_finite(check_image_tensor(image, "upscale: image"), "upscale: image")
        c, h, w = image.shape[-3:]
    if tile not in ("auto", None):
        check_int(tile, "upscale: tile (None, 'auto' or LR pixels)", minimum=1)
    cin = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    if not (cin == c or (cin == 1 and c == 3) or (cin == 3 and c == 1)):
        raise InputError(f"upscale: the model takes {cin} channel(s), the image has {c}")
    if optimized and (device is None or torch.device(device).type == "cpu"):
        model = optimize_for_inference(model, verbose=False)
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int):
        raise InputError(f"upscale: cannot tell the scale of {type(model).__name__}; give it a .scale attribute")
    overlap = receptive_radius(model) if overlap is None else int(overlap)
    block = (BLOCK if max(h, w) > BLOCK else None) if tile == "auto" else tile
    was_training = model.training
    model.eval()
    if device is not None and not isinstance(model, FastESPCN):
        model.to(device)
    dev = next(model.parameters()).device

    def run(x):  # the upscaled x (N, C, H, W), not clamped
        x = x.to(dev, torch.float32)
        if cin == x.shape[1]:
            return model(x)
        if cin == 1:  # a Y model on an RGB image: the paper's protocol
            ycbcr = rgb_to_ycbcr(x)
            cbcr = F.interpolate(ycbcr[:, 1:], scale_factor=scale, mode="bicubic", align_corners=False)
            return ycbcr_to_rgb(torch.cat([model(ycbcr[:, :1]), cbcr], 1))
        return model(x.expand(-1, 3, -1, -1)).mean(1, keepdim=True)  # an RGB model on a gray image

    # a large PIL image is read block by block
    src = (image if block else to_tensor(image)[None]) if pil else image.reshape(-1, c, h, w)
    try:
        out = run(src) if block is None else _by_blocks(run, src, h, w, scale, block, max(overlap, 3))
    finally:
        model.train(was_training)
    if isinstance(out, Image.Image):  # a large PIL image, pasted from 8-bit blocks
        return out
    out = out.clamp_(0, 1) if clamp or pil else out
    if pil:
        return to_pil(out[0].cpu())
    return out[0] if image.dim() == 3 else out
