"""Optimisation-based style transfer (Gatys, Ecker & Bethge, CVPR 2016).

:func:`stylize` optimises the pixels of an image so that its VGG features
match the content image's at ``content_layers`` and its Gram matrices match
the style image's at ``style_layers``:

``L = content_weight * L_content + style_weight * L_style + tv_weight * TV``

What it does beyond the PyTorch tutorial, and why:

* The target features and Gram matrices are computed **once**, before the
  loop; each step runs one forward/backward pass of the image being optimised
  through a VGG **truncated** after the deepest layer needed.
* The content image is resized so that its longer side is ``size`` (aspect
  ratio kept); the style image is **resized explicitly to the content's size**
  (Gram matrices do not need equal sizes, but the statistics of a VGG layer
  depend on scale, so the style is seen at the scale of the output). A note
  says so when the style's aspect ratio changes.
* ``scales=[128, 256]`` runs coarse-to-fine: each scale starts from the
  previous result upsampled, which gives large-scale structure cheaply.
* ``preserve_color="histogram"`` recolours the style image to the content's
  colour mean/covariance first; ``"luminance"`` runs the transfer on
  luminance only and puts back the content's chroma (Gatys et al. 2016b).
* A non-finite loss stops the optimisation with a message; the last image
  with a finite loss is returned (``result.stopped``).
* LBFGS runs one iteration (one function evaluation, no line search, lr 1,
  as the tutorial) per step, so ``steps`` counts forward/backward passes and
  the progress bar and history have one entry per pass. The image is not
  clamped during LBFGS (that would corrupt its curvature history); the result
  is clamped to [0, 1]. Adam clamps after every step.

>>> from course_lib.style import stylize          # doctest: +SKIP
>>> result = stylize("photo.jpg", "starry_night.jpg", size=256, steps=300)
>>> result.image.shape, result.weights_used
(torch.Size([3, 256, 341]), 'imagenet')
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core.device import get_device
from ..core.images import check_image_tensor, load_tensor, rgb_to_y, to_tensor
from .features import VGGFeatures, layer_names, min_input_side
from .losses import (content_loss, gram_matrix, luminance_only, match_color_statistics, style_loss,
                     style_targets, total_variation)

__all__ = ["stylize", "StylizeResult", "reference_stylize_step_time", "as_rgb"]

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYERS = ("conv4_2",)


@dataclass
class StylizeResult:
    """What :func:`stylize` returns.

    ``history`` holds one entry per step in lists ``step``, ``size`` (the
    scale), ``content``, ``style``, ``tv`` (each already multiplied by its
    weight) and ``total``. ``style_loss_start`` / ``style_loss_end`` are the
    *unweighted* style loss of the initial image (first scale) and of the
    returned, clamped image (last scale). ``snapshots`` is a list of
    ``(step, image (3, H, W))``. ``stopped`` is None or the reason the run
    stopped early.
    """

    image: torch.Tensor
    history: dict
    snapshots: list
    weights_used: str
    style_loss_start: float
    style_loss_end: float
    stopped: str | None = None
    notes: list = field(default_factory=list)
    seconds: float = 0.0


def as_rgb(image, name: str = "image") -> torch.Tensor:
    """A path, bytes, PIL image, array or tensor -> RGB tensor ``(3, H, W)`` in [0, 1].

    Grayscale is repeated to three channels; RGBA/LA is composited over white
    (files go through :func:`course_lib.core.images.load_tensor`, which also
    applies the EXIF orientation).
    """
    if isinstance(image, (str, os.PathLike, bytes, bytearray)) or hasattr(image, "getpixel"):
        return load_tensor(image, mode="RGB")
    if isinstance(image, np.ndarray):
        image = to_tensor(image)
    check_image_tensor(image, name)
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"{name}: give one image (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        image = image[0]
    image = image.detach().float()
    c = image.shape[0]
    if c == 1:
        return image.expand(3, -1, -1).clone()
    if c == 2:  # gray + alpha
        return (image[:1] * image[1:] + (1 - image[1:])).expand(3, -1, -1).clone()
    if c == 3:
        return image
    if c == 4:
        return image[:3] * image[3:] + (1 - image[3:])
    raise ValueError(f"{name}: expected 1, 2, 3 or 4 channels, got shape {tuple(image.shape)}")


def _resize(x: torch.Tensor, hw) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x[None], size=tuple(hw), mode="bilinear", align_corners=False,
                         antialias=True)[0].clamp(0, 1)


def _content_size(h: int, w: int, size: int):
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Gray RGB image whose BT.601 luma equals that of ``x`` (full-range Y repeated)."""
    y = (rgb_to_y(x) - 16.0 / 255.0) * (255.0 / 219.0)
    return y.clamp(0, 1).expand(3, -1, -1).clone()


