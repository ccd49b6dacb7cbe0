"""Training ESPCN and the deblocking network with the course's one loop, :func:`core.training.fit`: what the
notebooks call with the profile's budget and ``python -m course_lib.superres train`` runs for the shipped weights.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from ..core.checks import check_choice
from ..core.images import rgb_to_y
from ..core.metrics import psnr
from ..core.training import FitResult, data_fingerprint, fit
from .data import PairedPatches
from .degrade import JPEG, Pipeline
from .models import DeblockConfig, DeblockNet, ESPCN, espcn_lecture, espcn_paper

__all__ = ["train_espcn", "train_deblock", "cosine_schedule", "LOSSES", "psnr_metric"]

LOSSES = {"mse": nn.functional.mse_loss, "l1": nn.functional.l1_loss}


def cosine_schedule(steps: int, warmup: int = 0, floor: float = 0.01):
    """``optimizer -> LambdaLR``: linear warm-up, then cosine decay to ``floor`` x the base LR."""
    def factory(opt):
        def factor(step):
            if step < warmup:
                return (step + 1) / warmup
            t = min(1.0, (step - warmup) / max(1, steps - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return factory


def psnr_metric(pred, target):
    """Per-sample PSNR (dB) of outputs clamped to [0, 1], for validation."""
    return psnr(pred.clamp(0, 1), target)


def train_espcn(train_images, scale: int, *, val_images=None, arch: str = "paper", activation: str | None = None,
                steps: int = 2000, batch_size: int = 32, patch_size: int | None = None, lr: float = 1e-3,
                loss: str = "mse", degradation="bicubic", patches_per_image: int = 64, eval_every: int | None = None,
                checkpoint=None, device=None, seed: int = 0, num_workers: int = 0, icnr: bool = False,
                progress: bool = True, accumulate: int = 1, log_dir=None) -> FitResult:
    """Train an ESPCN at ``scale`` on HR images (a folder, list or ``{name: tensor}``).

    ``arch="paper"`` (Y channel, 5-3-3, 64/32, tanh) or ``"lecture"`` (RGB, 5-5-5, 64/64, LeakyReLU, sigmoid);
    ``activation`` overrides the hidden activation. Patches are ``17 r`` HR pixels as in the paper unless
    ``patch_size`` is given. Adam with a cosine-decayed learning rate. ``checkpoint``: a run checkpoint; calling
    again with the same settings resumes, a checkpoint of other settings (data, loss, lr, seed, ``steps``: the
    cosine spans them) is refused. ``accumulate`` and ``log_dir`` go to ``fit`` (gradient accumulation,
    TensorBoard); under ``torchrun`` ``batch_size`` is per process.
    """
    check_choice(arch, ("paper", "lecture"), "train_espcn: arch")
    check_choice(loss, LOSSES, "train_espcn: loss")
    cfg = espcn_paper(scale) if arch == "paper" else espcn_lecture(scale)
    if activation is not None or icnr:
        cfg = type(cfg).from_dict({**cfg.to_dict(), "activation": activation or cfg.activation,
                                   "icnr": icnr or cfg.icnr})
    torch.manual_seed(seed)
    model = ESPCN(cfg)
    y_only = model.in_channels == 1
    patch = patch_size or 17 * scale
    lr_cache = "memory" if isinstance(train_images, Mapping) and degradation in ("bicubic", "gaussian") else None
    train = PairedPatches(train_images, scale, patch, degradation=degradation, y_only=y_only,
                          patches_per_image=patches_per_image, lr_cache=lr_cache)
    val = None
    if val_images is not None:
        val = _frozen(PairedPatches(val_images, scale, max(patch, 32 * scale), degradation=degradation, y_only=y_only,
                                    patches_per_image=4, augment=False, lr_cache="memory" if lr_cache else None), seed)
    run = {"data": data_fingerprint(train_images), "loss": loss, "degradation": degradation,
           "patch_size": patch, "patches_per_image": patches_per_image}
    return _fit(model, LOSSES[loss], train, val, run, steps=steps, eval_every=eval_every, desc=f"ESPCN x{scale}",
                batch_size=batch_size, lr=lr, checkpoint=checkpoint, device=device, seed=seed,
                num_workers=num_workers, progress=progress, accumulate=accumulate, log_dir=log_dir)


def train_deblock(train_images, *, quality=(20, 40), scale: int = 1, val_images=None, channels: int = 1,
                  light: bool = False, steps: int = 2000, batch_size: int = 16, patch_size: int = 48,
                  lr: float = 5e-4, eval_every: int | None = None, checkpoint=None, device=None, seed: int = 0,
                  num_workers: int = 0, progress: bool = True, accumulate: int = 1, log_dir=None) -> FitResult:
    """Train the JPEG deblocking network on (JPEG-compressed LR, clean LR) pairs.

    The clean target is the bicubic LR at ``scale`` (``scale=1``: the image itself); the input is that LR
    JPEG-compressed at a quality drawn from ``quality``. The network learns the residual (compressed -> clean).
    """
    torch.manual_seed(seed)
    model = DeblockNet(DeblockConfig(channels=channels, light=light))
    jpeg = Pipeline([JPEG(quality)])
    data = _JPEGPairs(train_images, scale, patch_size, jpeg, channels)
    val = _frozen(_JPEGPairs(val_images, scale, patch_size, jpeg, channels, n=4), seed) if val_images else None
    run = {"data": data_fingerprint(train_images), "quality": quality, "scale": scale, "patch_size": patch_size}
    return _fit(model, nn.functional.mse_loss, data, val, run, steps=steps, eval_every=eval_every, desc="deblock",
                batch_size=batch_size, lr=lr, checkpoint=checkpoint, device=device, seed=seed,
                num_workers=num_workers, progress=progress, accumulate=accumulate, log_dir=log_dir)


def _fit(model, loss_fn, train, val, run: dict, *, steps: int, eval_every, **fit_kwargs) -> FitResult:
    # ``run``: what defines the run beyond what fit records (a checkpoint of another run is refused)
    warmup = min(100, steps // 20)
    run = {**run, "schedule": f"cosine over {steps} steps, warm-up {warmup}"}
    return fit(model, loss_fn, train, val, steps=steps, scheduler=cosine_schedule(steps, warmup=warmup),
               metrics={"psnr": psnr_metric}, eval_every=eval_every or max(1, steps // 10), run_config=run,
               **fit_kwargs)


class _JPEGPairs(torch.utils.data.Dataset):
    """(JPEG(LR), LR) patch pairs, the JPEG quality drawn per sample."""

    def __init__(self, images, scale, patch, jpeg, channels, n=64):
        self.base = PairedPatches(images, max(scale, 1), patch * max(scale, 1), degradation="bicubic",
                                  patches_per_image=n, lr_cache="memory")
        self.jpeg, self.channels = jpeg, channels

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        lr, _ = self.base[i]
        # JPEG works on 8x8 blocks of the image as stored: quantise to 8 bits like a real file
        clean = (lr * 255).round() / 255
        compressed = self.jpeg(clean, seed=int(torch.randint(0, 2**31 - 1, ())))
        if self.channels == 1:
            clean, compressed = rgb_to_y(clean), rgb_to_y(compressed)
        return compressed, clean


def _frozen(dataset, seed):
    """Materialise a random dataset once (validation must not change between evaluations)."""
    state = torch.get_rng_state()
    torch.manual_seed(seed + 12345)
    items = [dataset[i] for i in range(len(dataset))]
    torch.set_rng_state(state)
    xs, ys = zip(*items)
    return torch.utils.data.TensorDataset(torch.stack(xs), torch.stack(ys))
