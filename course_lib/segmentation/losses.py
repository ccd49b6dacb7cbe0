"""Losses for binary segmentation (person vs background), each a few lines under its formula.

* :func:`bce_loss`          the lecture's per-pixel negative log-likelihood (binary cross-entropy)
* :func:`soft_jaccard`      ``J(p, p̂) = <p, p̂> / (|p|₁ + |p̂|₁ - <p, p̂>)`` on probabilities
* :func:`soft_jaccard_loss` ``1 - J``
* :func:`combined_loss`     ``(1 - w) BCE + w (1 - J)``
* :func:`dice_loss`         ``1 - 2<p, p̂> / (|p|₁ + |p̂|₁)``
* :func:`focal_loss`        Lin et al. 2017, ``-α_t (1 - p_t)^γ log p_t``
* :func:`lovasz_hinge_loss` Berman et al. 2018, the Lovász extension of the Jaccard loss on hinge errors
                            (in :mod:`.lovasz`, imported here)

Each has a thin ``nn.Module`` (:class:`BCELoss`, :class:`SoftJaccardLoss`, :class:`CombinedLoss`,
:class:`DiceLoss`, :class:`FocalLoss`, :class:`LovaszHingeLoss`) for ``core.training.fit``.

Shapes and values. ``pred`` is ``(N, 1, H, W)`` or ``(N, H, W)``: logits (``from_logits=True``,
the default) or probabilities ``p̂`` in [0, 1]; ``target`` is the {0, 1} mask ``p`` (float, bool
or integer) of the same spatial shape. Each public function checks its inputs once
(:func:`~course_lib.segmentation.inputs.binary_pair`: shapes, target values, finite predictions,
the range of probabilities) and then runs the maths; :func:`combined_loss` checks once and calls
the unchecked ``_bce`` and ``_soft_jaccard``. Half-precision predictions are computed in float32.

References: M. Berman, A. Rannen Triki, M. B. Blaschko, "The Lovász-Softmax loss", CVPR 2018;
T.-Y. Lin et al., "Focal loss for dense object detection", ICCV 2017; F. Milletari, N. Navab,
S.-A. Ahmadi, "V-Net", 3DV 2016 (soft Dice).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.checks import check_choice, check_number, check_probability
from .inputs import binary_pair
from .lovasz import LovaszHingeLoss, lovasz_hinge_loss

__all__ = [
    "bce_loss", "soft_jaccard", "soft_jaccard_loss", "combined_loss", "dice_loss", "focal_loss",
    "lovasz_hinge_loss",
    "BCELoss", "SoftJaccardLoss", "CombinedLoss", "DiceLoss", "FocalLoss", "LovaszHingeLoss",
]

_REDUCTIONS = ("mean", "sum", "none")


def bce_loss(pred: torch.Tensor, target: torch.Tensor, *, from_logits: bool = True,
             reduction: str = "mean", eps: float = 1e-7) -> torch.Tensor:
    """Binary cross-entropy, the lecture's per-pixel negative log-likelihood.

    ``NLL(p, p̂) = -1/M Σ_i [p_i log p̂_i + (1 - p_i) log(1 - p̂_i)]`` over the
    ``M = N H W`` pixels of the batch.

    From logits ``x`` (``p̂ = σ(x)``) the logs are ``log σ(x)`` and
    ``log(1 - σ(x)) = log σ(-x)``, computed with ``F.logsigmoid``: exact and
    finite for any finite logit (this is what
    ``F.binary_cross_entropy_with_logits`` computes). From probabilities
    ``p̂`` and ``1 - p̂`` are clamped to ``>= eps`` first, so a confident wrong pixel
    costs at most ``-log(eps)`` (about 16.1 for the default) instead of ``inf``.

    ``reduction``: ``'mean'`` (over all pixels), ``'sum'`` or ``'none'`` (the ``(N, H, W)`` map).

    >>> pred = torch.tensor([[[0.0, 2.0], [-2.0, 0.0]]])
    >>> target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> round(float(bce_loss(pred, target)), 4)
    0.41
    """
    check_choice(reduction, _REDUCTIONS, "bce_loss: reduction")
    check_number(eps, "bce_loss: eps", low=0, high=0.5, low_open=True, high_open=True)
    p_hat, p = binary_pair(pred, target, "bce_loss", from_logits=from_logits)
    return _reduce(_bce(p_hat, p, from_logits, eps), reduction)


def _bce(p_hat: torch.Tensor, p: torch.Tensor, from_logits: bool, eps: float = 1e-7) -> torch.Tensor:
    """The per-pixel NLL ``(N, H, W)`` of checked inputs."""
    if from_logits:
        log_p, log_1mp = F.logsigmoid(p_hat), F.logsigmoid(-p_hat)
    else:
        # clamp p̂ and 1 - p̂ separately: 1 - eps is not representable for small eps in float32
        log_p, log_1mp = torch.log(p_hat.clamp_min(eps)), torch.log((1 - p_hat).clamp_min(eps))
    return -(p * log_p + (1 - p) * log_1mp)


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    return x.mean() if reduction == "mean" else x.sum() if reduction == "sum" else x


def soft_jaccard(pred: torch.Tensor, target: torch.Tensor, *, from_logits: bool = True,
                 per_image: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Soft Jaccard index (the lecture's form) of probabilities ``p̂`` and a {0, 1} mask ``p``.

    ``J(p, p̂) = (<p, p̂> + eps) / (|p|₁ + |p̂|₁ - <p, p̂> + eps)``

    with ``<p, p̂> = Σ_i p_i p̂_i`` and ``|p|₁ = Σ_i p_i`` (all entries are
    >= 0). On a binary ``p̂`` this is exactly intersection over union (the hard
    IoU), up to ``eps``. It is differentiable in ``p̂`` and lies in [0, 1].

    ``per_image=True`` computes ``J`` for each image and averages over the
    batch (the per-image mean IoU that portrait papers report);
    ``per_image=False`` pools all pixels of the batch into one ``J``.

    Empty masks. ``eps`` (a smoothing term, not only a guard) defines the
    cases with nothing to find: if ``p`` and ``p̂`` both sum to ~0, then
    ``J = eps / eps = 1`` (loss 0): predicting nothing where there is
    nothing is right. If ``p`` is empty but ``p̂`` has mass ``s``,
    ``J = eps / (s + eps)``, which is ~0 as soon as ``s >> eps`` (note the
    gradient of ``J`` is then tiny too: on images without a person the
    Jaccard term stops pushing, which is one reason to combine it with BCE).
    A larger ``eps`` (e.g. 1, common in competition code) keeps a gradient
    there at the price of a bias on small objects.

    >>> p_hat = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])   # 2 pixels predicted
    >>> p = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])       # 2 pixels true, 1 shared
    >>> round(float(soft_jaccard(p_hat, p, from_logits=False)), 4)   # 1 / (2 + 2 - 1)
    0.3333
    """
    check_number(eps, "soft_jaccard: eps", low=0, low_open=True)
    p_hat, p = binary_pair(pred, target, "soft_jaccard", from_logits=from_logits)
    return _soft_jaccard(p_hat, p, from_logits, per_image, eps)


