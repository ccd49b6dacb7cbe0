"""Exercise checks: compare a student's function with the library's reference.

Each ``check_<name>(fn)`` calls ``fn`` on fixed inputs, compares with the reference implementation in
``course_lib`` and either prints one pass line or raises ``AssertionError`` saying which output, the shape or
value expected versus received, and the largest relative error. A stub that still raises
``NotImplementedError`` gets a friendly reminder instead of a traceback from deep inside the check.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch

__all__ = ["compare", "check_rgb_to_y", "check_psnr", "check_pixel_shuffle", "check_gram_matrix",
           "check_bicubic_downscale", "check_soft_jaccard_loss", "check_pyramid_pooling", "check_hio_step",
           "check_rotation_invariant_loss"]

class _NotDone(Exception):
    """The student's function still raises NotImplementedError (the stub)."""


def _call(name: str, fn: Callable, *args, **kwargs):
    if not callable(fn):
        raise AssertionError(f"{name}: expected a function, got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotDone(name) from None


def _exercise(check: Callable) -> Callable:
    """A check prints one "not done yet" line for a stub, instead of a second traceback under the first."""
    @functools.wraps(check)
    def run(fn: Callable) -> None:
        try:
            check(fn)
        except _NotDone as stub:
            print(f"… {stub.args[0]}: not done yet (your function still raises NotImplementedError). "
                  "Replace the stub with your code and run both cells again.")
    return run


def compare(name: str, got, expected, *, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Raise ``AssertionError`` unless ``got`` matches ``expected`` (shape and values)."""
    if isinstance(expected, torch.Tensor) and not isinstance(got, torch.Tensor):
        raise AssertionError(f"{name}: expected a torch.Tensor, got {type(got).__name__}")
    got_a, exp_a = (x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
                    for x in (got, expected))
    if got_a.shape != exp_a.shape:
        raise AssertionError(f"{name}: expected shape {exp_a.shape}, got {got_a.shape}")
    if not np.all(np.isfinite(got_a) == np.isfinite(exp_a)):
        raise AssertionError(f"{name}: your output has NaN/inf where the reference has none")
    finite = np.isfinite(exp_a)
    diff = np.abs(got_a[finite] - exp_a[finite])
    if diff.size and not np.all(diff <= atol + rtol * np.abs(exp_a[finite])):
        rel = diff / np.maximum(np.abs(exp_a[finite]), 1e-12)
        i = int(np.argmax(diff))
        where = np.unravel_index(np.flatnonzero(finite)[i], exp_a.shape)
        raise AssertionError(
            f"{name}: values differ. At index {tuple(int(w) for w in where)} expected "
            f"{exp_a[finite][i]:.6g}, got {got_a[finite][i]:.6g}; max abs error {diff.max():.3g}, "
            f"max relative error {rel.max():.3g} (tolerance rtol={rtol}, atol={atol})")


def _passed(name: str, detail: str = "") -> None:
    print(f"✓ {name}: correct{' — ' + detail if detail else ''}")


def _inputs(seed: int, *shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64).float()


def _scalar(x) -> torch.Tensor:
    """A number, or a one-element tensor, as a float64 scalar tensor."""
    return torch.as_tensor(x, dtype=torch.float64).reshape(())


def _check_differentiable(name: str, fn: Callable, *args) -> None:
    """``fn(*args)`` must be a loss that gradients flow through."""
    loss = _call(name, fn, *args)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise AssertionError(f"{name}: the loss must be a torch tensor that gradients flow through "
                             "(use torch operations, no .item() or numpy)")


@_exercise
def check_rgb_to_y(fn: Callable) -> None:
    """Exercise (00_welcome): BT.601 luma ``Y = (16 + 65.481 R + 128.553 G + 24.966 B)/255``.

    ``fn(rgb)`` takes ``(3, H, W)`` in [0, 1] and returns ``(1, H, W)``.
    """
    from course_lib.core.images import rgb_to_y

    for seed, shape in ((0, (3, 5, 7)), (1, (3, 16, 16))):
        x = _inputs(seed, *shape)
        compare("rgb_to_y output", _call("rgb_to_y", fn, x), rgb_to_y(x), rtol=1e-4, atol=1e-5)
    compare("rgb_to_y of black (should be 16/255)", _call("rgb_to_y", fn, torch.zeros(3, 2, 2)),
            torch.full((1, 2, 2), 16 / 255))
    _passed("rgb_to_y", "black maps to 16/255 and white to 235/255, as in MATLAB's rgb2ycbcr")


@_exercise
def check_psnr(fn: Callable) -> None:
    """Exercise (01): ``fn(pred, target)`` -> PSNR in dB for images in [0, 1] (one number)."""
    from course_lib.core.metrics import psnr

    for seed in (0, 1, 2):
        a = _inputs(seed, 3, 12, 10)
        b = (a + 0.05 * _inputs(seed + 10, 3, 12, 10)).clamp(0, 1)
        compare(f"psnr (case {seed})", _scalar(_call("psnr", fn, b, a)), psnr(b, a).reshape(()), rtol=1e-4, atol=1e-4)
    compare("psnr of a 0.1 offset (should be 20 dB)",
            _scalar(_call("psnr", fn, torch.full((1, 4, 4), 0.1), torch.zeros(1, 4, 4))), _scalar(20.0))
    _passed("psnr")


@_exercise
def check_pixel_shuffle(fn: Callable) -> None:
    """Exercise (02): ``fn(x, r)`` rearranges ``(N, C r^2, H, W)`` into ``(N, C, H r, W r)``."""
    for seed, (n, c, h, w, r) in enumerate(((1, 1, 2, 3, 2), (2, 3, 4, 5, 3), (1, 2, 3, 3, 4))):
        x = _inputs(seed, n, c * r * r, h, w)
        compare(f"pixel_shuffle(x of shape {tuple(x.shape)}, r={r})", _call("pixel_shuffle", fn, x, r),
                torch.nn.functional.pixel_shuffle(x, r), rtol=0, atol=0)
    _passed("pixel_shuffle", "equal to torch.nn.PixelShuffle for r = 2, 3, 4")


@_exercise
def check_bicubic_downscale(fn: Callable) -> None:
    """Exercise (01): ``fn(hr, r)`` -> LR image, PIL-compatible antialiased bicubic, HR cropped to a multiple of r."""
    from course_lib.superres.degrade import degrade

    for seed, (h, w, r) in enumerate(((24, 30, 2), (31, 20, 3), (40, 41, 4))):
        hr = _inputs(seed, 3, h, w)
        compare(f"LR of a {h}x{w} image at scale {r}", _call("bicubic_downscale", fn, hr, r),
                degrade(hr, r, "bicubic"), rtol=0, atol=2e-3)
    _passed("bicubic_downscale")


@_exercise
def check_gram_matrix(fn: Callable) -> None:
    """Exercise (04): ``fn(f)`` -> Gram matrices ``(N, C, C)`` of features ``(N, C, H, W)``, divided by ``C H W``."""
    from course_lib.style.losses import gram_matrix

    for seed, shape in enumerate(((1, 3, 4, 5), (2, 8, 6, 6), (1, 16, 3, 7))):
        f = _inputs(seed, *shape) - 0.3
        compare(f"gram_matrix of features {shape}", _call("gram_matrix", fn, f), gram_matrix(f), rtol=1e-4, atol=1e-6)
    _passed("gram_matrix", "G = F Fᵀ / (C·H·W), one matrix per image")


@_exercise
def check_soft_jaccard_loss(fn: Callable) -> None:
    """Exercise (06): ``fn(p_hat, p)`` -> mean over images of ``1 - <p, p̂> / (|p|₁ + |p̂|₁ - <p, p̂>)``.

    ``p_hat``: probabilities ``(N, 1, H, W)`` in [0, 1]; ``p``: the true mask, same shape, in {0, 1}.
    """
    from course_lib.segmentation.losses import soft_jaccard_loss

    cases = []
    for seed, (n, h, w, frac) in enumerate(((1, 4, 5, 0.5), (3, 6, 6, 0.2), (2, 9, 7, 0.05))):
        p = (_inputs(seed, n, 1, h, w) < frac).float()
        p[:, :, 0, 0] = 1  # never an empty mask: the smoothing term does not matter here
        p[0] = 1 if n > 1 else p[0]  # images of very different sizes: a per-batch pool gives another value
        cases.append((_inputs(seed + 20, n, 1, h, w), p))  # (p_hat, p)
    binary = (_inputs(7, 2, 1, 5, 5) > 0.5).float()
    cases.append((binary, binary))  # a perfect hard prediction: loss 0
    for i, (p_hat, p) in enumerate(cases):
        got = _call("soft_jaccard_loss", fn, p_hat.clone(), p.clone())
        compare(f"soft_jaccard_loss (case {i}: {tuple(p.shape)})", _scalar(got),
                _scalar(soft_jaccard_loss(p_hat, p, from_logits=False, per_image=True)), rtol=1e-4, atol=1e-5)
    x = _inputs(3, 2, 1, 6, 6).requires_grad_(True)
    _check_differentiable("soft_jaccard_loss", fn, x, (_inputs(4, 2, 1, 6, 6) > 0.5).float())
    _passed("soft_jaccard_loss", "1 - J per image, averaged over the batch; differentiable")


@_exercise
def check_pyramid_pooling(fn: Callable) -> None:
    """Exercise (07): ``fn(features, convs, bins)`` -> ``[features, up(conv_b(pool_b(features))) for b in bins]``,
    concatenated."""
    from course_lib.segmentation.pspnet import ppm_branch, pyramid_pooling

    torch.manual_seed(0)
    for seed, (n, c, h, w, bins) in enumerate(((1, 8, 6, 6, (1, 2, 3, 6)), (2, 16, 7, 5, (1, 2, 3, 6)),
                                               (1, 4, 9, 11, (1, 3)))):
        x = _inputs(seed, n, c, h, w)
        convs = [ppm_branch(c, c // 4, norm=(b != 1)).eval() for b in bins]
        with torch.no_grad():
            got = _call("pyramid_pooling", fn, x, convs, bins)
            compare(f"pyramid_pooling(features {tuple(x.shape)}, bins={bins})", got, pyramid_pooling(x, convs, bins))
    _passed("pyramid_pooling", "pool to b×b, 1×1 conv branch, bilinear upsample, concatenate with the input")


@_exercise
def check_hio_step(fn: Callable) -> None:
    """Exercise (08): ``fn(x, y, support, beta)`` -> the next HIO iterate on the padded grid ``(H, W)``.

    ``z = F x`` (``torch.fft.fft2(..., norm="ortho")``); keep the phase of ``z``, give it the magnitude ``y``;
    ``x' = real(F^-1 z)``; ``p`` = ``x'`` clipped to [0, 1] and set to 0 outside ``support``;
    the next iterate is ``x'`` where ``p == x'`` and ``x - beta (x' - p)`` elsewhere.
    """
    from course_lib.phase.classical import hio_step
    from course_lib.phase.fourier import fourier_magnitude, support_mask

    for seed, (h, w, beta) in enumerate(((4, 4, 0.8), (6, 5, 0.9), (8, 8, 0.5), (6, 6, 0.8))):
        truth = _inputs(seed, 1, h, w).double()
        if seed == 3:
            truth = 4 * truth  # a bright object: x' exceeds 1, so the [0, 1] box matters
        y = fourier_magnitude(truth, pad=2)[0]
        support = support_mask((h, w), pad=2)
        x = (_inputs(seed + 50, 2 * h, 2 * w).double() - 0.2) * 1.5  # some pixels < 0, > 1, outside the support
        got = _call("hio_step", fn, x.clone(), y.clone(), support.clone(), beta)
        compare(f"hio_step (case {seed}: {2 * h}x{2 * w} grid, beta={beta})", got, hio_step(x, y, support, beta),
                rtol=1e-6, atol=1e-9)
    _passed("hio_step", "magnitude replaced, phase kept; feedback x - beta (x' - P_S x') where x' breaks a constraint")


@_exercise
def check_rotation_invariant_loss(fn: Callable) -> None:
    """Exercise (09): ``fn(pred, target)`` -> mean over images of ``min(MSE(pred, x), MSE(rot180(pred), x))``.

    ``pred``, ``target``: ``(N, 1, h, w)``. Per image, the smaller of the two mean squared errors; then the
    mean over the batch. It must stay differentiable (torch operations only).
    """
    from course_lib.phase.prdad import rotation_invariant_loss

    for seed, (n, h, w) in enumerate(((1, 4, 4), (3, 6, 5), (4, 8, 8))):
        target = _inputs(seed, n, 1, h, w)
        pred = _inputs(seed + 10, n, 1, h, w)
        # half the predictions are the twin of the target plus a little noise: the rotated branch must win there
        pred[::2] = torch.rot90(target[::2], 2, dims=(-2, -1)) + 0.05 * pred[::2]
        got = _call("rotation_invariant_loss", fn, pred.clone(), target.clone())
        compare(f"rotation_invariant_loss (case {seed}: {tuple(pred.shape)})", _scalar(got),
                _scalar(rotation_invariant_loss(pred, target)), rtol=1e-5, atol=1e-7)
    x = _inputs(5, 2, 1, 6, 6)
    zero = float(_scalar(_call("rotation_invariant_loss", fn, torch.rot90(x, 2, dims=(-2, -1)), x)))  # the twin
    if zero > 1e-7:
        raise AssertionError("rotation_invariant_loss: the twin (180° rotation) of the target must cost 0, "
                             f"got {zero:.3g}")
    _check_differentiable("rotation_invariant_loss", fn, _inputs(6, 2, 1, 6, 6).requires_grad_(True), x)
    _passed("rotation_invariant_loss", "per image the smaller of MSE(pred, x) and MSE(rot180(pred), x), "
                                       "averaged; the twin costs nothing")
