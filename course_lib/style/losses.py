"""Losses of neural style transfer and colour preservation.

* :func:`gram_matrix`     ``G = F Fᵀ / (C H W)`` per image (PyTorch tutorial normalisation)
* :func:`content_loss`    mean squared error between feature maps, summed over layers
* :func:`style_targets`   the (blended) Gram matrices of one or several style images
* :func:`style_loss`      mean squared error between Gram matrices, weighted per layer
* :func:`total_variation` mean squared difference of neighbouring pixels
* :func:`match_color_statistics` colour preservation by matching mean and covariance
* :func:`luminance_only`  keep the content's chroma, take the stylised luminance

References: Gatys, Ecker & Bethge, "Image style transfer using convolutional
neural networks", CVPR 2016; Gatys, Bethge, Hertzmann & Shechtman,
"Preserving color in neural artistic style transfer", arXiv 1606.05897 (2016).
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from ..core.images import check_image_tensor, rgb_to_ycbcr, ycbcr_to_rgb

__all__ = ["gram_matrix", "content_loss", "style_targets", "style_loss", "total_variation",
           "match_color_statistics", "luminance_only", "GramMatrix"]


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """Gram matrix of feature maps, normalised by the number of elements.

    ``G[n, i, j] = sum_{h,w} F[n, i, h, w] F[n, j, h, w] / (C H W)``

    Args:
        f: features ``(N, C, H, W)``.
    Returns:
        ``(N, C, C)``, symmetric positive semi-definite.

    >>> gram_matrix(torch.ones(1, 2, 3, 3))
    tensor([[[0.5000, 0.5000],
             [0.5000, 0.5000]]])
    """
    if not isinstance(f, torch.Tensor) or f.dim() != 4:
        raise ValueError(f"gram_matrix expects features of shape (N, C, H, W), got "
                         f"{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}")
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


class GramMatrix(torch.nn.Module):
    """Module wrapper of :func:`gram_matrix`."""

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return gram_matrix(f)


def _as_dict(x, what: str) -> dict:
    if isinstance(x, torch.Tensor):
        return {"": x}
    if isinstance(x, Mapping):
        return dict(x)
    raise TypeError(f"{what} must be a tensor or a dict name -> tensor, got {type(x).__name__}")


def _layer_weights(names, layer_weights) -> dict:
    if layer_weights is None:
        return {n: 1.0 for n in names}
    if isinstance(layer_weights, Mapping):
        missing = [n for n in names if n not in layer_weights]
        if missing:
            raise ValueError(f"layer_weights has no entry for layer(s) {missing}")
        return {n: float(layer_weights[n]) for n in names}
    layer_weights = list(layer_weights)
    if len(layer_weights) != len(names):
        raise ValueError(f"layer_weights has {len(layer_weights)} entries for {len(names)} layers {list(names)}")
    return dict(zip(names, map(float, layer_weights)))


def content_loss(features, targets, layer_weights=None) -> torch.Tensor:
    """``sum_l w_l * mean((F_l - P_l)^2)`` over the layers of ``targets``.

    Args:
        features: a tensor ``(N, C, H, W)`` or a dict ``layer -> tensor`` (the image being optimised).
        targets: the same structure for the content image (shapes must match).
        layer_weights: ``None`` (all 1), a sequence in the order of ``targets``, or a dict.
    """
    feats, targs = _as_dict(features, "features"), _as_dict(targets, "targets")
    weights = _layer_weights(list(targs), layer_weights)
    total = None
    for name, target in targs.items():
        if name not in feats:
            raise ValueError(f"content_loss: no features for layer {name!r}; got {list(feats)}")
        f = feats[name]
        if f.shape[1:] != target.shape[1:]:
            raise ValueError(f"content_loss: layer {name!r} features {tuple(f.shape)} and target "
                             f"{tuple(target.shape)} differ; resize the content image to the output size")
        term = weights[name] * F.mse_loss(f, target.expand_as(f))
        total = term if total is None else total + term
    return total


def style_targets(style_features, blend_weights=None) -> dict:
    """Target Gram matrices ``layer -> (1, C, C)`` of one or several style images.

    ``style_features`` is one dict ``layer -> features`` or a list of them
    (one per style image). Several styles are blended with ``blend_weights``
    (normalised to sum 1; default equal): since
    ``sum_s b_s ||G - A_s||² = ||G - sum_s b_s A_s||² + const`` when the
    ``b_s`` sum to 1, matching the blended Gram has the same gradient as the
    weighted sum of per-style losses.
    """
    if isinstance(style_features, Mapping):
        style_features = [style_features]
    style_features = list(style_features)
    if not style_features:
        raise ValueError("style_targets: give at least one style image's features")
    if blend_weights is None:
        blend_weights = [1.0] * len(style_features)
    blend_weights = [float(b) for b in blend_weights]
    if len(blend_weights) != len(style_features):
        raise ValueError(f"style_targets: {len(blend_weights)} blend weights for {len(style_features)} style images")
    if any(b < 0 for b in blend_weights) or sum(blend_weights) <= 0:
        raise ValueError(f"style_targets: blend weights must be >= 0 with a positive sum, got {blend_weights}")
    s = sum(blend_weights)
    out = {}
    for name in style_features[0]:
        out[name] = sum((b / s) * gram_matrix(feats[name]).mean(0, keepdim=True)
                        for b, feats in zip(blend_weights, style_features))
    return out


def style_loss(features, target_grams, layer_weights=None) -> torch.Tensor:
    """``sum_l w_l * mean((G(F_l) - A_l)^2)`` with ``G`` = :func:`gram_matrix`.

    Args:
        features: a tensor ``(N, C, H, W)`` or dict ``layer -> tensor``.
        target_grams: ``(1 or N, C, C)`` or dict ``layer -> (1 or N, C, C)``
            (from :func:`style_targets`, computed once before optimising).
        layer_weights: ``None`` (all 1, as Gatys et al.), a sequence or a dict.
    """
    feats, targs = _as_dict(features, "features"), _as_dict(target_grams, "target_grams")
    weights = _layer_weights(list(targs), layer_weights)
    total = None
    for name, target in targs.items():
        if name not in feats:
            raise ValueError(f"style_loss: no features for layer {name!r}; got {list(feats)}")
        g = gram_matrix(feats[name])
        if target.dim() != 3 or target.shape[1:] != g.shape[1:]:
            raise ValueError(f"style_loss: layer {name!r} Gram {tuple(g.shape)} and target "
                             f"{tuple(target.shape)} differ (targets must be Gram matrices (N, C, C))")
        term = weights[name] * F.mse_loss(g, target.expand_as(g))
        total = term if total is None else total + term
    return total


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Total-variation regulariser (squared, anisotropic), averaged over the pixels.

    ``TV(x) = mean((x[..., 1:, :] - x[..., :-1, :])²) + mean((x[..., :, 1:] - x[..., :, :-1])²)``

    Args:
        x: image ``(C, H, W)`` or ``(N, C, H, W)`` with H, W >= 2.
    """
    check_image_tensor(x, "x")
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ValueError(f"total_variation needs H, W >= 2, got shape {tuple(x.shape)}")
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    return dh.pow(2).mean() + dw.pow(2).mean()


