"""Losses for binary segmentation (person vs background).

* :func:`bce_loss`          the lecture's per-pixel negative log-likelihood (binary cross-entropy)
* :func:`soft_jaccard`      ``J(p, p̂) = <p, p̂> / (|p|₁ + |p̂|₁ - <p, p̂>)`` on probabilities
* :func:`soft_jaccard_loss` ``1 - J``
* :func:`combined_loss`     ``(1 - w) BCE + w (1 - J)``
* :func:`dice_loss`         ``1 - 2<p, p̂> / (|p|₁ + |p̂|₁)``
* :func:`focal_loss`        Lin et al. 2017, ``-α_t (1 - p_t)^γ log p_t``
* :func:`lovasz_hinge_loss` Berman et al. 2018, the Lovász extension of the Jaccard loss on hinge errors

Each function has a thin ``nn.Module`` wrapper (:class:`BCELoss`,
:class:`SoftJaccardLoss`, :class:`CombinedLoss`, :class:`DiceLoss`,
:class:`FocalLoss`, :class:`LovaszHingeLoss`) that stores the options and
returns a scalar tensor, so it can be handed to ``core.training.fit``.

Shapes and values. ``pred`` is a single-channel map ``(N, 1, H, W)`` or
``(N, H, W)``: logits (``from_logits=True``, the default: the network's raw
output) or probabilities ``p̂`` in [0, 1]. ``target`` is the ground truth
``p`` with values in {0, 1} (float, bool or integer), ``(N, 1, H, W)`` or
``(N, H, W)``; the two must agree once the channel dimension is dropped.
Inputs are checked before anything is computed: shapes, target values,
finite predictions, the range of probabilities; each error names the
argument and what it received. Half-precision predictions (autocast) are
computed in float32.

References:
    M. Berman, A. Rannen Triki, M. B. Blaschko, "The Lovász-Softmax loss: a
    tractable surrogate for the optimization of the intersection-over-union
    measure in neural networks", CVPR 2018.
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár, "Focal loss for dense
    object detection", ICCV 2017.
    F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net", 3DV 2016 (soft Dice).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "bce_loss", "soft_jaccard", "soft_jaccard_loss", "combined_loss", "dice_loss", "focal_loss",
    "lovasz_hinge_loss",
    "BCELoss", "SoftJaccardLoss", "CombinedLoss", "DiceLoss", "FocalLoss", "LovaszHingeLoss",
]

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------- validation

def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _drop_channel(t: torch.Tensor, name: str, fn: str) -> torch.Tensor:
    if t.dim() == 4:
        if t.shape[1] != 1:
            raise ValueError(f"{fn}: {name} must be a single-channel map (N, 1, H, W) or (N, H, W), "
                             f"got shape {tuple(t.shape)} with {t.shape[1]} channels (binary segmentation: "
                             f"one logit per pixel)")
        return t[:, 0]
    if t.dim() == 3:
        return t
    raise ValueError(f"{fn}: {name} must have shape (N, 1, H, W) or (N, H, W), got {tuple(t.shape)}"
                     + (" (add the batch dimension with .unsqueeze(0))" if t.dim() == 2 else ""))


def _check_binary_pair(pred, target, fn: str, *, from_logits: bool, hard_pred_ok: bool = False):
    """Validate a (prediction, binary target) pair; return both as ``(N, H, W)`` in one float dtype.

    ``hard_pred_ok`` lets ``pred`` be a bool/integer mask (metrics); losses need float predictions.
    """
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    p = _drop_channel(pred, "pred", fn)
    t = _drop_channel(target, "target", fn)
    if p.shape != t.shape:
        raise ValueError(f"{fn}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the "
                         f"same (N, H, W) shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    if p.numel() == 0:
        raise ValueError(f"{fn}: pred and target are empty: shape {tuple(p.shape)}")
    if p.is_complex() or t.is_complex():
        raise TypeError(f"{fn}: pred and target must be real, got {p.dtype} and {t.dtype}")
    if not p.is_floating_point():
        if not hard_pred_ok:
            raise TypeError(f"{fn}: pred must be a float tensor of logits or probabilities, got dtype {p.dtype}")
        if from_logits:
            raise TypeError(f"{fn}: from_logits=True needs float logits, got pred of dtype {p.dtype} "
                            f"(a hard mask: use from_logits=False)")
    dtype = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
    t_raw = t
    p = p.to(dtype)
    t = t.to(dtype)

    # one host synchronisation for all value checks
    bad_target = (t != 0) & (t != 1)
    finite = torch.isfinite(p)
    flags = [bad_target.any(), ~finite.all()]
    if not from_logits:
        flags.append(((p < 0) | (p > 1)).any())
    flags = torch.stack(flags).tolist()
    if flags[0]:
        found = torch.unique(t_raw[bad_target]).tolist()  # in target's own dtype
        more = "" if len(found) <= 5 else f" ... ({len(found)} distinct)"
        raise ValueError(f"{fn}: target must contain only 0 (background) and 1 (person), found "
                         f"{found[:5]}{more}" + (" (an 8-bit mask? divide by 255)" if 255 in found else ""))
    if flags[1]:
        n_nan = int(torch.isnan(p).sum())
        n_inf = int(torch.isinf(p).sum())
        raise ValueError(f"{fn}: pred must be finite, found {n_nan} NaN and {n_inf} infinite value(s) "
                         f"in a tensor of shape {tuple(pred.shape)}")
    if not from_logits and flags[2]:
        raise ValueError(f"{fn}: pred must be probabilities in [0, 1] when from_logits=False, got values in "
                         f"[{float(p.min()):.4g}, {float(p.max()):.4g}]; pass from_logits=True for raw "
                         f"network outputs (logits)")
    return p, t


def _check_reduction(reduction, fn):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_eps(eps, fn, upper=None):
    if not isinstance(eps, (int, float)) or not eps > 0 or (upper is not None and not eps < upper):
        rng = f"in (0, {upper})" if upper is not None else "> 0"
        raise ValueError(f"{fn}: eps must be a number {rng}, got {eps!r}")


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


# --------------------------------------------------------------------------- BCE / NLL

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

    Args:
        pred: logits (or probabilities with ``from_logits=False``), ``(N, 1, H, W)`` or ``(N, H, W)``.
        target: {0, 1} mask of the same spatial shape (float, bool or integer).
        from_logits: whether ``pred`` holds logits.
        reduction: ``'mean'`` (over all pixels), ``'sum'`` or ``'none'`` (the ``(N, H, W)`` map).
        eps: clamp for probabilities (ignored for logits).
    Returns:
        a scalar tensor, or ``(N, H, W)`` for ``reduction='none'``.

    >>> pred = torch.tensor([[[0.0, 2.0], [-2.0, 0.0]]])
    >>> target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> round(float(bce_loss(pred, target)), 4)
    0.41
    """
    fn = "bce_loss"
    _check_reduction(reduction, fn)
    _check_eps(eps, fn, upper=0.5)
    p_hat, p = _check_binary_pair(pred, target, fn, from_logits=from_logits)
    if from_logits:
        log_p, log_1mp = F.logsigmoid(p_hat), F.logsigmoid(-p_hat)
    else:
        # clamp p̂ and 1 - p̂ separately: 1 - eps is not representable for small eps in float32
        log_p, log_1mp = torch.log(p_hat.clamp_min(eps)), torch.log((1 - p_hat).clamp_min(eps))
    nll = -(p * log_p + (1 - p) * log_1mp)
    return _reduce(nll, reduction)


