"""Metrics of binary segmentation (person vs background): IoU, pixel accuracy, boundary F-score, a batch meter.

Two averages, both reported in papers: **mean IoU** (``miou``), the IoU of each image averaged over images, and
**dataset IoU** (``dataset_iou``), total intersection / total union over all pixels (large people weigh more).

Empty masks (stated once, used everywhere): truth and prediction both empty -> IoU 1 (nothing to find, nothing
predicted); exactly one of them empty -> IoU 0. Metrics run without gradients, in float64 for the ratios.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.checks import check_int, check_number
from .inputs import binary_pair

__all__ = ["iou", "pixel_accuracy", "boundary_f_score", "IoUMeter"]


def _hard_masks(pred, target, threshold, from_logits, fn):
    """``(N, H, W)`` bool prediction and truth after validation and thresholding."""
    check_number(threshold, f"{fn}: threshold", low=0, high=1, high_open=True)
    p_hat, p = binary_pair(pred, target, fn, from_logits=from_logits, hard_pred_ok=True)
    q = torch.sigmoid(p_hat) if from_logits else p_hat
    return q > threshold, p > 0.5


@torch.no_grad()
def _counts(pred, target, threshold, from_logits, fn):
    """Per-image ``(intersection, union, correct pixels, pixels)`` as int64 tensors ``(N,)``."""
    q, p = _hard_masks(pred, target, threshold, from_logits, fn)
    inter = (q & p).flatten(1).sum(1)
    union = (q | p).flatten(1).sum(1)
    correct = (q == p).flatten(1).sum(1)
    pixels = torch.full_like(inter, q[0].numel())
    return inter, union, correct, pixels


def _ratio_or_one(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` in float64, 1 where ``den == 0`` (both masks empty)."""
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / den.clamp_min(1), torch.ones_like(num))


def iou(pred: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, from_logits: bool = False,
        per_image: bool = True) -> torch.Tensor:
    """Intersection over union ``|P̂ ∩ P| / |P̂ ∪ P|`` of the thresholded prediction ``P̂ = {p̂ > t}``.

    Args:
        pred: probabilities, logits (``from_logits=True``) or a hard mask; ``(N, 1, H, W)`` or ``(N, H, W)``.
        target: {0, 1} mask of the same spatial shape.
        threshold: ``t`` in [0, 1) on probabilities.
        from_logits: apply ``σ`` to ``pred`` first.
        per_image: IoU of each image, ``(N,)``; else the dataset IoU of the batch, a 0-d tensor
            (total intersection / total union).
    Returns:
        float64 tensor ``(N,)`` or ``()``. Both masks empty gives 1; exactly one empty gives 0.

    >>> target = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    >>> pred = torch.tensor([[[0.9, 0.2], [0.7, 0.1]], [[0.1, 0.0], [0.3, 0.2]]])
    >>> iou(pred, target)            # 1 / 3, and both empty -> 1
    tensor([0.3333, 1.0000], dtype=torch.float64)
    >>> iou(pred, target, per_image=False)
    tensor(0.3333, dtype=torch.float64)
    """
    inter, union, _, _ = _counts(pred, target, threshold, from_logits, "iou")
    return _ratio_or_one(inter, union) if per_image else _ratio_or_one(inter.sum(), union.sum())


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5,
                   from_logits: bool = False, per_image: bool = True) -> torch.Tensor:
    """Fraction of pixels whose thresholded prediction equals the truth.

    Same arguments as :func:`iou`; ``(N,)`` per image or a 0-d tensor over the batch. Beware: on portraits with
    small people, predicting only background already scores high.

    >>> target = torch.tensor([[[1, 1], [0, 0]]])
    >>> pixel_accuracy(torch.tensor([[[0.9, 0.2], [0.7, 0.1]]]), target)
    tensor([0.5000], dtype=torch.float64)
    """
    _, _, correct, pixels = _counts(pred, target, threshold, from_logits, "pixel_accuracy")
    return _ratio_or_one(correct, pixels) if per_image else _ratio_or_one(correct.sum(), pixels.sum())


# --------------------------------------------------------------------------- boundaries

def _boundary(mask: torch.Tensor) -> torch.Tensor:
    """Inner boundary of ``(N, H, W)`` bool masks: mask pixels with a 4-neighbour outside the mask.

    The image border is not a boundary (replicate padding): a person cut by the frame has no contour along the frame.
    """
    m = mask.float().unsqueeze(1)
    padded = F.pad(m, (1, 1, 1, 1), mode="replicate")
    # erosion with the 4-neighbour cross: a pixel stays if it and its 4 neighbours are set
    eroded = (padded[..., 1:-1, 1:-1] * padded[..., :-2, 1:-1] * padded[..., 2:, 1:-1]
              * padded[..., 1:-1, :-2] * padded[..., 1:-1, 2:])
    return (m - eroded)[:, 0] > 0.5


