"""The losses of the phase-retrieval networks: each a function under its formula (+ a thin wrapper for ``fit``).

Both accept either the image or its 180° rotation (the "twin"). The training loss of
:func:`~course_lib.phase.train.train_network` is :class:`~course_lib.phase.train.PhaseLoss`.
"""
from __future__ import annotations

import torch

from ..core.checks import check_choice, check_number, check_same_shape

__all__ = ["rotation_invariant_loss", "autoencoder_loss", "AutoEncoderLoss"]


def rotation_invariant_loss(pred: torch.Tensor, target: torch.Tensor, base: str = "mse") -> torch.Tensor:
    """``mean_n min(base(pred_n, target_n), base(rot180(pred_n), target_n))``; ``base``: 'mse' or 'l1'.

    ``x`` and its 180° rotation have the same Fourier magnitude (the "twin image"), so a network cannot know
    which one it is asked for and must not be punished for choosing the other. (In the padded frame the twin is
    also shifted; for a network that outputs the image at its own size, the shift carries no information.)
    ``pred``, ``target``: ``(N, C, h, w)``.

        >>> x = torch.rand(2, 1, 8, 8)
        >>> float(rotation_invariant_loss(torch.rot90(x, 2, dims=(-2, -1)), x))
        0.0
    """
    check_same_shape(pred, target, "rotation_invariant_loss: pred and target")
    base = check_choice(base, ("mse", "l1"), "rotation_invariant_loss: base")
    err = (lambda a: (a - target) ** 2) if base == "mse" else (lambda a: (a - target).abs())
    direct = err(pred).mean(dim=(1, 2, 3))
    rotated = err(torch.rot90(pred, 2, dims=(-2, -1))).mean(dim=(1, 2, 3))
    return torch.minimum(direct, rotated).mean()


def autoencoder_loss(x: torch.Tensor, enc, dec, lam: float = 1e-3):
    """PR-DAD II's auto-encoder objective: ``||x - dec(enc(x))||^2`` (180°-invariant) ``+ lam * mean|enc(x)|``.

    The reconstruction term is :func:`rotation_invariant_loss`: the phase-retrieval network will predict codes
    only up to the twin, so the auto-encoder may answer with either; the L1 term makes the code sparse. ``enc``,
    ``dec``: callables (e.g. ``ae.encode``, ``ae.decode``). Returns ``(loss, {'reconstruction': ...,
    'sparsity': ...})``, the form ``core.training.fit`` accepts.
    """
    code = enc(x)
    return _autoencoder_terms(x, dec(code), code, check_number(lam, "autoencoder_loss: lam", low=0))


def _autoencoder_terms(x, reconstruction, code, lam):
    rec = rotation_invariant_loss(reconstruction, x, "mse")
    sparsity = code.abs().mean()
    return rec + lam * sparsity, {"reconstruction": rec.detach(), "sparsity": sparsity.detach()}


class AutoEncoderLoss:
    """:func:`autoencoder_loss` as ``loss_fn((reconstruction, code), x)`` for ``fit(ae, AutoEncoderLoss(lam), ...)``."""

    def __init__(self, lam: float = 1e-3):
        self.lam = check_number(lam, "AutoEncoderLoss: lam", low=0)

    def __call__(self, output, x):
        reconstruction, code = output
        return _autoencoder_terms(x, reconstruction, code, self.lam)
