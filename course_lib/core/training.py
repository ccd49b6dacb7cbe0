"""One training loop for every unit of the course.

:func:`fit` trains any model given a loss and data. A unit supplies the model,
the loss and the data; it does not write a loop of its own. The loop gives

* a ``tqdm.auto`` progress bar with the running loss and the last validation
  metrics (a text bar in a terminal, a widget in Jupyter),
* validation every ``eval_every`` steps, collected in a plain-dict history
  (``history["train"]`` and ``history["val"]``, lists of dicts) to plot from,
* mixed precision (float16 + gradient scaling) on CUDA, gradient clipping,
  and a learning-rate scheduler stepped once per optimiser step,
* checkpoints every ``checkpoint_every`` steps and at the end, written
  atomically, and **resume**: call :func:`fit` again with the same
  ``checkpoint`` path and it continues from the last checkpoint. On the CPU
  with a fixed seed a resumed run ends with exactly the weights of an
  uninterrupted one (the data order, the optimiser and scheduler state and
  the random generators are all restored).
* Ctrl-C (Jupyter's "interrupt kernel") is caught: the current state is saved
  and :func:`fit` returns with ``result.interrupted`` set.

Training is counted in optimiser *steps*, not epochs: the data is cycled with a
fresh shuffle each epoch, so budgets are the same whatever the dataset size.
"""
from __future__ import annotations

import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from .checkpoints import CheckpointError, atomic_save, check_state_dict, load_checkpoint
from .device import get_device

__all__ = ["fit", "evaluate", "FitResult", "default_forward"]

CHECKPOINT_KIND = "course_lib.fit"


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    model: torch.nn.Module
    history: dict
    step: int
    interrupted: bool = False
    resumed_from: int = 0
    checkpoint: Path | None = None
    seconds: float = 0.0
    samples_per_s: float = float("nan")
    extra: dict = field(default_factory=dict)

    def last(self, key: str = "loss", split: str = "val"):
        """The last recorded value of ``key`` in ``history[split]`` (None if absent)."""
        for row in reversed(self.history.get(split, [])):
            if key in row:
                return row[key]
        return None


def default_forward(model: torch.nn.Module, batch: Any, device: torch.device):
    """``(x, y) -> (model(x), y)`` with both moved to ``device``."""
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise ValueError(
            "fit: each batch must be a pair (inputs, targets); got "
            f"{type(batch).__name__}{'' if not isinstance(batch, (list, tuple)) else f' of length {len(batch)}'}. "
            "Pass forward=... for another batch format."
        )
    x, y = batch[0], batch[1]
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    return model(x), y


class _EpochSampler(Sampler):
    """A reproducible permutation per epoch that can start mid-epoch (for resume)."""

    def __init__(self, n: int, seed: int, epoch: int, start: int, shuffle: bool):
        self.n, self.seed, self.epoch, self.start, self.shuffle = n, seed, epoch, start, shuffle

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self):
        return iter(self._order()[self.start:])

    def __len__(self) -> int:
        return max(0, self.n - self.start)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32),
                         state["numpy_pos"], state["numpy_gauss"][0], state["numpy_gauss"][1]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _make_optimizer(optimizer, model, lr):
    if optimizer is None:
        return torch.optim.Adam(model.parameters(), lr=lr)
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):
        opt = optimizer(model.parameters())
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"fit: optimizer factory returned {type(opt).__name__}, expected a torch.optim.Optimizer")
        return opt
    raise TypeError("fit: optimizer must be None, a torch.optim.Optimizer, or a callable params -> Optimizer")


def _split_loss(out) -> tuple[torch.Tensor, dict]:
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
        loss, logs = out
    else:
        loss, logs = out, {}
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(
            "fit: loss_fn must return a scalar tensor (or (scalar, dict of logs)); got "
            f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else f' of shape {tuple(loss.shape)}'}"
        )
    return loss.reshape(()), {k: float(v) for k, v in logs.items()}


