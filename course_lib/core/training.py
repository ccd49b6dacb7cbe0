"""One training loop for every unit of the course.

:func:`fit` trains any model given a loss and data; a unit supplies the model, the loss and the
data, never a loop of its own. Beyond the usual (see its parameters) it gives

* **exact resume**: checkpoints are written atomically, and :func:`fit` called again with the same
  ``checkpoint`` continues from the last one. On the CPU with a fixed seed (and ``num_workers=0``) a
  resumed run ends with exactly the weights of an uninterrupted one: the data order, the optimiser
  and scheduler state and the random generators are all restored.
* **Ctrl-C** (Jupyter's "interrupt kernel") saves the state at the start of the step it interrupted
  (or at its end, if it came after the update) and returns with ``result.interrupted`` set; resuming
  is exact too. A run stopped without that chance (killed, an exception) resumes from its last
  periodic checkpoint.
* **run identity**: resuming a run checkpoint with other settings (see ``run_config``) raises a one-line
  ``CheckpointError`` naming what differs, never a silent reuse of another training's weights.
* **several processes**: under ``torchrun`` the same call trains with ``DistributedDataParallel``
  (see :func:`~course_lib.core.distributed.shard` for the batches); only rank 0 shows the bar and
  writes checkpoints and logs. After a Ctrl-C (no collective is safe then) all ranks resume with rank
  0's random state: the weights and data order are exact, the other ranks' random augmentation is not.

Training is counted in optimiser *steps*, not epochs: the data is cycled with a fresh shuffle each
epoch, so budgets are the same whatever the dataset size.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from . import distributed
from .checks import check_int
from .checkpoints import CheckpointError, _jsonable, atomic_save, check_state_dict, load_checkpoint
from .device import autocast, get_device

__all__ = ["fit", "evaluate", "FitResult", "default_forward", "data_fingerprint", "run_checkpoint_path"]

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
    world_size: int = 1
    global_batch: int = 0
    extra: dict = field(default_factory=dict)

    def last(self, key: str = "loss", split: str = "val"):
        """The last recorded value of ``key`` in ``history[split]`` (None if absent)."""
        return next((row[key] for row in reversed(self.history.get(split, [])) if key in row), None)


def default_forward(model: torch.nn.Module, batch: Any, device: torch.device):
    """``(x, y) -> (model(x), y)`` with both moved to ``device``."""
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        length = f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else ""
        raise ValueError(f"fit: each batch must be a pair (inputs, targets); got {type(batch).__name__}{length}. "
                         "Pass forward=... for another batch format.")
    return model(batch[0].to(device, non_blocking=True)), batch[1].to(device, non_blocking=True)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
            "numpy_gauss": [int(np_state[3]), float(np_state[4])], "python": list(random.getstate())}


def _set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32),
                         state["numpy_pos"], state["numpy_gauss"][0], state["numpy_gauss"][1]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- run identity: the settings are recorded and compared as plain JSON values, flattened to "a.b" keys
def _run_config(model, loss_fn, opt, sched, *, batch_size, seed, shuffle, grad_clip, train_size, extra) -> dict:
    """What defines a training run: what fit knows, then the caller's ``run_config``."""
    group = opt.param_groups[0]
    model_config = getattr(model, "config_dict", None)
    shapes = ";".join(f"{k}{tuple(v.shape)}" for k, v in model.state_dict().items())
    config = {
        "model": type(model).__name__, "model_config": model_config() if callable(model_config) else None,
        "parameter_shapes": hashlib.sha256(shapes.encode()).hexdigest()[:8],
        "loss": getattr(loss_fn, "__name__", type(loss_fn).__name__), "optimizer": type(opt).__name__,
        "lr": group.get("initial_lr", group["lr"]),  # a scheduler has already scaled group["lr"]
        "weight_decay": group.get("weight_decay"), "scheduler": type(sched).__name__ if sched is not None else None,
        "batch_size": batch_size, "seed": seed, "shuffle": shuffle, "grad_clip": grad_clip, "train_size": train_size,
        **dict(extra or {}),
    }
    return _flatten(_jsonable(config))