# --------------------------------------------------------------------------- Jaccard / Dice

def _probabilities(p_hat: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return torch.sigmoid(p_hat) if from_logits else p_hat


def _sum_dims(per_image: bool):
    return (1, 2) if per_image else (0, 1, 2)


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

    Args:
        pred: logits (or probabilities with ``from_logits=False``), ``(N, 1, H, W)`` or ``(N, H, W)``.
        target: {0, 1} mask of the same spatial shape.
        from_logits: apply ``σ`` to ``pred`` first.
        per_image: mean of per-image ``J`` (True) or one ``J`` over the batch (False).
        eps: smoothing term added to numerator and denominator (> 0).
    Returns:
        a scalar tensor in [0, 1].

    >>> p_hat = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])   # 2 pixels predicted
    >>> p = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])       # 2 pixels true, 1 shared
    >>> round(float(soft_jaccard(p_hat, p, from_logits=False)), 4)   # 1 / (2 + 2 - 1)
    0.3333
    """
    fn = "soft_jaccard"
    _check_eps(eps, fn)
    p_hat, p = _check_binary_pair(pred, target, fn, from_logits=from_logits)
    q = _probabilities(p_hat, from_logits)
    dims = _sum_dims(per_image)
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


def _check_weight(w, fn):
    if not isinstance(w, (int, float)) or not 0 <= w <= 1:
        raise ValueError(f"{fn}: jaccard_weight must be a number in [0, 1], got {w!r}")


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

    Args:
        pred, target, from_logits, per_image, eps: as in :func:`soft_jaccard`.
        jaccard_weight: ``w`` in [0, 1].
        return_parts: also return ``{'bce': ..., 'jaccard_loss': ...}`` (floats), the form
            ``core.training.fit`` logs.

    >>> pred = torch.tensor([[[0.0, 2.0], [-2.0, 0.0]]]); target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> l = combined_loss(pred, target, 0.5)
    >>> bool(torch.isclose(l, 0.5 * bce_loss(pred, target) + 0.5 * soft_jaccard_loss(pred, target)))
    True
    """
    fn = "combined_loss"
    _check_weight(jaccard_weight, fn)
    _check_eps(eps, fn)
    p_hat, p = _check_binary_pair(pred, target, fn, from_logits=from_logits)
    # validated once; the parts get (N, H, W) tensors that pass their checks trivially
    bce = bce_loss(p_hat, p, from_logits=from_logits)
    jac = soft_jaccard_loss(p_hat, p, from_logits=from_logits, per_image=per_image, eps=eps)
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
    fn = "dice_loss"
    _check_eps(eps, fn)
    p_hat, p = _check_binary_pair(pred, target, fn, from_logits=from_logits)
    q = _probabilities(p_hat, from_logits)
    dims = _sum_dims(per_image)
    inter = (p * q).sum(dims)
    total = p.sum(dims) + q.sum(dims)
    return 1 - ((2 * inter + eps) / (total + eps)).mean()


