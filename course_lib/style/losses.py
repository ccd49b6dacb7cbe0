"""Losses of neural style transfer, and colour preservation (each a function, most with a thin Module).

With ``F_l`` the features of the image being optimised at layer ``l`` (``C_l`` channels, ``H_l × W_l``),
``P_l`` those of the content image and ``A_l`` the Gram matrices of the style image:

    G(F)[n, i, j] = Σ_{h,w} F[n, i, h, w] F[n, j, h, w] / (C H W)            gram_matrix
    L_content     = Σ_l w_l · mean((F_l − P_l)²)                              content_loss
    L_style       = Σ_l w_l · mean((G(F_l) − A_l)²)                           style_loss
    TV(x)         = mean((x[i+1, j] − x[i, j])²) + mean((x[i, j+1] − x[i, j])²)   total_variation

Means instead of the papers' sums, so the weights do not depend on the image size.

References: Gatys, Ecker & Bethge, "Image style transfer using convolutional neural networks", CVPR 2016
(eqs. 1-5); Johnson, Alahi & Fei-Fei, "Perceptual losses for real-time style transfer and super-resolution",
ECCV 2016 (sec. 3); Gatys et al., "Preserving color in neural artistic style transfer", arXiv 1606.05897.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import InputError, check_same_shape, check_tensor
from ..core.images import rgb_to_ycbcr, ycbcr_to_rgb
from .inputs import gray

__all__ = ["gram_matrix", "GramMatrix", "content_loss", "ContentLoss", "style_targets", "style_loss", "StyleLoss",
           "total_variation", "TotalVariation", "match_color_statistics", "match_luminance", "luminance_only"]


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``(N, C, C)`` of features ``(N, C, H, W)``, normalised by ``C H W``.

    >>> gram_matrix(torch.ones(1, 2, 3, 3))
    tensor([[[0.5000, 0.5000],
             [0.5000, 0.5000]]])
    """
    check_tensor(f, "gram_matrix: f", dims=4, shape_hint="(N, C, H, W)")
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


class GramMatrix(nn.Module):
    """Module wrapper of :func:`gram_matrix`."""

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return gram_matrix(f)


def content_loss(features, targets, layer_weights=None) -> torch.Tensor:
    """``Σ_l w_l · mean((F_l − P_l)²)`` over the layers of ``targets``.

    ``features`` (the image being optimised): a tensor ``(N, C, H, W)`` or a dict ``layer -> tensor``;
    ``targets``: the same for the content image; ``layer_weights``: ``None`` (all 1), a sequence in the
    order of ``targets``, or a dict.
    """
    total = 0.0
    for name, w, f, target in _layers(features, targets, layer_weights, "content_loss"):
        if f.shape[1:] != target.shape[1:]:
            raise InputError(f"content_loss: layer {name!r} features {tuple(f.shape)} and target "
                             f"{tuple(target.shape)} differ; resize the content image to the output size")
        total = total + w * F.mse_loss(f, target.expand_as(f))
    return total


class ContentLoss(nn.Module):
    """:func:`content_loss` against fixed target features (computed once, as in Gatys et al.)."""

    def __init__(self, targets, layer_weights=None):
        super().__init__()
        self.targets, self.layer_weights = targets, layer_weights

    def forward(self, features) -> torch.Tensor:
        return content_loss(features, self.targets, self.layer_weights)


def style_targets(style_features, blend_weights=None) -> dict:
    """Target Gram matrices ``layer -> (1, C, C)`` of one or several style images.

    ``style_features`` is one dict ``layer -> features`` or a list of them (one per style image). Several
    styles are blended with ``blend_weights`` (normalised to sum 1; default equal): when the ``b_s`` sum to 1,
    ``Σ_s b_s ‖G − A_s‖² = ‖G − Σ_s b_s A_s‖² + const``, so matching the blended Gram has the same gradient
    as the weighted sum of per-style losses.
    """
    style_features = [style_features] if isinstance(style_features, Mapping) else list(style_features)
    if not style_features:
        raise InputError("style_targets: give at least one style image's features")
    blend = [1.0] * len(style_features) if blend_weights is None else [float(b) for b in blend_weights]
    if len(blend) != len(style_features):
        raise InputError(f"style_targets: {len(blend)} blend weights for {len(style_features)} style images")
    if any(b < 0 for b in blend) or sum(blend) <= 0:
        raise InputError(f"style_targets: blend weights must be >= 0 with a positive sum, got {blend}")
    return {name: sum((b / sum(blend)) * gram_matrix(feats[name]).mean(0, keepdim=True)
                      for b, feats in zip(blend, style_features))
            for name in style_features[0]}


def style_loss(features, target_grams, layer_weights=None) -> torch.Tensor:
    """``Σ_l w_l · mean((G(F_l) − A_l)²)`` with ``G`` = :func:`gram_matrix`.

    ``features`` as in :func:`content_loss`; ``target_grams``: ``(1 or N, C, C)`` or a dict
    ``layer -> (1 or N, C, C)`` (from :func:`style_targets`); ``layer_weights``: ``None`` (all 1, as Gatys et al.).
    """
    total = 0.0
    for name, w, f, target in _layers(features, target_grams, layer_weights, "style_loss"):
        g = gram_matrix(f)
        if target.dim() != 3 or target.shape[1:] != g.shape[1:]:
            raise InputError(f"style_loss: layer {name!r} Gram {tuple(g.shape)} and target "
                             f"{tuple(target.shape)} differ (targets must be Gram matrices (N, C, C))")
        total = total + w * F.mse_loss(g, target.expand_as(g))
    return total


