"""The one check of a (prediction, binary target) pair, run once at the entry of each loss and metric.

:func:`binary_pair` accepts ``(N, 1, H, W)`` or ``(N, H, W)`` tensors, returns both as ``(N, H, W)``
in one float dtype (float32 for half precision) and fails with one line that names the function,
the argument and what it received.

The value checks cost a few reductions, not a pass per rule, because they run on every training
step: a target ``p`` with ``0 <= p <= 1`` is binary exactly when ``Σ p = Σ p²`` (``Σ p (1 - p) = 0``),
a sum of logits is finite only when every logit is, and ``min``/``max`` bound probabilities. When one
of those fails, the pixel-by-pixel check below finds what is wrong and says so.
"""
from __future__ import annotations

import math

import torch

from ..core.checks import InputError, check_tensor

__all__ = ["binary_pair"]


def _drop_channel(t: torch.Tensor, name: str, fn: str) -> torch.Tensor:
    if t.dim() == 4:
        if t.shape[1] != 1:
            raise InputError(f"{fn}: {name} must be a single-channel map (N, 1, H, W) or (N, H, W), "
                             f"got shape {tuple(t.shape)} with {t.shape[1]} channels (binary segmentation: "
                             f"one logit per pixel)")
        return t[:, 0]
    if t.dim() == 3:
        return t
    raise InputError(f"{fn}: {name} must have shape (N, 1, H, W) or (N, H, W), got {tuple(t.shape)}"
                     + (" (add the batch dimension with .unsqueeze(0))" if t.dim() == 2 else ""))


def binary_pair(pred, target, fn: str, *, from_logits: bool, hard_pred_ok: bool = False):
    """Validate ``pred`` (logits, probabilities, or with ``hard_pred_ok`` a bool/{0, 1} mask) and a {0, 1} ``target``."""
    check_tensor(pred, f"{fn}: pred")
    check_tensor(target, f"{fn}: target")
    p, t = _drop_channel(pred, "pred", fn), _drop_channel(target, "target", fn)
    if p.shape != t.shape:
        raise InputError(f"{fn}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the "
                         f"same (N, H, W) shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    if p.is_complex() or t.is_complex():
        raise InputError(f"{fn}: pred and target must be real, got {p.dtype} and {t.dtype}")
    if not p.is_floating_point():
        if not hard_pred_ok:
            raise InputError(f"{fn}: pred must be a float tensor of logits or probabilities, got dtype {p.dtype}")
        if from_logits:
            raise InputError(f"{fn}: from_logits=True needs float logits, got pred of dtype {p.dtype} "
                             f"(a hard mask: use from_logits=False)")
    dtype = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
    p, tf = p.to(dtype), t.to(dtype)  # no copy when they are float32 already

    # sufficient conditions from a few reductions, read with one host synchronisation
    t_min, t_max = torch.aminmax(tf)
    if from_logits:
        p_lo = p_hi = p.sum()  # finite only when every logit is (or a false alarm on overflow)
    else:
        p_lo, p_hi = torch.aminmax(p)
    stats = [t_min, t_max, tf.sum(dtype=torch.float64), torch.dot(tf.reshape(-1), tf.reshape(-1)), p_lo, p_hi]
    t_min, t_max, sum_t, sum_t2, p_lo, p_hi = torch.stack([s.double() for s in stats]).tolist()
    binary = t_min >= 0 and t_max <= 1 and sum_t == sum_t2
    valid = math.isfinite(p_lo) if from_logits else (p_lo >= 0 and p_hi <= 1)
    if not (binary and valid):
        _explain(p, t, fn, from_logits, tuple(pred.shape))
    return p, tf


def _explain(p: torch.Tensor, t: torch.Tensor, fn: str, from_logits: bool, shape) -> None:
    """The exact checks, in the order users meet them; returns when all pass (a false alarm of the sums)."""
    bad_target = (t != 0) & (t != 1)
    if bool(bad_target.any()):
        found = torch.unique(t[bad_target]).tolist()  # in target's own dtype
        more = "" if len(found) <= 5 else f" ... ({len(found)} distinct)"
        raise InputError(f"{fn}: target must contain only 0 (background) and 1 (person), found "
                         f"{found[:5]}{more}" + (" (an 8-bit mask? divide by 255)" if 255 in found else ""))
    if not bool(torch.isfinite(p).all()):
        n_nan, n_inf = int(torch.isnan(p).sum()), int(torch.isinf(p).sum())
        raise InputError(f"{fn}: pred must be finite, found {n_nan} NaN and {n_inf} infinite value(s) "
                         f"in a tensor of shape {shape}")
    if not from_logits and bool(((p < 0) | (p > 1)).any()):
        raise InputError(f"{fn}: pred must be probabilities in [0, 1] when from_logits=False, got values in "
                         f"[{float(p.min()):.4g}, {float(p.max()):.4g}]; pass from_logits=True for raw "
                         f"network outputs (logits)")