# --------------------------------------------------------------------------- focal

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

    Args:
        pred, target, from_logits: as in :func:`bce_loss`.
        gamma: focusing parameter ``γ >= 0`` (paper: 2).
        alpha: weight of the person class in [0, 1], or ``None`` (paper: 0.25).
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (``(N, H, W)``).

    >>> pred = torch.tensor([[[0.0, 2.0], [-2.0, 0.0]]]); target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> bool(torch.isclose(focal_loss(pred, target, gamma=0.0, alpha=None), bce_loss(pred, target)))
    True
    """
    fn = "focal_loss"
    _check_reduction(reduction, fn)
    _check_eps(eps, fn, upper=0.5)
    if not isinstance(gamma, (int, float)) or not gamma >= 0:
        raise ValueError(f"{fn}: gamma must be a number >= 0, got {gamma!r}")
    if alpha is not None and (not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1):
        raise ValueError(f"{fn}: alpha must be a number in [0, 1] or None, got {alpha!r}")
    p_hat, p = _check_binary_pair(pred, target, fn, from_logits=from_logits)
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


# --------------------------------------------------------------------------- Lovász hinge

def _lovasz_jaccard_weights(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Lovász extension weights of the Jaccard loss for errors sorted in decreasing order.

    Along the last dimension, ``gt_sorted`` holds the {0, 1} labels of the
    pixels in that order. With ``M_i`` = the ``i`` pixels of largest error and
    ``P = {p = 1}`` the set function of Berman et al. (eq. 4, 7)

        ``Δ_J(M) = 1 - |P \\ M| / |P ∪ M|``   (= ``|M| / |P ∪ M|``)

    gives weights ``g_i = Δ_J(M_i) - Δ_J(M_{i-1})`` (``Δ_J(∅) = 0``); the
    extension of ``Δ_J`` at an error vector ``e`` is ``Σ_i e_(i) g_i`` (eq. 8, 9).
    ``|P \\ M_i| = |P| - (positives among the first i)`` and
    ``|P ∪ M_i| = |P| + (negatives among the first i)``; the latter is >= 1 for
    ``i >= 1``, so there is no division by zero even when ``P`` is empty.
    """
    n_pos = gt_sorted.sum(-1, keepdim=True)
    pos_seen = gt_sorted.cumsum(-1)
    neg_seen = (1 - gt_sorted).cumsum(-1)
    delta = 1 - (n_pos - pos_seen) / (n_pos + neg_seen)
    return torch.cat([delta[..., :1], delta[..., 1:] - delta[..., :-1]], dim=-1)