def _soft_jaccard(p_hat, p, from_logits: bool, per_image: bool, eps: float) -> torch.Tensor:
    q = torch.sigmoid(p_hat) if from_logits else p_hat
    dims = (1, 2) if per_image else (0, 1, 2)
    inter = (p * q).sum(dims)
    union = p.sum(dims) + q.sum(dims) - inter
    return ((inter + eps) / (union + eps)).mean()


def soft_jaccard_loss(pred: torch.Tensor, target: torch.Tensor, *, from_logits: bool = True,
                      per_image: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Soft Jaccard loss ``1 - J(p, p̂)``; see :func:`soft_jaccard` for ``J``, the options and empty masks.

    >>> target = torch.zeros(2, 1, 4, 4); target[:, :, 1:3, 1:3] = 1
    >>> float(soft_jaccard_loss(100 * (2 * target - 1), target))   # confident and right
    0.0
    """
    return 1 - soft_jaccard(pred, target, from_logits=from_logits, per_image=per_image, eps=eps)


def combined_loss(pred: torch.Tensor, target: torch.Tensor, jaccard_weight: float = 0.5, *,
                  from_logits: bool = True, per_image: bool = True, eps: float = 1e-6,
                  return_parts: bool = False):
    """BCE and soft Jaccard "combined with a weight" ``w`` (a convex combination).

    ``L = (1 - w) · NLL(p, p̂) + w · (1 - J(p, p̂))``

    with ``NLL`` = :func:`bce_loss` (mean over pixels) and ``J`` =
    :func:`soft_jaccard`. ``w = 0`` is plain BCE, ``w = 1`` the pure Jaccard
    loss. Both terms are of order 1 for an untrained network
    (at ``p̂ = 1/2`` BCE is ``log 2 ≈ 0.69`` and ``1 - J`` lies between 0.5
    and 1), so ``w`` reads roughly as the share of the IoU term.

    ``return_parts=True`` also returns ``{'bce': ..., 'jaccard_loss': ...}`` (floats) for the logs.

    >>> pred = torch.tensor([[[0.0, 2.0], [-2.0, 0.0]]]); target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> l = combined_loss(pred, target, 0.5)
    >>> bool(torch.isclose(l, 0.5 * bce_loss(pred, target) + 0.5 * soft_jaccard_loss(pred, target)))
    True
    """
    check_probability(jaccard_weight, "combined_loss: jaccard_weight")
    check_number(eps, "combined_loss: eps", low=0, low_open=True)
    p_hat, p = binary_pair(pred, target, "combined_loss", from_logits=from_logits)  # checked once
    bce = _bce(p_hat, p, from_logits).mean()
    jac = 1 - _soft_jaccard(p_hat, p, from_logits, per_image, eps)
    loss = (1 - jaccard_weight) * bce + jaccard_weight * jac
    if return_parts:
        return loss, {"bce": float(bce.detach()), "jaccard_loss": float(jac.detach())}
    return loss


def dice_loss(pred: torch.Tensor, target: torch.Tensor, *, from_logits: bool = True,
              per_image: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice loss ``1 - D`` with ``D = (2<p, p̂> + eps) / (|p|₁ + |p̂|₁ + eps)``.

    ``D = 2J / (1 + J)`` on binary masks, so Dice and Jaccard rank hard
    predictions alike but weight errors differently. Options and the
    empty-mask convention (both empty: ``D = 1``, loss 0) are those of
    :func:`soft_jaccard`.

    >>> p_hat = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]); p = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    >>> round(float(dice_loss(p_hat, p, from_logits=False)), 4)   # 1 - 2·1 / (2 + 2)
    0.5
    """
    check_number(eps, "dice_loss: eps", low=0, low_open=True)
    p_hat, p = binary_pair(pred, target, "dice_loss", from_logits=from_logits)
    q = torch.sigmoid(p_hat) if from_logits else p_hat
    dims = (1, 2) if per_image else (0, 1, 2)
    inter = (p * q).sum(dims)
    total = p.sum(dims) + q.sum(dims)
    return 1 - ((2 * inter + eps) / (total + eps)).mean()


def focal_loss(pred: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0, alpha: float | None = 0.25,
               from_logits: bool = True, reduction: str = "mean", eps: float = 1e-7) -> torch.Tensor:
    """Focal loss (Lin et al., ICCV 2017, eq. 5): ``FL = -α_t (1 - p_t)^γ log p_t`` per pixel.

    ``p_t = p̂`` where ``p = 1`` and ``1 - p̂`` where ``p = 0``; ``α_t = α``
    on person pixels and ``1 - α`` on background (``alpha=None``: no
    weighting). ``γ = 0, α = None`` is :func:`bce_loss`. The factor
    ``(1 - p_t)^γ`` shrinks the loss of pixels that are already right, so
    the many easy background pixels do not dominate.

    From logits ``x``, with ``s = 2p - 1``: ``log p_t = log σ(s x)`` and
    ``(1 - p_t)^γ = exp(γ log σ(-s x))``, finite with finite gradients for
    any logit and any ``γ >= 0``. From probabilities ``p_t`` is clamped to
    ``[eps, 1 - eps]``.

    The paper normalises the sum by the number of positive anchors; for
    dense segmentation we average over pixels (``reduction='mean'``).

    ``gamma``: the focusing parameter ``γ >= 0`` (paper: 2); ``alpha``: the weight of the person
    class in [0, 1], or ``None`` (paper: 0.25); ``reduction`` as in :func:`bce_loss`.

    >>> pred = torch.tensor([[[0.0, 2.0], [-2.0, 0.0]]]); target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> bool(torch.isclose(focal_loss(pred, target, gamma=0.0, alpha=None), bce_loss(pred, target)))
    True
    """
    check_choice(reduction, _REDUCTIONS, "focal_loss: reduction")
    check_number(eps, "focal_loss: eps", low=0, high=0.5, low_open=True, high_open=True)
    check_number(gamma, "focal_loss: gamma", low=0)
    if alpha is not None:
        check_probability(alpha, "focal_loss: alpha (or None)")
    p_hat, p = binary_pair(pred, target, "focal_loss", from_logits=from_logits)
    if from_logits:
        s = 2 * p - 1
        log_pt = F.logsigmoid(s * p_hat)
        modulator = torch.exp(gamma * F.logsigmoid(-s * p_hat))
    else:
        pt = torch.where(p > 0.5, p_hat, 1 - p_hat).clamp(eps, 1 - eps)
        log_pt = torch.log(pt)
        modulator = (1 - pt) ** gamma
    loss = -modulator * log_pt
    if alpha is not None:
        loss = (alpha * p + (1 - alpha) * (1 - p)) * loss
    return _reduce(loss, reduction)


# --------------------------------------------------------------------------- modules

class _LossModule(torch.nn.Module):
    """A loss function with its options stored: ``forward(pred, target)`` calls it."""

    def __init__(self, fn, **options):
        super().__init__()
        self.fn, self.options = fn, options

    def forward(self, pred: torch.Tensor, target: torch.Tensor):
        return self.fn(pred, target, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


class BCELoss(_LossModule):
    """:func:`bce_loss` as a module.

    >>> BCELoss()(torch.zeros(2, 1, 3, 3), torch.ones(2, 1, 3, 3))   # log 2
    tensor(0.6931)
    """

    def __init__(self, *, from_logits: bool = True, reduction: str = "mean", eps: float = 1e-7):
        check_choice(reduction, _REDUCTIONS, "BCELoss: reduction")
        super().__init__(bce_loss, from_logits=from_logits, reduction=reduction, eps=eps)


class SoftJaccardLoss(_LossModule):
    """:func:`soft_jaccard_loss` (``1 - J``) as a module."""

    def __init__(self, *, from_logits: bool = True, per_image: bool = True, eps: float = 1e-6):
        check_number(eps, "SoftJaccardLoss: eps", low=0, low_open=True)
        super().__init__(soft_jaccard_loss, from_logits=from_logits, per_image=per_image, eps=eps)


class CombinedLoss(_LossModule):
    """:func:`combined_loss` (``(1 - w) BCE + w (1 - J)``) as a module."""

    def __init__(self, jaccard_weight: float = 0.5, *, from_logits: bool = True, per_image: bool = True,
                 eps: float = 1e-6, return_parts: bool = False):
        check_probability(jaccard_weight, "CombinedLoss: jaccard_weight")
        super().__init__(combined_loss, jaccard_weight=jaccard_weight, from_logits=from_logits,
                         per_image=per_image, eps=eps, return_parts=return_parts)


class DiceLoss(_LossModule):
    """:func:`dice_loss` as a module."""

    def __init__(self, *, from_logits: bool = True, per_image: bool = True, eps: float = 1e-6):
        super().__init__(dice_loss, from_logits=from_logits, per_image=per_image, eps=eps)


class FocalLoss(_LossModule):
    """:func:`focal_loss` as a module."""

    def __init__(self, *, gamma: float = 2.0, alpha: float | None = 0.25, from_logits: bool = True,
                 reduction: str = "mean"):
        check_choice(reduction, _REDUCTIONS, "FocalLoss: reduction")
        super().__init__(focal_loss, gamma=gamma, alpha=alpha, from_logits=from_logits, reduction=reduction)