def _flatten(config: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_run_config(stored, now: Mapping, path: Path) -> None:
    """Raise a one-line :class:`CheckpointError` unless the checkpoint's run had the settings ``now``."""
    fresh = "delete it, or pass another checkpoint path (--checkpoint), to train from scratch"
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"checkpoint {path} does not record the settings of its training (it was written "
                              f"by an older course_lib), so it cannot be resumed safely; {fresh}")

    def show(config, key) -> str:  # in full up to 200 characters (paths differ at the end), else cut in the middle
        text = repr(config[key]) if key in config else "(not recorded)"
        return text if len(text) <= 200 else text[:120] + " ... " + text[-75:]

    absent = object()
    diffs = [f"{key}: {show(stored, key)} in the checkpoint, {show(now, key)} now"
             for key in dict.fromkeys([*now, *stored]) if stored.get(key, absent) != now.get(key, absent)]
    if diffs:
        raise CheckpointError(f"checkpoint {path} belongs to a different training ({'; '.join(diffs)}); {fresh}")


def _existing_path(item) -> Path | None:
    try:
        return Path(item) if isinstance(item, (str, os.PathLike)) and Path(item).exists() else None
    except (OSError, ValueError):  # a string that cannot be a path (too long, a NUL byte)
        return None


def data_fingerprint(source) -> str:
    """A short description of training data that changes when the data does (for ``fit(run_config=...)``).

    A folder: its path, its number of files and a hash of their sorted names and sizes (no file is
    read, so it is cheap for 80k images); a file: its path and a hash of its name and size; tensors
    and PIL images (alone, or in a list or dict): their number and a hash of the values; a string
    that is not a path: itself. Anything else: its type and length.
    ``data_fingerprint({"a": torch.zeros(3, 8, 8)})`` is ``'1 tensor, beba550b'``.
    """
    from PIL import Image

    if not isinstance(source, (str, os.PathLike, torch.Tensor, Image.Image, Mapping, list, tuple)):
        return f"{type(source).__name__}{f' of {len(source)} items' if hasattr(source, '__len__') else ''}"
    root = _existing_path(source)
    if root is None and isinstance(source, (str, os.PathLike)):
        return str(source)
    h, counts = hashlib.sha256(), dict.fromkeys(("files", "tensors", "images", "values"), 0)

    def feed(item) -> None:
        path = _existing_path(item)
        if path is not None:
            files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
            for f in files:
                h.update(f"{f.relative_to(path) if path.is_dir() else f.name}\0{f.stat().st_size}\n".encode())
            counts["files"] += len(files)
        elif isinstance(item, Mapping):
            for key in sorted(item, key=str):
                h.update(f"{key}\0".encode())
                feed(item[key])
        elif isinstance(item, (list, tuple)):
            for value in item:
                feed(value)
        else:
            if isinstance(item, torch.Tensor):
                t = item.detach().cpu().contiguous()
                kind, head, data = "tensors", f"{t.dtype}{tuple(t.shape)}", t.reshape(-1).view(torch.uint8).numpy()
            elif isinstance(item, Image.Image):
                kind, head, data = "images", f"{item.mode}{item.size}", item.tobytes()
            else:
                kind, head, data = "values", repr(item), b""
            h.update(head.encode())
            h.update(data)
            counts[kind] += 1

    feed(source)
    what = ", ".join(f"{n} {kind if n != 1 else kind[:-1]}" for kind, n in counts.items() if n)
    if root is not None:
        what = f"{'folder' if root.is_dir() else 'file'} {root.resolve()} ({what})"
    return f"{what}, {h.hexdigest()[:8]}"


def run_checkpoint_path(checkpoint, out, default: str) -> Path:
    """The run checkpoint of a unit's ``train`` command: ``checkpoint`` (``--checkpoint``) when given,
    else ``<cache>/runs/<default>``. ``default`` should hold ``{run}`` (e.g. ``"espcn_x3_paper-{run}.ckpt"``):
    :func:`fit` replaces it with a hash of the run's settings, so that another training starts afresh in
    its own file. A ``--checkpoint`` that is the ``--out`` file is refused: one would overwrite the other.
    """
    if checkpoint is None:
        from .datasets import cache_dir

        return cache_dir() / "runs" / default
    path = Path(checkpoint)
    if out is not None and path.resolve() == Path(out).resolve():
        raise CheckpointError(f"--checkpoint and --out are the same file {path}: the run checkpoint (for resuming) "
                              "and the trained weights must be two files; pass another --checkpoint or leave it out")
    return path