def _as_loader(data, batch_size, shuffle, num_workers, collate_fn, name):
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                          collate_fn=collate_fn, generator=torch.Generator().manual_seed(0))
    raise TypeError(f"fit: {name} must be a torch Dataset or DataLoader, got {type(data).__name__}")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data,
    loss_fn: Callable | None = None,
    metrics: Mapping[str, Callable] | None = None,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 16,
    forward: Callable = default_forward,
    amp: bool = True,
) -> dict:
    """Average loss and metrics of ``model`` over ``data`` (a Dataset or DataLoader).

    Each metric is ``fn(pred, target) -> tensor`` (a scalar, or one value per
    sample); values are averaged over samples.
    """
    from .device import autocast

    device = get_device(device) if not isinstance(device, torch.device) else device
    loader = _as_loader(data, batch_size, False, 0, None, "val_data")
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    for batch in loader:
        with autocast(device, amp):
            pred, target = forward(model, batch, device)
            n = int(target.shape[0]) if isinstance(target, torch.Tensor) and target.dim() > 0 else 1
            if loss_fn is not None:
                loss, logs = _split_loss(loss_fn(pred, target))
                totals["loss"] = totals.get("loss", 0.0) + float(loss) * n
                for k, v in logs.items():
                    totals[k] = totals.get(k, 0.0) + v * n
        for name, fn in (metrics or {}).items():
            value = fn(pred.float() if isinstance(pred, torch.Tensor) else pred, target)
            value = torch.as_tensor(value, dtype=torch.float64)
            totals[name] = totals.get(name, 0.0) + (float(value.sum()) if value.numel() == n and n > 1
                                                    else float(value.mean()) * n)
        count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the validation data is empty")
    return {k: v / count for k, v in totals.items()}