def _dilate_disk(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels within Euclidean distance ``radius`` of a set pixel of ``(N, H, W)`` bool masks."""
    if radius == 0:
        return mask
    r = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    disk = ((r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2).float()[None, None]
    hits = F.conv2d(mask.float().unsqueeze(1), disk, padding=radius)
    return hits[:, 0] > 0.5


@torch.no_grad()
def boundary_f_score(pred: torch.Tensor, target: torch.Tensor, *, tolerance_px: int = 2,
                     threshold: float = 0.5, from_logits: bool = False) -> torch.Tensor:
    """Boundary F-measure ``F = 2 P R / (P + R)`` of the mask contours, per image: float64 ``(N,)``.

    The contour of a mask is its inner boundary (pixels of the mask with a 4-neighbour outside it; the image frame is
    not a contour). Precision ``P`` is the fraction of predicted contour pixels within Euclidean distance
    ``tolerance_px`` of a true contour pixel, recall ``R`` the fraction of true contour pixels within that distance
    of a predicted one (the contour accuracy ``F`` of the DAVIS benchmark, Perazzi et al., CVPR 2016; the BF score of
    Csurka et al., BMVC 2013). It rewards sharp, well-placed edges (hair, shoulders) that IoU barely notices.

    ``tolerance_px``: distance in pixels (an int >= 0) at which a contour pixel counts as matched; the other
    arguments as in :func:`iou`. Both contours empty -> 1; exactly one empty -> 0; ``P = R = 0`` -> 0.

    >>> target = torch.zeros(1, 8, 8); target[0, 2:6, 2:6] = 1
    >>> pred = torch.zeros(1, 8, 8); pred[0, 2:6, 3:7] = 1      # shifted right by one pixel
    >>> boundary_f_score(pred, target, tolerance_px=0), boundary_f_score(pred, target, tolerance_px=1)
    (tensor([0.5000], dtype=torch.float64), tensor([1.], dtype=torch.float64))
    """
    check_int(tolerance_px, "boundary_f_score: tolerance_px", minimum=0)
    q, p = _hard_masks(pred, target, threshold, from_logits, "boundary_f_score")
    bq, bp = _boundary(q), _boundary(p)
    n_q, n_p = bq.flatten(1).sum(1).double(), bp.flatten(1).sum(1).double()
    matched_q = (bq & _dilate_disk(bp, tolerance_px)).flatten(1).sum(1).double()
    matched_p = (bp & _dilate_disk(bq, tolerance_px)).flatten(1).sum(1).double()
    precision, recall = matched_q / n_q.clamp_min(1), matched_p / n_p.clamp_min(1)
    f = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-300),
                    torch.zeros_like(precision))
    both_empty = (n_q == 0) & (n_p == 0)
    return torch.where(both_empty, torch.ones_like(f), f)


# --------------------------------------------------------------------------- meter

class IoUMeter:
    """Accumulate IoU (and pixel accuracy) over the batches of a validation pass.

    ``update(pred, target)`` takes one batch (arguments as in :func:`iou`); ``compute()`` returns a dict

    * ``'miou'``: mean over all images seen of the per-image IoU,
    * ``'dataset_iou'``: total intersection / total union over all pixels seen,
    * ``'pixel_accuracy'``: correct pixels / pixels over all pixels seen,
    * ``'n'``: the number of images.

    Images of different sizes in different batches are fine. Pixel counts are kept as exact integers, so
    ``dataset_iou`` does not depend on how the data was split into batches.

    >>> meter = IoUMeter()
    >>> target = torch.tensor([[[1, 1], [0, 0]]])
    >>> meter.update(torch.tensor([[[0.9, 0.2], [0.7, 0.1]]]), target)    # IoU 1/3
    >>> meter.update(torch.tensor([[[0.9, 0.8], [0.1, 0.1]]]), target)    # IoU 1
    >>> # dataset IoU (1 + 2) / (3 + 2); pixels right (2 + 4) / 8
    >>> {k: round(v, 4) for k, v in meter.compute().items()}
    {'miou': 0.6667, 'dataset_iou': 0.6, 'pixel_accuracy': 0.75, 'n': 2}
    """

    def __init__(self, *, threshold: float = 0.5, from_logits: bool = False):
        check_number(threshold, "IoUMeter: threshold", low=0, high=1, high_open=True)
        self.threshold, self.from_logits = threshold, from_logits
        self.reset()

    def reset(self) -> None:
        self._iou_sum = 0.0
        self._n = self._inter = self._union = self._correct = self._pixels = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        inter, union, correct, pixels = _counts(pred, target, self.threshold, self.from_logits, "IoUMeter.update")
        self._iou_sum += float(_ratio_or_one(inter, union).sum())
        self._n += int(inter.numel())
        self._inter += int(inter.sum())
        self._union += int(union.sum())
        self._correct += int(correct.sum())
        self._pixels += int(pixels.sum())

    def compute(self) -> dict:
        if self._n == 0:
            raise ValueError("IoUMeter.compute: no images yet; call update(pred, target) first")
        return {"miou": self._iou_sum / self._n, "dataset_iou": self._inter / self._union if self._union > 0 else 1.0,
                "pixel_accuracy": self._correct / self._pixels, "n": self._n}

    def __repr__(self) -> str:
        return f"IoUMeter(threshold={self.threshold}, from_logits={self.from_logits}, n={self._n})"
