"""The binary Lovász hinge loss (Berman, Rannen Triki & Blaschko, CVPR 2018), a convex surrogate of ``1 - IoU``.

Imported by :mod:`course_lib.segmentation.losses`, with the other losses; shapes and checks as there.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .inputs import binary_pair

__all__ = ["lovasz_hinge_loss", "LovaszHingeLoss"]


def lovasz_hinge_loss(pred: torch.Tensor, target: torch.Tensor, *, per_image: bool = True) -> torch.Tensor:
    """Binary Lovász hinge loss (Berman et al., CVPR 2018, Sec. 3.1 and eq. 9).

    A convex surrogate of the Jaccard loss ``1 - IoU`` of the person class. With logits ``x`` and signs
    ``s = 2p - 1`` the hinge errors are ``e_i = max(0, 1 - s_i x_i)``; sorting them in decreasing order
    ``e_(1) >= e_(2) >= ...``,

        ``loss = Σ_i e_(i) · [Δ_J(M_i) - Δ_J(M_{i-1})]``,

    where ``M_i`` holds the ``i`` pixels of largest error and ``Δ_J(M) = |M| / |P ∪ M|`` is the Jaccard loss when
    exactly the pixels ``M`` are wrong (``P``: the person pixels). This is the Lovász extension of ``Δ_J`` evaluated
    at ``e``: where the errors are 0/1 (each pixel either right with margin >= 1 or at logit 0) it is the Jaccard
    loss of the wrong pixels; in between it interpolates linearly. The loss is piecewise linear in ``x``; the weights
    depend only on the order of the errors (ties may be broken either way: the value does not change).

    Empty masks: with no person pixels ``Δ_J(M) = 1`` for any non-empty ``M``: the loss is the
    largest hinge error, 0 once every logit is <= -1.

    ``pred`` holds logits (the hinge needs real-valued scores); ``per_image`` as in :func:`soft_jaccard`.

    >>> target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> float(lovasz_hinge_loss(torch.tensor([[[2.0, 1.0], [-1.0, -3.0]]]), target))   # all margins >= 1
    0.0
    >>> float(lovasz_hinge_loss(torch.tensor([[[2.0, 0.0], [-1.0, -3.0]]]), target))   # one positive at 0: 1 - 1/2
    0.5
    """
    x, p = binary_pair(pred, target, "lovasz_hinge_loss", from_logits=True)
    x = x.flatten(1) if per_image else x.reshape(1, -1)
    p = p.flatten(1) if per_image else p.reshape(1, -1)
    errors = 1 - x * (2 * p - 1)
    errors_sorted, order = torch.sort(errors, dim=-1, descending=True)
    gt_sorted = torch.gather(p, -1, order)  # the weights are constant between ties
    # |P \ M_i| = |P| - (positives among the first i), |P ∪ M_i| = |P| + (negatives among the first i): the
    # latter is >= 1 for i >= 1, so there is no division by zero even when P is empty
    n_pos = gt_sorted.sum(-1, keepdim=True)
    delta = 1 - (n_pos - gt_sorted.cumsum(-1)) / (n_pos + (1 - gt_sorted).cumsum(-1))  # Δ_J(M_i)
    weights = torch.cat([delta[..., :1], delta[..., 1:] - delta[..., :-1]], dim=-1)  # Δ_J(M_i) - Δ_J(M_{i-1})
    return (F.relu(errors_sorted) * weights).sum(-1).mean()


class LovaszHingeLoss(torch.nn.Module):
    """:func:`lovasz_hinge_loss` as a module (logits in, scalar out)."""

    def __init__(self, *, per_image: bool = True):
        super().__init__()
        self.per_image = per_image

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return lovasz_hinge_loss(pred, target, per_image=self.per_image)

    def extra_repr(self) -> str:
        return f"per_image={self.per_image}"
