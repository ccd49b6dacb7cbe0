"""Training the phase-retrieval networks: the loss, the data stream and :func:`train_network`.

:func:`train_network` is what ``python -m course_lib.phase train`` and notebook 09 call:

1. PR-DAD II only: pre-train the sparse auto-encoder on the images alone (``x -> code -> x``,
   :class:`~course_lib.phase.losses.AutoEncoderLoss`), then freeze it;
2. the magnitude network: every step draws new magnitudes (new noise, new augmentation) of the training images
   (:class:`Redrawn` over a :class:`~course_lib.phase.data.PhaseDataset`), the loss is :class:`PhaseLoss`, Adam
   with a cosine learning-rate decay, gradient clipping at 1.

Both stages go through :func:`course_lib.core.training.fit` (progress bars, validation, run checkpoints, resuming).
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Optional

import torch

from ..core import distributed
from ..core.checks import check_choice, check_int, check_number

__all__ = ["PhaseLoss", "forward_with_encoding", "Redrawn", "cosine_schedule", "train_network"]


class PhaseLoss:
    """The training loss: image L2 + L1 against the nearer twin, plus the same on the encoding.

    For each image the target is ``x`` or its 180° rotation, whichever the prediction is closer to in MSE; then
    ``MSE + l1_weight * MAE`` on the image and, for PR-DAD, ``feature_weight`` times the same between the predicted
    encoding (Haar packet coefficients, or the auto-encoder's code) and the encoding of that target. ``output`` is
    ``(image, features)`` (:func:`forward_with_encoding`) or an image.
    """

    def __init__(self, encode=None, l1_weight: float = 1.0, feature_weight: float = 1.0):
        self.encode, self.l1_weight, self.feature_weight = encode, l1_weight, feature_weight

    def __call__(self, output, x):
        image, features = output if isinstance(output, tuple) else (output, None)
        rotated = torch.flip(x, (-2, -1))
        closer_to_twin = (image - rotated).square().flatten(1).mean(1) < (image - x).square().flatten(1).mean(1)
        target = torch.where(closer_to_twin.view(-1, 1, 1, 1), rotated, x)
        mse = (image - target).square().mean()
        mae = (image - target).abs().mean()
        loss = mse + self.l1_weight * mae
        logs = {"mse": mse.detach(), "mae": mae.detach()}
        if features is not None and self.encode is not None and self.feature_weight > 0:
            with torch.no_grad():
                want = self.encode(target)
            f_mse = (features - want).square().mean()
            f_mae = (features - want).abs().mean()
            loss = loss + self.feature_weight * (f_mse + self.l1_weight * f_mae)
            logs["feature_mse"] = f_mse.detach()
        return loss, logs


def forward_with_encoding(model, batch, device):
    """``fit``'s forward: PR-DAD models also return their encoding for :class:`PhaseLoss`."""
    from .prdad import PRDAD1, PRDAD2

    y, x = batch[0].to(device), batch[1].to(device)
    if isinstance(model, PRDAD1):
        return model(y, return_coeffs=True), x
    if isinstance(model, PRDAD2):
        return model(y, return_code=True), x
    return model(y), x


class Redrawn:
    """``repeats`` passes over a :class:`~course_lib.phase.data.PhaseDataset` as one data set.

    Item ``i`` is item ``i % n`` of pass ``i // n``: new noise and augmentation in every pass, and reproducible
    (and exactly resumable by ``fit``) because each item depends only on its index.
    """

    def __init__(self, dataset, repeats: int):
        self.dataset, self.repeats = dataset, max(1, int(repeats))

    def __len__(self) -> int:
        return len(self.dataset) * self.repeats

    def __getitem__(self, index: int):
        n = len(self.dataset)
        return self.dataset.draw(index % n, index // n)


def cosine_schedule(steps: int):
    """``optimizer -> LambdaLR``: the learning rate falls from ``lr`` to 0 along a half cosine over ``steps``."""
    return lambda opt: torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps)))


