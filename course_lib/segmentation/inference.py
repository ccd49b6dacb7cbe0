"""Inference with a trained :class:`~course_lib.segmentation.pspnet.PSPNet`: one checked image
(:func:`predict_mask`), and a faster copy with BatchNorm folded (:func:`optimize_for_inference`)."""
from __future__ import annotations

import contextlib
import copy
from typing import Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.checks import InputError, check_int, check_probability, check_size
from ..core.images import load_image, to_tensor
from .pspnet import PSPNet

__all__ = ["predict_mask", "optimize_for_inference", "InferencePSPNet", "count_parameters"]


def _single_image(x) -> torch.Tensor:
    """A PIL image or a tensor (3, H, W) / (1, 3, H, W) in [0, 1] -> (1, 3, H, W) float."""
    if not isinstance(x, torch.Tensor):
        if type(x).__module__.startswith("PIL."):
            return to_tensor(load_image(x, mode="RGB"))[None]  # any mode -> RGB, alpha flattened
        raise InputError(f"predict_mask: image must be a PIL image or a tensor (3, H, W) / (1, 3, H, W) "
                        f"in [0, 1], got {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] != 1:
        raise InputError(f"predict_mask: one image at a time, got a batch of shape {tuple(x.shape)}; "
                         f"call the model directly for batches")
    if x.dim() not in (3, 4):
        raise InputError(f"predict_mask: image must have shape (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-3] != 3:
        hint = " (grayscale? repeat it: x.expand(3, -1, -1))" if x.shape[-3] == 1 else \
            " (RGBA? drop alpha: x[:3])" if x.shape[-3] == 4 else ""
        raise InputError(f"predict_mask: image must have 3 (RGB) channels, got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise InputError(f"predict_mask: image must be a float tensor in [0, 1], got dtype {x.dtype} "
                        f"(for uint8 use image.float() / 255)")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise InputError(f"predict_mask: the image is empty, shape {tuple(x.shape)}")
    lo, hi = x.min().item(), x.max().item()
    if not (lo >= -1e-3 and hi <= 1 + 1e-3):  # also catches NaN
        raise InputError(f"predict_mask: image values must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]"
                         + (" (0-255 values? divide by 255)" if hi > 1.5 else ""))
    return x.reshape(1, 3, *x.shape[-2:])


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """``model`` in eval mode and without gradients inside the block, its own mode restored after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def predict_mask(model: nn.Module, image, size=None, threshold: Optional[float] = 0.5) -> torch.Tensor:
    """Segment one image; returns ``(H, W)`` float at the image's own resolution.

    Args:
        model: a :class:`PSPNet` (or any model ``(1, 3, h, w) -> (1, K, h, w)`` logits);
            run in eval mode and without gradients, its mode restored afterwards.
        image: PIL image (any mode; converted to RGB) or float tensor ``(3, H, W)`` / ``(1, 3, H, W)`` in [0, 1].
        size: ``None`` runs at the image's size; an int scales the longer side to ``size`` and rounds
            both sides to a multiple of the model's output stride; ``(h, w)`` resizes to exactly that.
            The logits are resized back to ``H x W`` before the sigmoid.
        threshold: ``None`` returns the foreground probability map in [0, 1]; a number (default 0.5)
            returns the mask ``probability >= threshold`` as 0./1. floats.

    The foreground probability is ``sigmoid(logit)`` for one class and the softmax probability of
    class 1 for two classes; for more classes use the model's logits directly.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"predict_mask: model must be an nn.Module, got {type(model).__name__}")
    if threshold is not None:
        check_probability(threshold, "predict_mask: threshold (or None)")
    x = _single_image(image)
    h, w = x.shape[-2:]
    param = next(model.parameters(), None)
    x = x.to(param.device if param is not None else "cpu")
    if size is not None:
        stride = getattr(model, "output_stride", 8)
        if isinstance(size, (tuple, list)):
            target = check_size(size, "predict_mask: size")
        else:  # the longer side -> size, both sides a multiple of the output stride
            scale = check_int(size, "predict_mask: size", minimum=1) / max(h, w)
            target = (max(stride, round(h * scale / stride) * stride), max(stride, round(w * scale / stride) * stride))
        if target != (h, w):
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    with _eval_mode(model):
        logits = model(x)
    if isinstance(logits, Mapping):
        logits = logits["out"]
    if logits.dim() != 4 or logits.shape[0] != 1:
        raise InputError(f"predict_mask: the model must return logits (1, K, h, w), got {tuple(logits.shape)}")
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    k = logits.shape[1]
    if k == 1:
        prob = torch.sigmoid(logits[0, 0])
    elif k == 2:
        prob = torch.softmax(logits[0], dim=0)[1]
    else:
        raise InputError(f"predict_mask: the model has {k} classes; a foreground probability needs 1 (sigmoid) "
                         f"or 2 (softmax) -- use model(x).softmax(1) for {k} classes")
    prob = prob.float().cpu()
    return prob if threshold is None else (prob >= threshold).float()


class InferencePSPNet(PSPNet):
    """What :func:`optimize_for_inference` returns: a :class:`PSPNet` that refuses ``train()``."""

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError("PSPNet: this copy was made by optimize_for_inference (BatchNorm folded into "
                               "the convolutions, no auxiliary head); it cannot be trained -- train the original")
        return super().train(False)


def _fold_batchnorm(module: nn.Module) -> int:
    """Fold every BatchNorm2d into the Conv2d registered just before it; returns the count.

    In torchvision's ResNet blocks and in ``nn.Sequential`` a BatchNorm that directly follows a conv in
    registration order is applied to that conv's output (conv1/bn1, conv2/bn2, downsample[0]/[1], ...), which is
    what makes the fold valid; :func:`optimize_for_inference` checks the result numerically.
    """
    folded = 0
    for child in module.children():
        folded += _fold_batchnorm(child)
    children = list(module.named_children())
    for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def optimize_for_inference(model: PSPNet, verbose: bool = True) -> PSPNet:
    """An eval-mode copy of ``model`` for prediction: outputs equal to the eager model's to 1e-4.

    * BatchNorm folded into the preceding convolutions (``torch.nn.utils.fusion.fuse_conv_bn_eval``:
      ``W' = W * gamma / sigma``, ``b' = (b - mu) * gamma / sigma + beta``) -- one pass over memory less per layer;
    * the auxiliary head dropped (it is never used in eval mode);
    * weights in channels_last layout, which oneDNN/cuDNN convolutions prefer.

    ``model`` itself is left unchanged; the copy cannot be trained. It is checked against the eager
    model on a small input; a mismatch beyond ``1e-4 * max(1, |logits|)`` raises (untrained networks
    can have logits in the hundreds, and float32 rounding scales with them).
    """
    if not isinstance(model, PSPNet):
        raise InputError(f"optimize_for_inference: expected a PSPNet, got {type(model).__name__}")
    fast = copy.deepcopy(model).eval()
    fast.__class__ = InferencePSPNet  # same modules and forward; refuses train()
    fast.aux_head = None
    folded = _fold_batchnorm(fast)
    left = [n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise RuntimeError(f"optimize_for_inference: could not fold BatchNorm layer(s) {left}")
    fast = fast.to(memory_format=torch.channels_last)

    probe = torch.rand(2, 3, 37, 29, generator=torch.Generator().manual_seed(0)).to(next(model.parameters()).device)
    with _eval_mode(model):
        ref = model(probe)
        err = (fast(probe) - ref).abs().max().item()
    scale = max(1.0, ref.abs().max().item())
    if not err <= 1e-4 * scale:
        raise RuntimeError(f"optimize_for_inference: the optimised model differs from the eager one by "
                           f"{err:.3g} on a test input (logits up to {scale:.3g})")
    if verbose:
        print(f"optimize_for_inference: folded {folded} BatchNorm layers, dropped the auxiliary head, "
              f"channels_last; max difference {err:.1e} on a test input")
    return fast


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    if not isinstance(model, nn.Module):
        raise InputError(f"count_parameters: model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