def stylize(content, style, *, size: int = 256, steps: int = 300, optimizer: str = "lbfgs",
            init: str = "content", content_layers: Sequence[str] = CONTENT_LAYERS,
            style_layers: Sequence[str] = STYLE_LAYERS, content_weight: float = 1.0,
            style_weight: float = 1e6, tv_weight: float = 0.0, style_blend_weights=None,
            style_layer_weights=None, preserve_color: str | None = None, scales=None,
            snapshot_every: int | None = None, seed: int = 0, progress: bool = True,
            features: VGGFeatures | None = None, weights: str = "auto", lr: float | None = None,
            device=None) -> StylizeResult:
    """Stylise ``content`` with ``style`` by optimising the image (Gatys et al. 2016).

    Args:
        content: path / PIL / array / tensor ``(C, H, W)`` (gray, RGB, RGBA accepted).
        style: one style image or a list of them (blended with ``style_blend_weights``).
        size: longer side of the output (content aspect ratio kept); ignored if ``scales``.
        steps: optimiser steps (function evaluations) per scale.
        optimizer: ``"lbfgs"`` (the papers) or ``"adam"`` (lr 0.02 by default).
        init: ``"content"`` (tutorial) or ``"noise"`` (Gatys et al.; seeded).
        content_layers, style_layers: VGG layer names (see :func:`layer_names`).
        content_weight, style_weight, tv_weight: the loss weights.
        style_layer_weights: per style layer (default equal, as Gatys et al.).
        preserve_color: None, ``"luminance"`` or ``"histogram"`` (Gatys et al. 2016b).
        scales: coarse-to-fine list of sizes, e.g. ``[128, 256]``.
        snapshot_every: keep the image every this many steps (for an animation).
        seed: seeds the noise init and torch (runs repeat exactly on the CPU).
        progress: show a ``tqdm`` bar with the loss terms, and print notes.
        features: a :class:`VGGFeatures` to reuse (must contain all the layers);
            default builds one with ``weights`` and average pooling.
    """
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"stylize: optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    if init not in ("content", "noise"):
        raise ValueError(f"stylize: init must be 'content' or 'noise', got {init!r}")
    if preserve_color not in (None, "luminance", "histogram"):
        raise ValueError(f"stylize: preserve_color must be None, 'luminance' or 'histogram', got {preserve_color!r}")
    if int(steps) < 1:
        raise ValueError(f"stylize: steps must be >= 1, got {steps}")
    content_layers, style_layers = tuple(content_layers), tuple(style_layers)
    scales = [int(size)] if scales is None else [int(s) for s in scales]
    if not scales or min(scales) < 8:
        raise ValueError(f"stylize: sizes must be >= 8 pixels, got {scales}")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    device = get_device(device) if features is None else next(features.buffers()).device

    needed = content_layers + style_layers
    content = as_rgb(content, "content").to(device)  # the images first: a bad file fails before VGG is built
    styles = style if isinstance(style, (list, tuple)) else [style]
    styles = [as_rgb(s, f"style[{i}]").to(device) for i, s in enumerate(styles)]
    if features is None:
        features = VGGFeatures(needed, weights=weights, pooling="avg", seed=seed).to(device)
    else:
        missing = [n for n in needed if n not in features.layers]
        if missing:
            raise ValueError(f"stylize: the features given do not compute layer(s) {missing}; "
                             f"build VGGFeatures({list(needed)!r}, ...)")

    deepest = max(layer_names(features.arch).index(n) for n in needed)
    min_side = min_input_side(needed, features.arch)
    for name, img in (("content", content), *((f"style[{i}]", s) for i, s in enumerate(styles))):
        # blown up from a few pixels, an image holds nothing for the layers to match
        if min(img.shape[-2:]) < min_side:
            raise ValueError(f"stylize: the {name} image is {img.shape[-1]}x{img.shape[-2]} pixels; each side needs "
                             f">= {min_side} pixels (VGG pools {min_side.bit_length() - 1} time(s) before "
                             f"{layer_names(features.arch)[deepest]})")
    notes = []
    if preserve_color == "histogram":
        styles = [match_color_statistics(s, content) for s in styles]
        notes.append("preserve_color='histogram': style images recoloured to the content's colour mean/covariance")
    original_content = content
    if preserve_color == "luminance":
        content = _gray(content)
        # match the style's luminance mean/std to the content's (Gatys et al. 2016b, eq. 2)
        yc = content[0]
        matched = []
        for s in styles:
            ys = _gray(s)[0]
            ys = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
            matched.append(ys.clamp(0, 1).expand(3, -1, -1).clone())
        styles = matched
        notes.append("preserve_color='luminance': transfer on luminance, content's chroma put back")

    history = {k: [] for k in ("step", "size", "content", "style", "tv", "total")}
    snapshots, stopped = [], None
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = None
    total_steps = steps * len(scales)
    bar = tqdm(total=total_steps, desc="stylize", disable=not progress, leave=True)
    step = 0
    style_start = None
    with bar:
        for size_i in scales:
            hw = _content_size(*content.shape[-2:], size_i)
            if min(hw) < min_side:
                raise ValueError(f"stylize: image size {hw[0]}x{hw[1]} (size {size_i}) is too small for layer(s) "
                                 f"down to {layer_names(features.arch)[deepest]}: each side needs >= {min_side} "
                                 "pixels; use a larger size or shallower layers")
            c_img = _resize(content, hw)
            s_imgs = []
            for i, s in enumerate(styles):
                if tuple(s.shape[-2:]) != hw:
                    old = tuple(s.shape[-2:])
                    if abs(old[0] / old[1] - hw[0] / hw[1]) > 0.01 and size_i == scales[-1]:
                        notes.append(f"style[{i}] resized from {old[0]}x{old[1]} to the content size "
                                     f"{hw[0]}x{hw[1]} (aspect ratio changed)")
                    s = _resize(s, hw)
                s_imgs.append(s)
            with torch.no_grad():  # targets once, not every step
                c_feats = features(c_img[None])
                c_targets = {n: c_feats[n].detach() for n in content_layers}
                s_grams = style_targets([{n: f for n, f in features(s[None]).items() if n in style_layers}
                                         for s in s_imgs], style_blend_weights)
                s_grams = {n: s_grams[n] for n in style_layers}
            if x is None:
                x0 = c_img[None].clone() if init == "content" else torch.rand((1, 3) + hw, generator=gen).to(device)
            else:
                x0 = F.interpolate(x, size=hw, mode="bilinear", align_corners=False).clamp(0, 1)
            # contiguous: LBFGS flattens the gradient with view(), which a channels-last layout refuses
            x = x0.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
            last_good = x.detach().clone()
            if optimizer == "lbfgs":
                opt = torch.optim.LBFGS([x], lr=1.0 if lr is None else lr, max_iter=1, history_size=50,
                                        tolerance_grad=0.0, tolerance_change=0.0)
            else:
                opt = torch.optim.Adam([x], lr=0.02 if lr is None else lr)
            state = {}

            def closure():
                opt.zero_grad(set_to_none=True)
                feats = features(x)
                lc = content_weight * content_loss({n: feats[n] for n in content_layers}, c_targets)
                ls = style_weight * style_loss({n: feats[n] for n in style_layers}, s_grams, style_layer_weights)
                lt = tv_weight * total_variation(x) if tv_weight else torch.zeros((), device=x.device)
                loss = lc + ls + lt
                state["terms"] = (lc.item(), ls.item(), lt.item(), loss.item())
                if math.isfinite(state["terms"][3]):
                    loss.backward()
                else:
                    x.grad = torch.zeros_like(x)  # keep the optimiser from spreading NaN; we stop below
                return loss

            for _ in range(steps):
                before = x.detach().clone()
                opt.step(closure)
                lc, ls, lt, total = state["terms"]
                if not all(math.isfinite(v) for v in state["terms"]):
                    stopped = (f"stopped at step {step}: the loss became non-finite (content {lc:.3g}, "
                               f"style {ls:.3g}, tv {lt:.3g}); returning the last image with a finite loss. "
                               "Try a smaller style_weight or lr, or optimizer='adam'.")
                    with torch.no_grad():
                        x.copy_(last_good)
                    break
                last_good = before  # the image at which this finite loss was measured
                if optimizer == "adam":
                    with torch.no_grad():
                        x.clamp_(0, 1)
                if style_start is None:
                    style_start = ls / style_weight if style_weight else float("nan")
                for k, v in zip(("step", "size", "content", "style", "tv", "total"), (step, size_i, lc, ls, lt, total)):
                    history[k].append(v)
                step += 1
                if snapshot_every and step % snapshot_every == 0:
                    snapshots.append((step, x.detach()[0].clamp(0, 1).clone()))
                bar.update(1)
                bar.set_postfix(content=f"{lc:.3g}", style=f"{ls:.3g}", tv=f"{lt:.3g}", refresh=False)
            if stopped is None and not torch.isfinite(x).all():
                with torch.no_grad():
                    x.copy_(last_good)
                stopped = f"stopped at step {step}: the image became non-finite; returning the last finite one"
            if stopped:
                break
    x = x.detach().clamp(0, 1)
    with torch.no_grad():
        feats = features(x)
        style_end = style_loss({n: feats[n] for n in style_layers}, s_grams, style_layer_weights).item()
    if style_start is None:
        style_start = style_end
    image = x[0]
    if preserve_color == "luminance":
        image = luminance_only(image, _resize(original_content, image.shape[-2:]))
    if progress:
        for note in notes:
            print(f"stylize: {note}")
        if stopped:
            print(f"stylize: {stopped}")
    return StylizeResult(image=image.cpu(), history=history, snapshots=snapshots,
                         weights_used=features.weights_used, style_loss_start=float(style_start),
                         style_loss_end=float(style_end), stopped=stopped, notes=notes,
                         seconds=time.perf_counter() - t0)