def _sym_matrix_power(c: torch.Tensor, p: float, eps: float) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(c)
    return evecs @ torch.diag(evals.clamp_min(eps) ** p) @ evecs.T


def match_color_statistics(style: torch.Tensor, content: torch.Tensor, eps: float = 1e-5,
                           clamp: bool = True) -> torch.Tensor:
    """Recolour ``style`` so that its RGB mean and covariance equal ``content``'s.

    Gatys et al. 2016b (arXiv 1606.05897), Sec. 2.2 "colour histogram matching":
    ``x' = A (x - mu_s) + mu_c`` with ``A = Sigma_c^{1/2} Sigma_s^{-1/2}``
    (symmetric matrix square roots; ``A Sigma_s Aᵀ = Sigma_c``). Style transfer
    with the recoloured style image then keeps the content's colours.

    Args:
        style, content: RGB images ``(3, H, W)`` (sizes may differ).
        eps: floor on the eigenvalues of the covariances (flat images).
        clamp: clip the result to [0, 1] (which slightly perturbs the match).
    Returns:
        the recoloured style image ``(3, H_s, W_s)``.
    """
    check_image_tensor(style, "style", channels=3, batched=False)
    check_image_tensor(content, "content", channels=3, batched=False)
    s = style.reshape(3, -1).double()
    c = content.reshape(3, -1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    cov_s = torch.cov(s, correction=0)
    cov_c = torch.cov(c, correction=0)
    a = _sym_matrix_power(cov_c, 0.5, eps) @ _sym_matrix_power(cov_s, -0.5, eps)
    out = (a @ (s - mu_s) + mu_c).reshape(style.shape).to(style.dtype)
    return out.clamp(0, 1) if clamp else out


def luminance_only(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer (Gatys et al. 2016b, Sec. 2.1): the stylised image's Y, the content's Cb, Cr.

    Both ``(3, H, W)`` or ``(N, 3, H, W)`` of the same size (BT.601 YCbCr as
    :func:`course_lib.core.images.rgb_to_ycbcr`). Result clipped to [0, 1].
    """
    check_image_tensor(stylized, "stylized", channels=3)
    check_image_tensor(content, "content", channels=3)
    if stylized.shape != content.shape:
        raise ValueError(f"luminance_only: stylized {tuple(stylized.shape)} and content "
                         f"{tuple(content.shape)} must have the same shape")
    ys = rgb_to_ycbcr(stylized)
    yc = rgb_to_ycbcr(content)
    mixed = torch.cat([ys[..., :1, :, :], yc[..., 1:, :, :]], dim=-3)
    return ycbcr_to_rgb(mixed).clamp(0, 1)