def _split_loss(out) -> tuple[torch.Tensor, dict]:
    loss, logs = out if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping) else (out, {})
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""
        raise ValueError(f"fit: loss_fn must return a scalar tensor (or (scalar, dict of logs)); "
                         f"got {type(loss).__name__}{shape}")
    return loss.reshape(()), {k: float(v) for k, v in logs.items()}


def _resume(path: Path, model, opt, sched, scaler, config: dict, device, rank: int = 0) -> tuple:
    """Load a run checkpoint of :func:`fit` into the training state; ``(step, epoch, position, history)``."""
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.get("kind") != CHECKPOINT_KIND:
        what = ("holds trained weights (save_pretrained's, like an --out file)" if "state_dict" in ckpt
                else "was not written by fit()")
        raise CheckpointError(f"checkpoint {path} {what}, not a run checkpoint of fit(); pass another checkpoint path")
    if ckpt.get("model_class") != type(model).__name__:
        raise CheckpointError(f"checkpoint {path} holds a {ckpt.get('model_class')} but the model is a "
                              f"{type(model).__name__}; pass another checkpoint path or delete the file")
    check_state_dict(model, ckpt["model"], source=f"checkpoint {path}")
    _check_run_config(ckpt.get("run_config"), config, path)
    model.load_state_dict(ckpt["model"])
    try:
        opt.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: optimizer state does not fit ({exc})") from None
    if sched is not None and ckpt.get("scheduler") is not None:
        sched.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    ranks = ckpt.get("rng_ranks") or []
    _set_rng_state(ranks[rank] if rank < len(ranks) else ckpt["rng"])
    return int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["position"]), ckpt["history"]


def _diverged(loss, step: int, ckpt_path: Path | None, checkpoint_every: int) -> FloatingPointError:
    if ckpt_path is None:
        kept = ""
    elif ckpt_path.is_file():
        kept = f"The last checkpoint {ckpt_path} is intact. "
    else:
        kept = f"No checkpoint was written yet (the first is due at step {checkpoint_every}). "
    return FloatingPointError(f"fit: the loss became {float(loss.detach())} at step {step}; "
                              f"training stopped. {kept}Try a smaller learning rate or grad_clip.")


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, loss_fn: Callable | None = None,
             metrics: Mapping[str, Callable] | None = None, *, device: torch.device | str | None = None,
             batch_size: int = 16, forward: Callable = default_forward, amp: bool = True) -> dict:
    """Average loss and metrics of ``model`` over ``data`` (a Dataset or DataLoader). Each metric is
    ``fn(pred, target) -> tensor`` (a scalar, or one value per sample); values are averaged over samples."""
    device = get_device(device) if not isinstance(device, torch.device) else device
    if not isinstance(data, (DataLoader, Dataset)) and not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise TypeError(f"evaluate: data (fit's val_data) must be a torch Dataset or DataLoader, "
                        f"got {type(data).__name__}")
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size, shuffle=False)
    was_training = model.training
    model.eval()
    totals, count = defaultdict(float), 0
    for batch in loader:
        with autocast(device, amp):
            pred, target = forward(model, batch, device)
            n = int(target.shape[0]) if isinstance(target, torch.Tensor) and target.dim() > 0 else 1
            if loss_fn is not None:
                loss, logs = _split_loss(loss_fn(pred, target))
                totals["loss"] += float(loss) * n
                for k, v in logs.items():
                    totals[k] += v * n
        for name, fn in (metrics or {}).items():
            value = torch.as_tensor(fn(pred.float() if isinstance(pred, torch.Tensor) else pred, target),
                                    dtype=torch.float64)
            totals[name] += float(value.sum()) if value.numel() == n and n > 1 else float(value.mean()) * n
        count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the validation data is empty")
    return {k: v / count for k, v in totals.items()}