def lovasz_hinge_loss(pred: torch.Tensor, target: torch.Tensor, *, per_image: bool = True) -> torch.Tensor:
    """Binary Lovász hinge loss (Berman et al., CVPR 2018, Sec. 3.1 and eq. 9).

    A convex surrogate of the Jaccard loss ``1 - IoU`` of the person class.
    With logits ``x`` and signs ``s = 2p - 1`` the hinge errors are
    ``e_i = max(0, 1 - s_i x_i)``; sorting them in decreasing order
    ``e_(1) >= e_(2) >= ...``,

        ``loss = Σ_i e_(i) · [Δ_J(M_i) - Δ_J(M_{i-1})]``,

    where ``M_i`` holds the ``i`` pixels of largest error and
    ``Δ_J(M) = |M| / |P ∪ M|`` is the Jaccard loss when exactly the pixels
    ``M`` are wrong (``P``: the person pixels). This is the Lovász extension
    of ``Δ_J`` evaluated at ``e``: where the errors are 0/1 (each pixel
    either right with margin >= 1 or at logit 0) it is the Jaccard loss of
    the wrong pixels; in between it interpolates linearly. The loss is
    piecewise linear in ``x``; the weights depend only on the order of the
    errors (ties may be broken either way: the value does not change).

    Empty masks: with no person pixels, ``Δ_J(M) = 1`` for any non-empty
    ``M``, so the loss is the largest hinge error, 0 once every logit is
    <= -1.

    Args:
        pred: logits ``(N, 1, H, W)`` or ``(N, H, W)`` (the hinge needs real-valued scores, not
            probabilities).
        target: {0, 1} mask of the same spatial shape.
        per_image: loss per image, averaged over the batch (True), or over the pooled batch (False).
    Returns:
        a scalar tensor >= 0.

    >>> target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> float(lovasz_hinge_loss(torch.tensor([[[2.0, 1.0], [-1.0, -3.0]]]), target))   # all margins >= 1
    0.0
    >>> float(lovasz_hinge_loss(torch.tensor([[[2.0, 0.0], [-1.0, -3.0]]]), target))   # one positive at 0: 1 - 1/2
    0.5
    """
    fn = "lovasz_hinge_loss"
    x, p = _check_binary_pair(pred, target, fn, from_logits=True)
    x = x.flatten(1) if per_image else x.reshape(1, -1)
    p = p.flatten(1) if per_image else p.reshape(1, -1)
    errors = 1 - x * (2 * p - 1)
    errors_sorted, order = torch.sort(errors, dim=-1, descending=True)
    weights = _lovasz_jaccard_weights(torch.gather(p, -1, order))  # constant between ties
    per_row = (F.relu(errors_sorted) * weights).sum(-1)
    return per_row.mean()


# --------------------------------------------------------------------------- modules

