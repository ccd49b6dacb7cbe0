"""Optimisation-based style transfer (Gatys, Ecker & Bethge, CVPR 2016).

Find the image ``x`` whose VGG19 features ``F_l(x)`` look like the content photo's ``P_l`` at the
content layers and whose Gram matrices ``G(F_l(x))`` look like the style image's ``A_l`` at the style
layers (the losses are in :mod:`.losses`):

    L(x) = α Σ_{l ∈ content} mean((F_l(x) − P_l)²)                     content: conv4_2
         + β Σ_{l ∈ style}   w_l · mean((G(F_l(x)) − A_l)²)            style: conv1_1 ... conv5_1
         + γ TV(x)
    x* = argmin_x L(x), by L-BFGS (or Adam) on the pixels, starting from the content photo or noise.

The targets ``P_l`` and ``A_l`` are computed once, before the loop. L-BFGS runs one function evaluation
per step (no line search, lr 1, as the PyTorch tutorial), so ``steps`` counts forward/backward passes. The
image is not clamped during L-BFGS (that would corrupt its curvature history); Adam clamps after every step.

Beyond the paper: the style image is resized to the content's size (a VGG layer's statistics depend on
scale); ``scales=[128, 256]`` runs coarse-to-fine; ``preserve_color`` keeps the photo's colours
(Gatys et al. 2016b); a non-finite loss stops the run and returns the last finite image.

>>> result = stylize("photo.jpg", "starry_night.jpg", size=256, steps=300)   # doctest: +SKIP
>>> result.image.shape, result.weights_used                                   # doctest: +SKIP
(torch.Size([3, 256, 341]), 'imagenet')
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core.checks import InputError, check_choice, check_int
from ..core.device import get_device
from .features import VGGFeatures, features_for, layer_names, min_input_side
from .inputs import as_rgb, fit_longer_side, gray, resize
from .losses import (content_loss, luminance_only, match_color_statistics, match_luminance, style_loss, style_targets,
                     total_variation)

__all__ = ["stylize", "reconstruct", "StylizeResult", "as_rgb", "optimise_pixels", "CONTENT_LAYERS", "STYLE_LAYERS"]

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYERS = ("conv4_2",)


def optimise_pixels(x0: torch.Tensor, loss_fn: Callable, steps: int, *, optimizer: str = "lbfgs",
                    lr: float | None = None, on_step: Callable | None = None):
    """Minimise ``loss_fn(x) -> (loss, {term: value})`` over the pixels of ``x``, starting at ``x0``; call
    ``on_step(terms as floats, x)`` after every step. Returns ``(x, None)``, or the last image with a finite
    loss and why the run stopped."""
    # contiguous: L-BFGS flattens the gradient with view(), which a channels-last layout refuses
    x = x0.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([x], lr=1.0 if lr is None else lr, max_iter=1, history_size=50,
                                tolerance_grad=0.0, tolerance_change=0.0)
    else:
        opt = torch.optim.Adam([x], lr=0.02 if lr is None else lr)
    terms = {}

    def closure():
        opt.zero_grad(set_to_none=True)
        loss, parts = loss_fn(x)
        terms.update({k: v.item() for k, v in parts.items()})
        if all(map(math.isfinite, terms.values())):
            loss.backward()
        else:
            x.grad = torch.zeros_like(x)  # keep the optimiser from spreading NaN; we stop below
        return loss

    last_good = x.detach().clone()
    for _ in range(steps):
        before = x.detach().clone()
        opt.step(closure)
        if not all(map(math.isfinite, terms.values())):
            with torch.no_grad():
                x.copy_(last_good)
            shown = ", ".join(f"{k} {v:.3g}" for k, v in terms.items())
            return x.detach(), (f"the loss became non-finite ({shown}); returning the last image with a finite "
                                "loss. Try a smaller style_weight or lr, or optimizer='adam'.")
        last_good = before  # the image at which this finite loss was measured
        if optimizer == "adam":
            with torch.no_grad():
                x.clamp_(0, 1)
        if on_step is not None:
            on_step(terms, x)
    if not torch.isfinite(x).all():
        with torch.no_grad():
            x.copy_(last_good)
        return x.detach(), "the image became non-finite; returning the last finite one"
    return x.detach(), None


@dataclass
class StylizeResult:
    """What :func:`stylize` and :func:`reconstruct` return.

    ``history``: lists ``step``, ``size`` (the scale), ``content``, ``style``, ``tv`` (each weighted) and
    ``total``, one entry per step. ``style_loss_start`` / ``_end``: the *unweighted* style loss of the initial
    image and of the returned, clamped one. ``snapshots``: ``(step, image (3, H, W))`` pairs. ``stopped``: None
    or why the run stopped early.
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