def reconstruct(image, layers: Sequence[str], *, kind: str = "content", size: int = 128, steps: int = 100,
                features: VGGFeatures | None = None, weights: str = "auto", seed: int = 0,
                progress: bool = False) -> StylizeResult:
    """What do the features of a few layers keep of an image? (Gatys et al. 2016, Fig. 1)

    Start from white noise and run L-BFGS on the pixels until the image's
    features match those of ``image`` at ``layers``: with ``kind="content"``
    the feature maps themselves (content loss), with ``kind="style"`` only
    their Gram matrices (style loss). Content reconstructions from shallow
    layers are nearly the photo; from deep layers the layout survives but the
    exact pixels do not. Style reconstructions keep colours and textures and
    lose the arrangement -- the larger the set of layers, the larger the
    structures that come back.

    Returns a :class:`StylizeResult` (``image``, per-step ``history["total"]``,
    ``style_loss_start/end`` hold the matched loss before and after).
    """
    if kind not in ("content", "style"):
        raise ValueError(f"reconstruct: kind must be 'content' or 'style', got {kind!r}")
    layers = tuple(layers) if not isinstance(layers, str) else (layers,)
    if not layers:
        raise ValueError("reconstruct: layers must name at least one VGG layer")
    if int(steps) < 1:
        raise ValueError(f"reconstruct: steps must be >= 1, got {steps}")
    t0 = time.perf_counter()
    if features is None:
        features = VGGFeatures(layers, weights=weights, pooling="avg", seed=seed)
    missing = [n for n in layers if n not in features.layers]
    if missing:
        raise ValueError(f"reconstruct: the features given do not compute layer(s) {missing}; "
                         f"build VGGFeatures({list(layers)!r}, ...)")
    device = next(features.buffers()).device
    target_img = _resize(as_rgb(image, "image").to(device), _content_size(*as_rgb(image).shape[-2:], size))
    with torch.no_grad():
        f_target = {n: f for n, f in features(target_img[None]).items() if n in layers}
        target = f_target if kind == "content" else style_targets([f_target])

    def loss_of(feats):
        feats = {n: feats[n] for n in layers}
        return content_loss(feats, target) if kind == "content" else style_loss(feats, target)

    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.rand((1,) + tuple(target_img.shape), generator=gen).to(device).requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=50, tolerance_grad=0.0, tolerance_change=0.0)
    history = {"step": [], "total": []}
    state = {}
    with torch.no_grad():  # the losses' scales differ by orders of magnitude; L-BFGS (lr 1, no line search)
        # works well when the loss starts near 100 (as stylize's weighted style loss does): optimise 100 loss / loss(noise)
        scale = max(loss_of(features(x)).item(), 1e-30)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_of(features(x))
        state["loss"] = loss.item()
        if math.isfinite(state["loss"]):
            (loss * (100.0 / scale)).backward()
        else:
            x.grad = torch.zeros_like(x)
        return loss

    start, stopped = None, None
    for step in tqdm(range(int(steps)), desc=f"reconstruct {kind}", disable=not progress):
        before = x.detach().clone()
        opt.step(closure)
        if not math.isfinite(state["loss"]):
            with torch.no_grad():
                x.copy_(before)
            stopped = f"stopped at step {step}: the loss became non-finite; returning the last finite image"
            break
        start = state["loss"] if start is None else start
        history["step"].append(step)
        history["total"].append(state["loss"])
    x = x.detach().clamp(0, 1)
    with torch.no_grad():
        end = loss_of(features(x)).item()
    return StylizeResult(image=x[0].cpu(), history=history, snapshots=[], weights_used=features.weights_used,
                         style_loss_start=float(start if start is not None else end), style_loss_end=float(end),
                         stopped=stopped, notes=[f"{kind} reconstruction from {', '.join(layers)}"],
                         seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# A deliberately plain reference, written the obvious way (as the PyTorch tutorial), for the
# benchmark only: full VGG19 forward every step, loss modules inserted after conv layers,
# and the target Gram matrices / content features recomputed every step.


class _Normalization(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1))

    def forward(self, img):
        return (img - self.mean) / self.std