def train_network(method: str, train_x: torch.Tensor, val_x: Optional[torch.Tensor] = None, *, pad=2, noise=None,
                  steps: int = 3000, batch_size: int = 64, lr: float = 1e-3, augment: float = 0.25,
                  l1_weight: float = 1.0, feature_weight: float = 1.0, ae_steps: Optional[int] = None,
                  sparsity: float = 1e-3, eval_every: Optional[int] = None, checkpoint=None, seed: int = 0,
                  progress: bool = True, device=None, accumulate: int = 1, log_dir=None, **overrides):
    """Build and train an ``'mlp'``, ``'prdad1'`` or ``'prdad2'`` for ``train_x`` images ``(N, 1, s, s)`` in [0, 1].

    pad, noise: the measurement the network will see (``noise``: None, ``'poisson:ALPHA'``, ...). augment:
    probability of each augmentation (0: none). ae_steps: PR-DAD II's auto-encoder pre-training (default
    ``steps // 2``); sparsity: its L1 weight on the code. checkpoint: a run checkpoint path (the auto-encoder's
    goes next to it, ``*_autoencoder.pt``); calling again with it and the same settings resumes, a checkpoint of
    other settings (data, pad, noise, ``steps``: the cosine spans them, ...) is refused. ``overrides``:
    :class:`~course_lib.phase.prdad.PRConfig` fields (e.g. ``hidden=256``). ``accumulate``, ``log_dir``: passed
    to ``fit`` (under ``torchrun`` ``batch_size`` is per process).

    Returns ``(model, result, ae_result)``: the model (``fit``'s, eval mode not set), ``fit``'s result for the
    magnitude network and for the auto-encoder (None unless PR-DAD II). ``result.interrupted`` tells whether it
    stopped early (Ctrl-C / the kernel's stop button).
    """
    from ..core.training import data_fingerprint, fit
    from .data import Augment, PhaseDataset, parse_noise
    from .losses import AutoEncoderLoss
    from .prdad import METHODS, build_model
    from .wavelets import haar_packet

    check_choice(method, METHODS, "train_network: method")
    if not isinstance(train_x, torch.Tensor) or train_x.dim() != 4 or train_x.shape[1] != 1 or len(train_x) < 2:
        raise ValueError(f"train_network: train_x must be at least 2 grey images (N, 1, s, s), got "
                         f"{tuple(train_x.shape) if isinstance(train_x, torch.Tensor) else type(train_x).__name__}")
    size = int(train_x.shape[-1])
    if train_x.shape[-2] != size:
        raise ValueError(f"train_network: the networks take square images, got {train_x.shape[-2]}x{size}")
    if val_x is not None and (not isinstance(val_x, torch.Tensor) or val_x.shape[1:] != train_x.shape[1:]):
        raise ValueError(f"train_network: val_x must be images of the same size as train_x {tuple(train_x.shape[1:])}, "
                         f"got {tuple(val_x.shape) if isinstance(val_x, torch.Tensor) else type(val_x).__name__}")
    check_int(steps, "train_network: steps", minimum=1)
    augment = check_number(augment, "train_network: augment (a probability)", low=0, high=1)
    noise = parse_noise(noise)
    torch.manual_seed(seed)
    model = build_model(method, size, pad, **overrides)
    run_ckpt = Path(checkpoint) if checkpoint is not None else None
    data = data_fingerprint(train_x)  # with fit's own records, what defines each run (another one is refused)
    ae_result = None
    if method == "prdad2":
        ae = model.autoencoder.requires_grad_(True)
        ae_steps = max(1, steps // 2) if ae_steps is None else ae_steps
        ae_val = torch.utils.data.TensorDataset(val_x, val_x) if val_x is not None else None
        ae_ckpt = run_ckpt.with_name(run_ckpt.stem + "_autoencoder" + run_ckpt.suffix) if run_ckpt is not None else None
        ae_run = {"data": data, "model_config": model.config.to_dict(), "sparsity": sparsity,
                  "schedule": f"cosine to 0 over {ae_steps} steps"}
        ae_result = fit(ae, AutoEncoderLoss(sparsity), torch.utils.data.TensorDataset(train_x, train_x), ae_val,
                        steps=ae_steps, batch_size=batch_size, lr=lr, eval_every=eval_every, checkpoint=ae_ckpt,
                        scheduler=cosine_schedule(ae_steps), seed=seed, progress=progress, device=device,
                        accumulate=accumulate, log_dir=None if log_dir is None else Path(log_dir) / "autoencoder",
                        desc="auto-encoder", run_config=ae_run)
        if ae_result.interrupted:
            return model, ae_result, ae_result
        model.freeze_decoder()
    aug = Augment(p=augment) if augment > 0 else False
    train_set = PhaseDataset(train_x, pad, noise, augment=aug, seed=seed)
    # enough passes that fit never starts a second epoch: every item is a fresh draw of noise and augmentation
    per_step = batch_size * accumulate * distributed.world_size()
    train_data = Redrawn(train_set, -(-steps * per_step // len(train_set)))
    val_data = PhaseDataset(val_x, pad, noise, seed=seed + 1) if val_x is not None else None
    encode = (functools.partial(haar_packet, depth=model.depth) if method == "prdad1"
              else model.autoencoder.encode if method == "prdad2" else None)
    loss = PhaseLoss(encode, l1_weight=l1_weight, feature_weight=feature_weight)
    run = {"data": data, "method": method, "model_config": model.config.to_dict(), "noise": noise,
           "augment": augment, "loss_weights": {"l1": l1_weight, "feature": feature_weight},
           "autoencoder": {"steps": ae_steps, "sparsity": sparsity} if method == "prdad2" else None,
           "schedule": f"cosine to 0 over {steps} steps"}
    result = fit(model, loss, train_data, val_data, steps=steps, batch_size=batch_size, lr=lr,
                 eval_every=eval_every, checkpoint=run_ckpt, seed=seed, forward=forward_with_encoding,
                 scheduler=cosine_schedule(steps), grad_clip=1.0, progress=progress, device=device, desc=method,
                 run_config=run, accumulate=accumulate, log_dir=log_dir)
    return result.model, result, ae_result