def stylize(content, style, *, size: int = 256, steps: int = 300, optimizer: str = "lbfgs", init: str = "content",
            content_layers: Sequence[str] = CONTENT_LAYERS, style_layers: Sequence[str] = STYLE_LAYERS,
            content_weight: float = 1.0, style_weight: float = 1e6, tv_weight: float = 0.0, style_blend_weights=None,
            style_layer_weights=None, preserve_color: str | None = None, scales=None, snapshot_every: int | None = None,
            seed: int = 0, progress: bool = True, features: VGGFeatures | None = None, weights: str = "auto",
            lr: float | None = None, device=None) -> StylizeResult:
    """Stylise ``content`` with ``style`` by optimising the image (Gatys et al. 2016).

    Args:
        content: path / PIL / array / tensor ``(C, H, W)`` (gray, RGB, RGBA accepted).
        style: one style image or a list of them (blended with ``style_blend_weights``).
        size: longer side of the output (content aspect ratio kept); ignored if ``scales``, a coarse-to-fine
            list of sizes, e.g. ``[128, 256]``, is given.
        steps: optimiser steps (function evaluations) per scale.
        optimizer: ``"lbfgs"`` (the papers) or ``"adam"`` (lr 0.02 by default).
        init: ``"content"`` (tutorial) or ``"noise"`` (Gatys et al.; seeded).
        content_weight, style_weight, tv_weight: α, β, γ of the loss; ``style_layer_weights``: ``w_l``.
        preserve_color: None, ``"luminance"`` or ``"histogram"`` (Gatys et al. 2016b).
        snapshot_every: keep the image every this many steps (for an animation).
        seed: seeds the noise init and torch (runs repeat exactly on the CPU).
        progress: show a ``tqdm`` bar with the loss terms, and print notes.
        features: a :class:`VGGFeatures` to reuse (with all the layers); default: one with ``weights``.
    """
    check_choice(optimizer, ("lbfgs", "adam"), "stylize: optimizer")
    check_choice(init, ("content", "noise"), "stylize: init")
    check_choice(preserve_color, (None, "luminance", "histogram"), "stylize: preserve_color")
    steps = check_int(steps, "stylize: steps", minimum=1)
    content_layers, style_layers = tuple(content_layers), tuple(style_layers)
    scales = [int(size)] if scales is None else [int(s) for s in scales]
    if not scales or min(scales) < 8:
        raise InputError(f"stylize: sizes must be >= 8 pixels, got {scales}")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    device = get_device(device) if features is None else next(features.buffers()).device
    content = as_rgb(content, "content").to(device)  # the images first: a bad file fails before VGG is built
    styles = [as_rgb(s, f"style[{i}]").to(device) for i, s in enumerate(style if isinstance(style, (list, tuple))
                                                                         else [style])]
    features = features_for(features, content_layers + style_layers, weights, seed, "stylize").to(device)
    names, min_side = layer_names(features.arch), min_input_side(content_layers + style_layers, features.arch)
    deepest = names[max(names.index(n) for n in content_layers + style_layers)]
    for name, img in (("content", content), *((f"style[{i}]", s) for i, s in enumerate(styles))):
        if min(img.shape[-2:]) < min_side:  # blown up from a few pixels, an image holds nothing to match
            raise InputError(f"stylize: the {name} image is {img.shape[-1]}x{img.shape[-2]} pixels; each side needs "
                             f">= {min_side} pixels (VGG pools {min_side.bit_length() - 1} time(s) before {deepest})")
    original_content, notes = content, []
    if preserve_color == "histogram":
        styles = [match_color_statistics(s, content) for s in styles]
        notes.append("preserve_color='histogram': style images recoloured to the content's colour mean/covariance")
    elif preserve_color == "luminance":
        content, styles = gray(content), [match_luminance(s, content) for s in styles]
        notes.append("preserve_color='luminance': transfer on luminance, content's chroma put back")

    history = {k: [] for k in ("step", "size", "content", "style", "tv", "total")}
    snapshots, stopped, x, style_start = [], None, None, None
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with tqdm(total=steps * len(scales), desc="stylize", disable=not progress, leave=True) as bar:
        for size_i in scales:
            hw = fit_longer_side(*content.shape[-2:], size_i)
            if min(hw) < min_side:
                raise InputError(f"stylize: image size {hw[0]}x{hw[1]} (size {size_i}) is too small for layer(s) "
                                 f"down to {deepest}: each side needs >= {min_side} pixels; use a larger size "
                                 "or shallower layers")
            c_img = resize(content, hw)
            for i, s in enumerate(styles):
                old = tuple(s.shape[-2:])
                if old != hw and abs(old[0] / old[1] - hw[0] / hw[1]) > 0.01 and size_i == scales[-1]:
                    notes.append(f"style[{i}] resized from {old[0]}x{old[1]} to the content size {hw[0]}x{hw[1]} "
                                 "(aspect ratio changed)")
            with torch.no_grad():  # the targets P_l and A_l, once
                c_targets = {n: f for n, f in features(c_img[None]).items() if n in content_layers}
                s_grams = style_targets([{n: f for n, f in features(resize(s, hw)[None]).items() if n in style_layers}
                                         for s in styles], style_blend_weights)

            def loss_fn(x):
                feats = features(x)
                parts = {"content": content_weight * content_loss({n: feats[n] for n in content_layers}, c_targets),
                         "style": style_weight * style_loss({n: feats[n] for n in style_layers}, s_grams,
                                                            style_layer_weights),
                         "tv": tv_weight * total_variation(x) if tv_weight else torch.zeros((), device=x.device)}
                return sum(parts.values()), parts

            def on_step(terms, x):
                nonlocal style_start
                if style_start is None:
                    style_start = terms["style"] / style_weight if style_weight else float("nan")
                for k, v in zip(history, (len(history["step"]), size_i, terms["content"], terms["style"], terms["tv"],
                                          sum(terms.values()))):
                    history[k].append(v)
                if snapshot_every and len(history["step"]) % snapshot_every == 0:
                    snapshots.append((len(history["step"]), x.detach()[0].clamp(0, 1).clone()))
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in terms.items()}, refresh=False)

            if x is None:
                x0 = c_img[None].clone() if init == "content" else torch.rand((1, 3) + hw, generator=gen).to(device)
            else:
                x0 = F.interpolate(x, size=hw, mode="bilinear", align_corners=False).clamp(0, 1)
            x, stopped = optimise_pixels(x0, loss_fn, steps, optimizer=optimizer, lr=lr, on_step=on_step)
            if stopped:
                stopped = f"stopped at step {len(history['step'])}: {stopped}"
                break
    x = x.clamp(0, 1)
    with torch.no_grad():
        feats = features(x)
        style_end = style_loss({n: feats[n] for n in style_layers}, s_grams, style_layer_weights).item()
    image = x[0]
    if preserve_color == "luminance":
        image = luminance_only(image, resize(original_content, image.shape[-2:]))
    if progress:
        for line in notes + ([stopped] if stopped else []):
            print(f"stylize: {line}")
    return StylizeResult(image=image.cpu(), history=history, snapshots=snapshots, weights_used=features.weights_used,
                         style_loss_start=float(style_end if style_start is None else style_start),
                         style_loss_end=float(style_end), stopped=stopped, notes=notes,
                         seconds=time.perf_counter() - t0)