class BCELoss(torch.nn.Module):
    """Module wrapper of :func:`bce_loss`.

    >>> BCELoss()(torch.zeros(2, 1, 3, 3), torch.ones(2, 1, 3, 3))   # log 2
    tensor(0.6931)
    """

    def __init__(self, *, from_logits: bool = True, reduction: str = "mean", eps: float = 1e-7):
        super().__init__()
        _check_reduction(reduction, "BCELoss")
        self.from_logits, self.reduction, self.eps = from_logits, reduction, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bce_loss(pred, target, from_logits=self.from_logits, reduction=self.reduction, eps=self.eps)

    def extra_repr(self) -> str:
        return f"from_logits={self.from_logits}, reduction={self.reduction!r}"


class SoftJaccardLoss(torch.nn.Module):
    """Module wrapper of :func:`soft_jaccard_loss` (``1 - J``)."""

    def __init__(self, *, from_logits: bool = True, per_image: bool = True, eps: float = 1e-6):
        super().__init__()
        _check_eps(eps, "SoftJaccardLoss")
        self.from_logits, self.per_image, self.eps = from_logits, per_image, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_jaccard_loss(pred, target, from_logits=self.from_logits, per_image=self.per_image,
                                 eps=self.eps)

    def extra_repr(self) -> str:
        return f"from_logits={self.from_logits}, per_image={self.per_image}, eps={self.eps}"


class CombinedLoss(torch.nn.Module):
    """Module wrapper of :func:`combined_loss`: ``(1 - w) BCE + w (1 - J)``."""

    def __init__(self, jaccard_weight: float = 0.5, *, from_logits: bool = True, per_image: bool = True,
                 eps: float = 1e-6, return_parts: bool = False):
        super().__init__()
        _check_weight(jaccard_weight, "CombinedLoss")
        _check_eps(eps, "CombinedLoss")
        self.jaccard_weight, self.from_logits, self.per_image = jaccard_weight, from_logits, per_image
        self.eps, self.return_parts = eps, return_parts

    def forward(self, pred: torch.Tensor, target: torch.Tensor):
        return combined_loss(pred, target, self.jaccard_weight, from_logits=self.from_logits,
                             per_image=self.per_image, eps=self.eps, return_parts=self.return_parts)

    def extra_repr(self) -> str:
        return f"jaccard_weight={self.jaccard_weight}, from_logits={self.from_logits}, per_image={self.per_image}"


class DiceLoss(torch.nn.Module):
    """Module wrapper of :func:`dice_loss`."""

    def __init__(self, *, from_logits: bool = True, per_image: bool = True, eps: float = 1e-6):
        super().__init__()
        _check_eps(eps, "DiceLoss")
        self.from_logits, self.per_image, self.eps = from_logits, per_image, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_loss(pred, target, from_logits=self.from_logits, per_image=self.per_image, eps=self.eps)

    def extra_repr(self) -> str:
        return f"from_logits={self.from_logits}, per_image={self.per_image}, eps={self.eps}"


class FocalLoss(torch.nn.Module):
    """Module wrapper of :func:`focal_loss`."""

    def __init__(self, *, gamma: float = 2.0, alpha: float | None = 0.25, from_logits: bool = True,
                 reduction: str = "mean"):
        super().__init__()
        _check_reduction(reduction, "FocalLoss")
        self.gamma, self.alpha, self.from_logits, self.reduction = gamma, alpha, from_logits, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(pred, target, gamma=self.gamma, alpha=self.alpha, from_logits=self.from_logits,
                          reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}, from_logits={self.from_logits}"


class LovaszHingeLoss(torch.nn.Module):
    """Module wrapper of :func:`lovasz_hinge_loss` (logits in, scalar out)."""

    def __init__(self, *, per_image: bool = True):
        super().__init__()
        self.per_image = per_image

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return lovasz_hinge_loss(pred, target, per_image=self.per_image)

    def extra_repr(self) -> str:
        return f"per_image={self.per_image}"