def fit(
    model: torch.nn.Module,
    loss_fn: Callable,
    train_data,
    val_data=None,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    optimizer=None,
    scheduler=None,
    metrics: Mapping[str, Callable] | None = None,
    eval_every: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    grad_clip: float | None = None,
    amp: bool = True,
    device: torch.device | str | None = None,
    seed: int = 0,
    shuffle: bool = True,
    num_workers: int = 0,
    collate_fn: Callable | None = None,
    forward: Callable = default_forward,
    callback: Callable[[int, dict], None] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` for ``steps`` optimiser steps; resume if ``checkpoint`` exists.

    Parameters
    ----------
    model: the network (moved to ``device``).
    loss_fn: ``loss_fn(pred, target) -> scalar`` or ``(scalar, {name: value})``.
    train_data, val_data: torch Datasets (``fit`` makes the loaders, with a
        reproducible shuffle that survives a resume) or DataLoaders (resume then
        skips the batches already seen in the current epoch; it is exact only
        when that loader's order and samples are deterministic).
    steps: total number of optimiser steps (a resumed run counts from its checkpoint).
    optimizer: None (Adam with ``lr``), an Optimizer, or ``params -> Optimizer``.
    scheduler: None, an LR scheduler, or ``optimizer -> scheduler``; stepped every step.
    metrics: ``{name: fn(pred, target)}`` computed on the validation data.
    eval_every: validate every this many steps (and at the end). Default: steps // 10.
    checkpoint: file path; saved every ``checkpoint_every`` steps (default
        ``eval_every``), at the end, and on Ctrl-C. Loaded when it exists.
    grad_clip: clip the global gradient norm to this value.
    amp: float16 autocast + gradient scaling when on CUDA (ignored on CPU).
    forward: ``forward(model, batch, device) -> (pred, target)``.
    callback: ``callback(step, logs)`` after every step (raise to stop).

    Returns
    -------
    :class:`FitResult` with the trained model and ``history``.
    """
    from .device import autocast

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"fit: model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable, got {type(loss_fn).__name__}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"fit: steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive int, got {batch_size!r}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"fit: grad_clip must be positive or None, got {grad_clip!r}")
    eval_every = eval_every or max(1, steps // 10)
    checkpoint_every = checkpoint_every or eval_every
    device = get_device(device) if not isinstance(device, torch.device) else device
    use_amp = bool(amp and device.type == "cuda")
    ckpt_path = Path(checkpoint) if checkpoint is not None else None

    # --- data -----------------------------------------------------------------
    own_loader = not isinstance(train_data, DataLoader)
    if own_loader:
        if not (hasattr(train_data, "__getitem__") and hasattr(train_data, "__len__")):
            raise TypeError(f"fit: train_data must be a torch Dataset or DataLoader, got {type(train_data).__name__}")
        n_train = len(train_data)
        if n_train < batch_size:
            raise ValueError(
                f"fit: train_data has {n_train} samples, fewer than batch_size={batch_size}; "
                "use a smaller batch or more data"
            )
    elif len(train_data) == 0:
        raise ValueError("fit: the train DataLoader yields no batches")

    def epoch_iter(epoch: int, position: int):
        if own_loader:
            sampler = _EpochSampler(n_train, seed, epoch, position * batch_size, shuffle)
            loader = DataLoader(train_data, batch_size=batch_size, sampler=sampler, drop_last=True,
                                num_workers=num_workers, collate_fn=collate_fn,
                                pin_memory=device.type == "cuda",
                                # Its own generator: creating an iterator then draws the worker
                                # base seed from it, not from the global RNG, so a resumed run
                                # (which creates its iterator mid-epoch) sees the same stream.
                                generator=torch.Generator().manual_seed(seed * 7919 + epoch))
            return iter(loader)
        it = iter(train_data)
        for _ in range(position):
            next(it, None)
        return it

    # --- state ------------------------------------------------------------------
    model.to(device)
    torch.manual_seed(seed)
    opt = _make_optimizer(optimizer, model, lr)
    sched = scheduler(opt) if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, epoch, position = 0, 0, 0
    history: dict[str, list] = {"train": [], "val": []}
    resumed_from = 0

    if ckpt_path is not None and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        if ckpt.get("kind") != CHECKPOINT_KIND:
            raise CheckpointError(f"checkpoint {ckpt_path} was not written by fit(); "
                                  "pass another path or delete the file")
        if ckpt.get("model_class") != type(model).__name__:
            raise CheckpointError(
                f"checkpoint {ckpt_path} holds a {ckpt.get('model_class')} but the model is a "
                f"{type(model).__name__}; pass another checkpoint path or delete the file"
            )
        check_state_dict(model, ckpt["model"], source=f"checkpoint {ckpt_path}")
        model.load_state_dict(ckpt["model"])
        try:
            opt.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"checkpoint {ckpt_path}: optimizer state does not fit ({exc})") from None
        if sched is not None and ckpt.get("scheduler") is not None:
            sched.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step, epoch, position = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["position"])
        history = ckpt["history"]
        _set_rng_state(ckpt["rng"])
        resumed_from = step
        if progress:
            print(f"fit: resumed from {ckpt_path} at step {step}/{steps}")

    def save(reason: str) -> None:
        if ckpt_path is None:
            return
        atomic_save({
            "kind": CHECKPOINT_KIND,
            "model_class": type(model).__name__,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "scaler": scaler.state_dict() if use_amp else None,
            "step": step, "epoch": epoch, "position": position,
            "history": history,
            "rng": _rng_state(),
            "reason": reason,
        }, ckpt_path)

    result = FitResult(model=model, history=history, step=step, resumed_from=resumed_from,
                       checkpoint=ckpt_path)
    if step >= steps:
        if progress:
            print(f"fit: checkpoint {ckpt_path} already holds {step} >= {steps} steps; nothing to train")
        model.eval()
        return result

    def validate() -> dict:
        row = {"step": step, **evaluate(model, val_data, loss_fn, metrics, device=device,
                                          batch_size=batch_size, forward=forward, amp=amp)}
        history["val"].append(row)
        return row

    bar = tqdm(total=steps, initial=step, desc=desc, disable=not progress, dynamic_ncols=True)
    it = epoch_iter(epoch, position)
    t0, samples, running, consistent = time.perf_counter(), 0, None, True
    last_val: dict = {}
    try:
        while step < steps:
            batch = next(it, None)
            if batch is None:
                epoch, position = epoch + 1, 0
                it = epoch_iter(epoch, position)
                continue
            model.train()
            with autocast(device, use_amp):
                pred, target = forward(model, batch, device)
                loss, logs = _split_loss(loss_fn(pred, target))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"fit: the loss became {float(loss.detach())} at step {step + 1}; training stopped. "
                    f"{'The last checkpoint ' + str(ckpt_path) + ' is intact. ' if ckpt_path else ''}"
                    "Try a smaller learning rate or grad_clip."
                )
            lr_used = opt.param_groups[0]["lr"]
            consistent = False  # parameters are about to change
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(opt)
            scaler.update()
            if sched is not None:
                sched.step()
            step, position = step + 1, position + 1
            consistent = True
            n = int(target.shape[0]) if isinstance(target, torch.Tensor) and target.dim() > 0 else batch_size
            samples += n
            value = float(loss.detach())
            running = value if running is None else 0.9 * running + 0.1 * value
            history["train"].append({"step": step, "loss": value, "lr": lr_used, **logs})
            if val_data is not None and (step % eval_every == 0 or step == steps):
                last_val = validate()
            if ckpt_path is not None and (step % checkpoint_every == 0 or step == steps):
                save("periodic" if step < steps else "final")
            bar.update(1)
            bar.set_postfix({"loss": f"{running:.4g}",
                             **{f"val_{k}": f"{v:.4g}" for k, v in last_val.items() if k != "step"}})
            if callback is not None:
                callback(step, {"loss": value, **logs})
    except KeyboardInterrupt:
        result.interrupted = True
        if ckpt_path is not None and consistent:
            save("interrupted")
            print(f"fit: interrupted at step {step}; state saved to {ckpt_path}. "
                  "Call fit again with the same checkpoint to resume.")
        elif ckpt_path is not None:
            print(f"fit: interrupted in the middle of step {step + 1}; the last periodic checkpoint "
                  f"{ckpt_path} is kept (resume continues from it).")
        else:
            print(f"fit: interrupted at step {step}; no checkpoint path was given, so nothing was saved.")
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    result.step = step
    result.seconds = elapsed
    result.samples_per_s = samples / elapsed if elapsed > 0 and samples else float("nan")
    model.eval()
    return result