class _Recorder(nn.Module):
    """Stores what flows through it (the tutorial's ContentLoss/StyleLoss without a fixed target)."""

    def forward(self, x):
        self.out = x
        return x


def reference_stylize_step_time(content: torch.Tensor, style: torch.Tensor, size: int = 128, steps: int = 5,
                                style_weight: float = 1e6, content_weight: float = 1.0,
                                weights: str = "random") -> dict:
    """Seconds per step of the naive tutorial-style loop (for benchmarks; not for use).

    Returns ``{"seconds_per_step", "steps", "size", "weights_used"}``.
    """
    import torchvision

    torch.manual_seed(0)
    vgg = VGGFeatures(["relu5_4"], weights=weights, pooling="max", verbose=False)  # weights only
    cnn = torchvision.models.vgg19(weights=None).features
    cnn.load_state_dict({f"{i}.{k}": v for i, m in enumerate(vgg.features) for k, v in m.state_dict().items()})
    model, content_rec, style_rec, i = nn.Sequential(_Normalization()), [], [], 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            layer, name = nn.ReLU(inplace=False), f"relu_{i}"
        else:
            name = f"pool_{i}"
        model.add_module(name, layer)
        if name == "conv_4":
            content_rec.append(_Recorder())
            model.add_module(f"content_loss_{i}", content_rec[-1])
        if name in ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"):
            style_rec.append(_Recorder())
            model.add_module(f"style_loss_{i}", style_rec[-1])
    model.eval().requires_grad_(False)
    c = F.interpolate(as_rgb(content)[None], size=(size, size), mode="bilinear", align_corners=False)
    s = F.interpolate(as_rgb(style)[None], size=(size, size), mode="bilinear", align_corners=False)
    x = c.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x])

    def closure():
        opt.zero_grad()
        with torch.no_grad():
            model(c)
            c_targets = [r.out.clone() for r in content_rec]
            model(s)
            s_targets = [gram_matrix(r.out) for r in style_rec]
        model(x)
        loss = content_weight * sum(F.mse_loss(r.out, t) for r, t in zip(content_rec, c_targets))
        loss = loss + style_weight * sum(F.mse_loss(gram_matrix(r.out), t) for r, t in zip(style_rec, s_targets))
        loss.backward()
        return loss

    opt = torch.optim.LBFGS([x], max_iter=1)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step(closure)
    dt = (time.perf_counter() - t0) / steps
    return {"seconds_per_step": dt, "steps": steps, "size": size, "weights_used": vgg.weights_used}