def reconstruct(image, layers: Sequence[str], *, kind: str = "content", size: int = 128, steps: int = 100,
                features: VGGFeatures | None = None, weights: str = "auto", seed: int = 0,
                progress: bool = False) -> StylizeResult:
    """What do the features of a few layers keep of an image? (Gatys et al. 2016, Fig. 1)

    From white noise, L-BFGS on the pixels until the image's features match those of ``image`` at
    ``layers``: with ``kind="content"`` the feature maps (content loss), with ``kind="style"`` only their
    Gram matrices (style loss). Shallow content layers give back nearly the photo, deep ones the layout;
    style reconstructions keep colours and textures and lose the arrangement. Returns a
    :class:`StylizeResult` (``style_loss_start/end``: the matched loss before and after).
    """
    check_choice(kind, ("content", "style"), "reconstruct: kind")
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    if not layers:
        raise InputError("reconstruct: layers must name at least one VGG layer")
    steps = check_int(steps, "reconstruct: steps", minimum=1)
    t0 = time.perf_counter()
    features = features_for(features, layers, weights, seed, "reconstruct")
    device = next(features.buffers()).device
    image = as_rgb(image, "image")
    target_img = resize(image.to(device), fit_longer_side(*image.shape[-2:], size))
    with torch.no_grad():
        f_target = {n: f for n, f in features(target_img[None]).items() if n in layers}
        target = f_target if kind == "content" else style_targets([f_target])

    def loss_of(x):
        feats = {n: f for n, f in features(x).items() if n in layers}
        return content_loss(feats, target) if kind == "content" else style_loss(feats, target)

    x0 = torch.rand((1,) + tuple(target_img.shape), generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():  # the losses' scales differ by orders of magnitude; L-BFGS (lr 1, no line search)
        # works well when the loss starts near 100 (as stylize's weighted style loss does)
        scale = 100.0 / max(loss_of(x0).item(), 1e-30)
    history = {"step": [], "total": []}

    def loss_fn(x):
        loss = loss_of(x)
        return loss * scale, {"total": loss}

    def on_step(terms, x):
        history["step"].append(len(history["step"]))
        history["total"].append(terms["total"])
        bar.update(1)

    with tqdm(total=steps, desc=f"reconstruct {kind}", disable=not progress) as bar:
        x, stopped = optimise_pixels(x0, loss_fn, steps, on_step=on_step)
    x = x.clamp(0, 1)
    with torch.no_grad():
        end = loss_of(x).item()
    return StylizeResult(image=x[0].cpu(), history=history, snapshots=[], weights_used=features.weights_used,
                         style_loss_start=float(history["total"][0] if history["total"] else end),
                         style_loss_end=float(end), stopped=stopped,
                         notes=[f"{kind} reconstruction from {', '.join(layers)}"], seconds=time.perf_counter() - t0)