class StyleLoss(nn.Module):
    """:func:`style_loss` against fixed target Gram matrices (from :func:`style_targets`)."""

    def __init__(self, target_grams, layer_weights=None):
        super().__init__()
        self.target_grams, self.layer_weights = target_grams, layer_weights

    def forward(self, features) -> torch.Tensor:
        return style_loss(features, self.target_grams, self.layer_weights)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """``mean((x[..., 1:, :] − x[..., :-1, :])²) + mean((x[..., :, 1:] − x[..., :, :-1])²)``.

    Squared, anisotropic; ``x`` is ``(C, H, W)`` or ``(N, C, H, W)`` with ``H, W >= 2``.
    """
    check_tensor(x, "total_variation: x", dims=(3, 4), shape_hint="(C, H, W) or (N, C, H, W)")
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise InputError(f"total_variation needs H, W >= 2, got shape {tuple(x.shape)}")
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    return dh.pow(2).mean() + dw.pow(2).mean()


class TotalVariation(nn.Module):
    """Module wrapper of :func:`total_variation`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return total_variation(x)


def match_color_statistics(style: torch.Tensor, content: torch.Tensor, eps: float = 1e-5,
                           clamp: bool = True) -> torch.Tensor:
    """Recolour ``style`` ``(3, H, W)`` so that its RGB mean and covariance equal ``content``'s.

    Gatys et al. 2016b, sec. 2.2: ``x' = A (x − μ_s) + μ_c`` with ``A = Σ_c^{1/2} Σ_s^{-1/2}``
    (symmetric square roots, so ``A Σ_s Aᵀ = Σ_c``). ``eps`` floors the eigenvalues (flat images);
    ``clamp`` clips the result to [0, 1] (which slightly perturbs the match).
    """
    for name, img in (("style", style), ("content", content)):
        check_tensor(img, f"match_color_statistics: {name}", dims=3, channels=3, shape_hint="(3, H, W)")
    s, c = style.reshape(3, -1).double(), content.reshape(3, -1).double()

    def power(cov, p):  # symmetric matrix power through the eigendecomposition
        evals, evecs = torch.linalg.eigh(cov)
        return evecs @ torch.diag(evals.clamp_min(eps) ** p) @ evecs.T

    a = power(torch.cov(c, correction=0), 0.5) @ power(torch.cov(s, correction=0), -0.5)
    out = (a @ (s - s.mean(1, keepdim=True)) + c.mean(1, keepdim=True)).reshape(style.shape).to(style.dtype)
    return out.clamp(0, 1) if clamp else out


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style's luminance as a gray RGB image with the content's luminance mean and std, for luminance-only
    transfer (Gatys et al. 2016b, sec. 2.1, eq. 2): ``L_s' = σ_c / σ_s · (L_s − μ_s) + μ_c``."""
    ys, yc = gray(style)[0], gray(content)[0]
    ys = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return ys.clamp(0, 1).expand(3, -1, -1).clone()


def luminance_only(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylised image's luminance Y with the content's chroma Cb, Cr (Gatys et al. 2016b, sec. 2.1).

    Both ``(3, H, W)`` or ``(N, 3, H, W)`` of the same size (BT.601 YCbCr); the result is clipped to [0, 1].
    """
    check_tensor(stylized, "luminance_only: stylized", dims=(3, 4), channels=3)
    check_same_shape(stylized, content, "luminance_only: stylized and content")
    ys, yc = rgb_to_ycbcr(stylized), rgb_to_ycbcr(content)
    return ycbcr_to_rgb(torch.cat([ys[..., :1, :, :], yc[..., 1:, :, :]], dim=-3)).clamp(0, 1)


def _layers(features, targets, layer_weights, who: str):
    """``(name, w_l, F_l, target_l)`` for each layer of ``targets``; a tensor is one unnamed layer."""
    feats, targs = ({"": x} if isinstance(x, torch.Tensor) else x for x in (features, targets))
    if not isinstance(feats, Mapping) or not isinstance(targs, Mapping):
        raise InputError(f"{who}: features and targets must be tensors or dicts name -> tensor, "
                         f"got {type(features).__name__} and {type(targets).__name__}")
    names = list(targs)
    if layer_weights is None:
        layer_weights = [1.0] * len(names)
    elif isinstance(layer_weights, Mapping):
        missing = [n for n in names if n not in layer_weights]
        if missing:
            raise InputError(f"{who}: layer_weights has no entry for layer(s) {missing}")
        layer_weights = [layer_weights[n] for n in names]
    layer_weights = list(layer_weights)
    if len(layer_weights) != len(names):
        raise InputError(f"{who}: layer_weights has {len(layer_weights)} entries for {len(names)} layers {names}")
    for name, w in zip(names, layer_weights):
        if name not in feats:
            raise InputError(f"{who}: no features for layer {name!r}; got {list(feats)}")
        yield name, float(w), feats[name], targs[name]
