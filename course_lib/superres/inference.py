"""Full-image inference: ``upscale(model, image)`` for any image size.

Large images are processed in tiles so that memory stays bounded. Each tile is
extended by ``overlap`` LR pixels on every side (the model's receptive-field
radius by default) and only its centre is kept, so every output pixel sees
exactly the inputs it would see in one untiled pass: the tiled result equals
the untiled one up to floating-point rounding (tested to 1e-5).

Y-channel models (the paper's ESPCN) get RGB images in and out: the model
super-resolves luma, chroma is enlarged bicubically (as in the paper).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.images import check_image_tensor, rgb_to_ycbcr, ycbcr_to_rgb, to_pil, to_tensor

__all__ = ["upscale", "receptive_radius", "model_scale"]


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


@torch.no_grad()
def upscale(model: nn.Module, image, *, tile: int | None = 256, overlap: int | None = None,
            device: torch.device | str | None = None, clamp: bool = True):
    """Super-resolve a whole image with ``model`` (in eval mode, without gradients).

    Parameters
    ----------
    model: an SR model with a ``.scale`` (ESPCN, DeblockThenSR); RGB or Y-only.
    image: tensor ``(C, H, W)`` / ``(N, C, H, W)`` in [0, 1], or a PIL image (a PIL image is returned).
    tile: LR tile side (None: one pass). ``overlap``: LR context per side (default: the receptive radius).

    A Y-only model given an RGB image runs on luma; Cb and Cr are enlarged with
    bicubic interpolation and the result converted back to RGB.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"upscale: model must be an nn.Module, got {type(model).__name__}")
    pil = not isinstance(image, torch.Tensor)
    x = to_tensor(image) if pil else image
    check_image_tensor(x, "upscale: image")
    if tile is not None and (not isinstance(tile, int) or tile < 1):
        raise ValueError(f"upscale: tile must be a positive int or None, got {tile!r}")
    single = x.dim() == 3
    x = x.unsqueeze(0) if single else x
    scale = model_scale(model)
    overlap = receptive_radius(model) if overlap is None else int(overlap)
    was_training = model.training
    model.eval()
    if device is not None:
        model.to(device)
    dev = next(model.parameters()).device
    x = x.to(dev, torch.float32)
    cin = _in_channels(model)
    if cin == x.shape[1]:
        out = _tiled(model, x, scale, tile, overlap)
    elif cin == 1 and x.shape[1] == 3:
        ycbcr = rgb_to_ycbcr(x)
        y = _tiled(model, ycbcr[:, :1], scale, tile, overlap)
        cbcr = F.interpolate(ycbcr[:, 1:], scale_factor=scale, mode="bicubic", align_corners=False)
        out = ycbcr_to_rgb(torch.cat([y, cbcr], 1))
    elif cin == 3 and x.shape[1] == 1:
        out = _tiled(model, x.expand(-1, 3, -1, -1), scale, tile, overlap).mean(1, keepdim=True)
    else:
        raise ValueError(f"upscale: the model takes {cin} channel(s), the image has {x.shape[1]}")
    model.train(was_training)
    out = out.clamp(0, 1) if clamp else out
    out = out[0] if single else out
    return to_pil(out.cpu()) if pil else out