def fit(model: torch.nn.Module, loss_fn: Callable, train_data, val_data=None, *, steps: int, batch_size: int = 16,
        lr: float = 1e-3, optimizer=None, scheduler=None, metrics: Mapping[str, Callable] | None = None,
        eval_every: int | None = None, checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
        grad_clip: float | None = None, amp: bool = True, device: torch.device | str | None = None, seed: int = 0,
        shuffle: bool = True, num_workers: int = 0, forward: Callable = default_forward,
        callback: Callable[[int, dict], None] | None = None, progress: bool = True, desc: str = "train",
        run_config: Mapping[str, Any] | None = None, accumulate: int = 1,
        log_dir: str | Path | None = None) -> FitResult:
    """Train ``model`` for ``steps`` optimiser steps (resuming if ``checkpoint`` exists); returns a
    :class:`FitResult` whose ``history["train"]`` and ``history["val"]`` are lists of dicts to plot from.

    Parameters
    ----------
    model: the network (moved to ``device``).
    loss_fn: ``loss_fn(pred, target) -> scalar`` or ``(scalar, {name: value})``.
    train_data, val_data: torch Datasets (``fit`` makes the loaders, with a reproducible shuffle that
        survives a resume) or DataLoaders (resume then skips the batches already seen in the current
        epoch; it is exact only when that loader's order and samples are deterministic).
    steps: total number of optimiser steps (a resumed run counts from its checkpoint).
    optimizer: None (Adam with ``lr``), an Optimizer, or ``params -> Optimizer``.
    scheduler: None, an LR scheduler, or ``optimizer -> scheduler``; stepped every step.
    metrics: ``{name: fn(pred, target)}`` computed on the validation data.
    eval_every: validate every this many steps (and at the end). Default: steps // 10.
    checkpoint: file path; saved every ``checkpoint_every`` steps (default ``eval_every``), at the end,
        and on Ctrl-C. Loaded when it exists, if it was written by the same training (see
        ``run_config``). A ``{run}`` in the path is replaced by a short hash of the run's settings
        (``result.checkpoint`` is the file used).
    grad_clip: clip the global gradient norm to this value.
    amp: float16 autocast + gradient scaling when on CUDA (ignored on CPU).
    forward: ``forward(model, batch, device) -> (pred, target)``.
    callback: ``callback(step, logs)`` after every step (raise to stop).
    accumulate: batches whose gradients are summed before each optimiser step (the global batch is
        ``batch_size * accumulate * processes``).
    log_dir: a folder for TensorBoard's event files (training loss and learning rate every step,
        validation metrics; rank 0 only), or None.
    run_config: what else defines this training, as JSON-like values: the data (e.g.
        :func:`data_fingerprint`), the loss's settings, and the number of steps when the schedule
        depends on it. ``fit`` itself records the model (class, ``config_dict()``, parameter shapes),
        the loss's name, the optimiser and its ``lr`` and weight decay, the scheduler's class,
        ``batch_size``, ``seed``, ``shuffle``, ``grad_clip`` and the size of ``train_data``, not ``steps``:
        with a schedule that does not depend on it, a larger ``steps`` trains the same run longer.
    """
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
    accumulate = check_int(accumulate, "fit: accumulate", minimum=1)
    eval_every = eval_every or max(1, steps // 10)
    checkpoint_every = checkpoint_every or eval_every
    ctx = distributed.context(get_device(device) if not isinstance(device, torch.device) else device)
    device = ctx.device  # on CUDA under torchrun, this process's GPU
    use_amp = bool(amp and device.type == "cuda")
    global_batch = batch_size * accumulate * ctx.world_size

    # --- data -----------------------------------------------------------------
    own_loader = not isinstance(train_data, DataLoader)
    if own_loader and not (hasattr(train_data, "__getitem__") and hasattr(train_data, "__len__")):
        raise TypeError(f"fit: train_data must be a torch Dataset or DataLoader, got {type(train_data).__name__}")
    if own_loader and len(train_data) < global_batch:
        times = f" x {accumulate} accumulated x {ctx.world_size} processes = {global_batch}"
        raise ValueError(f"fit: train_data has {len(train_data)} samples, fewer than batch_size={batch_size}"
                         f"{times if global_batch != batch_size else ''}; use a smaller batch or more data")
    if not own_loader and (ctx.distributed or accumulate > 1):
        raise ValueError("fit: with several processes or accumulate > 1 pass a Dataset (fit cuts the batches), "
                         "not a DataLoader")
    if not own_loader and len(train_data) == 0:
        raise ValueError("fit: the train DataLoader yields no batches")
    if val_data is not None and not isinstance(val_data, DataLoader) and not hasattr(val_data, "__len__"):
        raise TypeError(f"fit: val_data must be a torch Dataset or DataLoader, got {type(val_data).__name__}")

    def epoch_iter(epoch: int, position: int):
        if own_loader:
            # a reproducible permutation per epoch, so that a resumed run can start mid-epoch
            n, gen = len(train_data), torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=gen).tolist() if shuffle else list(range(n))
            sampler = distributed.shard(order, batch_size, ctx, accumulate)[position * batch_size:]
            # its own generator: the worker base seed is drawn from it, not from the global RNG, so a
            # resumed run (which creates its iterator mid-epoch) sees the same stream
            return iter(DataLoader(train_data, batch_size=batch_size, sampler=sampler, drop_last=True,
                                   num_workers=num_workers, pin_memory=device.type == "cuda",
                                   generator=torch.Generator().manual_seed(seed * 7919 + epoch + 104_729 * ctx.rank)))
        return itertools.islice(iter(train_data), position, None)

    # --- state ------------------------------------------------------------------
    model.to(device)
    if ctx.distributed and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics over all GPUs
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ctx.distributed else model  # net trains (DDP averages gradients); model is what is saved
    torch.manual_seed(seed + ctx.rank)
    if optimizer is None:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:  # an Optimizer, or a factory params -> Optimizer (an Optimizer is not callable)
        opt = optimizer(model.parameters()) if callable(optimizer) else optimizer
    if not isinstance(opt, torch.optim.Optimizer):
        made = f" (a factory that returned {type(opt).__name__})" if callable(optimizer) else ""
        raise TypeError("fit: optimizer must be None, a torch.optim.Optimizer, or a callable params -> Optimizer; "
                        f"got {type(optimizer).__name__}{made}")
    sched = scheduler(opt) if callable(scheduler) and not hasattr(scheduler, "step") else scheduler
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, epoch, position = 0, 0, 0
    history: dict[str, list] = {"train": [], "val": []}
    config = _run_config(model, loss_fn, opt, sched, batch_size=batch_size, seed=seed, shuffle=shuffle,
                         grad_clip=grad_clip, train_size=len(train_data), extra=run_config)
    if global_batch != batch_size:  # recorded only when it differs, so single-process run names stay as they were
        config.update({"world_size": ctx.world_size, "accumulate": accumulate, "global_batch": global_batch})
    run = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]  # changes with any setting
    ckpt_path = Path(str(checkpoint).replace("{run}", run)) if checkpoint is not None else None

    if ckpt_path is not None and ckpt_path.exists():
        step, epoch, position, history = _resume(ckpt_path, model, opt, sched, scaler, config, device, ctx.rank)
        if progress and ctx.is_main:
            print(f"fit: resumed from {ckpt_path} at step {step}/{steps}")

    def save(reason: str, rng: dict | None = None, rng_ranks: list | None = None) -> None:
        if not ctx.is_main:  # one writer; every process holds the same weights
            return
        atomic_save({
            "kind": CHECKPOINT_KIND, "model_class": type(model).__name__, "run_config": config,
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "scaler": scaler.state_dict() if use_amp else None,
            "step": step, "epoch": epoch, "position": position, "history": history,
            "rng": rng if rng is not None else _rng_state(), "rng_ranks": rng_ranks,
            "world_size": ctx.world_size, "reason": reason,
        }, ckpt_path)

    result = FitResult(model=model, history=history, step=step, resumed_from=step, checkpoint=ckpt_path,
                       world_size=ctx.world_size, global_batch=global_batch)
    if step >= steps:
        if progress and ctx.is_main:
            print(f"fit: checkpoint {ckpt_path} already holds {step} >= {steps} steps; nothing to train")
        model.eval()
        return result

    def validate() -> dict:
        # the random generators are restored, so that the training does not depend on eval_every or the val data
        rng = _rng_state()
        shared = ctx.distributed and not isinstance(val_data, DataLoader) and len(val_data) >= ctx.world_size
        part = Subset(val_data, range(ctx.rank, len(val_data), ctx.world_size)) if shared else val_data
        try:
            means = evaluate(model, part, loss_fn, metrics, device=device, batch_size=batch_size, forward=forward,
                             amp=amp)
        finally:
            _set_rng_state(rng)
        means = ctx.weighted_means(means, len(part)) if shared else means
        history["val"].append({"step": step, **means})
        if writer is not None:
            for key, value in means.items():
                writer.add_scalar(f"val/{key}", value, step)
        return history["val"][-1]

    writer = None
    if log_dir is not None and ctx.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(log_dir), purge_step=step or None)  # a resumed run replaces later points

    bar = tqdm(total=steps, initial=step, desc=desc, disable=not progress or not ctx.is_main, dynamic_ncols=True)
    it = epoch_iter(epoch, position)
    t0, samples, running, consistent = time.perf_counter(), 0, None, True
    top_rng, last_val = None, {}
    try:
        while step < steps:
            # The consistent point: a Ctrl-C from here until the update saves this random state,
            # so the resumed run draws this step's batch (random crops, noise) and dropout again.
            top_rng = _rng_state()
            opt.zero_grad(set_to_none=True)
            total, logs, lr_used = 0.0, defaultdict(float), opt.param_groups[0]["lr"]
            at_epoch, at_position = epoch, position  # committed after the update (an interrupt redraws)
            for micro in range(accumulate):  # gradients add up over the micro-batches
                batch = next(it, None)
                while batch is None:
                    at_epoch, at_position = at_epoch + 1, 0
                    it = epoch_iter(at_epoch, at_position)
                    batch = next(it, None)
                at_position += 1
                model.train()
                # DDP averages the gradients over the processes in the last micro-batch's backward only
                sync = net.no_sync() if ctx.distributed and micro < accumulate - 1 else nullcontext()
                with sync:
                    with autocast(device, use_amp):
                        pred, target = forward(net, batch, device)
                        loss, micro_logs = _split_loss(loss_fn(pred, target))
                    consistent = False  # the gradients are about to change
                    scaler.scale(loss / accumulate).backward()
                total = total + loss.detach() / accumulate
                for k, v in micro_logs.items():
                    logs[k] += v / accumulate
            total = ctx.mean(total)  # every process sees the same loss, and stops together on a NaN
            if not torch.isfinite(total):
                raise _diverged(total, step + 1, ckpt_path, checkpoint_every)
            if grad_clip is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(opt)
            scaler.update()
            if sched is not None:
                sched.step()
            step, epoch, position = step + 1, at_epoch, at_position
            consistent, top_rng = True, None  # from here on the current state is the consistent one
            n = int(target.shape[0]) if isinstance(target, torch.Tensor) and target.dim() > 0 else batch_size
            samples += n * accumulate * ctx.world_size
            value = float(total)
            running = value if running is None else 0.9 * running + 0.1 * value
            history["train"].append({"step": step, "loss": value, "lr": lr_used, **logs})
            if writer is not None:
                for key, v in {"loss": value, "lr": lr_used, **logs}.items():
                    writer.add_scalar(f"train/{key}", v, step)
            if val_data is not None and (step % eval_every == 0 or step == steps):
                last_val = validate()
            if ckpt_path is not None and (step % checkpoint_every == 0 or step == steps):
                # every process's random state (a collective), so that each resumes its own stream
                save("periodic" if step < steps else "final", rng_ranks=ctx.gather(_rng_state()))
                if writer is not None:
                    writer.flush()
            bar.update(1)
            bar.set_postfix({"loss": f"{running:.4g}",
                             **{f"val_{k}": f"{v:.4g}" for k, v in last_val.items() if k != "step"}})
            if callback is not None:
                callback(step, {"loss": value, **logs})
    except KeyboardInterrupt:
        result.interrupted = True
        if ckpt_path is not None and consistent:
            save("interrupted", rng=top_rng)  # no collective here: the other processes may be gone
            said = (f"fit: interrupted at step {step}; state saved to {ckpt_path}. "
                    "Call fit again with the same checkpoint to resume.")
        elif ckpt_path is not None:
            said = (f"fit: interrupted in the middle of step {step + 1}; the last periodic checkpoint "
                    f"{ckpt_path} is kept (resume continues from it).")
        else:
            said = f"fit: interrupted at step {step}; no checkpoint path was given, so nothing was saved."
        if ctx.is_main:
            print(said)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if not result.interrupted:
        ctx.barrier()  # the last checkpoint is written before any process moves on
    elapsed = time.perf_counter() - t0
    result.step, result.seconds = step, elapsed
    result.samples_per_s = samples / elapsed if elapsed > 0 and samples else float("nan")
    model.eval()
    return result
