"""Atomic checkpoint writing and safe, explained loading.

A save goes to a temporary file in the same folder, flushed and fsynced, then ``os.replace``-d over
the target: an interrupted save never leaves a half-written checkpoint, the old one stays intact. A
load uses ``weights_only=True``: tensors, numbers, strings, lists and dicts, never arbitrary pickled
code. Shipped weights get a JSON sidecar (:func:`save_pretrained`).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint", "check_state_dict", "save_pretrained",
           "load_pretrained", "as_stored", "atomic_write_text"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the model."""


def _atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result gets an ordinary file's mode
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt included: remove the partial file, keep the old target
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through a temp file + rename (never half-written)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"atomic_save: path must be a str or PathLike, got {type(path).__name__}")
    return _atomic_write(Path(path), lambda fh: torch.save(obj, fh))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically (used for JSON sidecars and results)."""
    return _atomic_write(Path(path), lambda fh: fh.write(text.encode("utf-8")))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save` with ``weights_only=True``; :class:`CheckpointError`
    naming the file when it is missing, empty, truncated, not a torch file, or holds anything but plain data."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_checkpoint: path must be a str or PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); delete it and train again")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError/...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} could not be read ({type(exc).__name__}: {msg}). The file is corrupt "
                              "or truncated, or was not written by course_lib; delete it (training restarts from "
                              "scratch) or restore it from a backup.") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` listing what differs between ``state`` and ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = [f"{what} keys {keys[:8]}{' ...' if len(keys) > 8 else ''}"
             for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    parts += ["shape mismatches: " + "; ".join(shapes[:8])] if shapes else []
    if parts:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + ", ".join(parts))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # a one-element tensor, a numpy scalar
        return value.item()
    return str(value)


_Q_SUFFIX, _SCALE_SUFFIX = ".__int8", ".__scale"


def _dequantize_state(state: Mapping[str, torch.Tensor]) -> dict:
    """float32 tensors from a stored state dict (float16, float32 or int8 + scales)."""
    out = {}
    for k, v in state.items():
        if k.endswith(_SCALE_SUFFIX):
            continue
        if k.endswith(_Q_SUFFIX):
            name = k[: -len(_Q_SUFFIX)]
            scale = state.get(name + _SCALE_SUFFIX)
            if scale is None:
                raise CheckpointError(f"checkpoint: {name} is stored as int8 without its scales")
            out[name] = v.float() * scale.float().reshape(-1, *([1] * (v.dim() - 1)))
        else:
            out[k] = v.float() if v.is_floating_point() else v
    return out


def _stored_state(model: torch.nn.Module, half: bool, int8: bool) -> dict:
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if int8 and v.is_floating_point() and v.dim() >= 2 and v.numel() >= 4096:  # conv and linear weights
            flat = v.float().reshape(v.shape[0], -1)  # symmetric, one float32 scale per output channel
            scale = (flat.abs().amax(dim=1) / 127).clamp_min(1e-12)
            state[k + _Q_SUFFIX] = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(v.shape)
            state[k + _SCALE_SUFFIX] = scale
        else:
            state[k] = v.to(torch.float16) if half and v.is_floating_point() else v
    return state


def as_stored(model: torch.nn.Module, *, half: bool = True, int8: bool = False) -> torch.nn.Module:
    """Give ``model`` (in place) the weights it will have after ``save_pretrained(..., half, int8)`` and loading.

    Measure a model this way before saving it, so that the metrics in the sidecar are those of the
    shipped file (float16 rounding, or int8 with per-channel scales). Returns ``model``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"as_stored: model must be an nn.Module, got {type(model).__name__}")
    device = next(model.parameters(), torch.zeros(())).device
    state = _dequantize_state(_stored_state(model, half, int8))
    model.load_state_dict({k: v.to(device) for k, v in state.items()})
    return model


def save_pretrained(path: str | os.PathLike, model: torch.nn.Module, *, arch: str, config: Mapping[str, Any],
                    meta: Mapping[str, Any] | None = None, half: bool = True, int8: bool = False) -> Path:
    """Save shipped weights plus a JSON sidecar (``<path>.json``).

    ``arch`` names the architecture and ``config`` holds the keyword arguments that rebuild it;
    :func:`load_pretrained` checks both. ``meta`` records how the weights were made (command, data,
    steps, metrics). Weights are stored in float16 when ``half`` (restored to float32 on load).

    ``int8=True`` stores every floating tensor of at least 2 dimensions and 4,096 values (convolution
    and linear weights) as int8 with one float32 scale per output channel (symmetric, ``w ~ scale * q``,
    ``|q| <= 127``): half the size of float16, for networks that would not fit the course's 20 MB per
    checkpoint otherwise. The rounding error is at most ``scale / 2`` per weight (0.4 % of the
    channel's largest weight); measure the model after :func:`load_pretrained`, which restores float32 weights.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"save_pretrained: model must be an nn.Module, got {type(model).__name__}")
    path = Path(path)
    state = _stored_state(model, half, int8)
    atomic_save({"format": FORMAT_VERSION, "arch": arch, "config": dict(config), "state_dict": state}, path)
    sidecar = {"arch": arch, "config": _jsonable(dict(config)), "format": FORMAT_VERSION,
               "dtype": ("int8 weights (per-channel scales), " if int8 else "") + ("float16" if half else "float32"),
               "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "torch": torch.__version__, "bytes": path.stat().st_size, **_jsonable(dict(meta or {}))}
    atomic_write_text(json.dumps(sidecar, indent=2) + "\n", path.with_suffix(path.suffix + ".json"))
    return path


def load_pretrained(path: str | os.PathLike, build, *, arch: str, map_location: Any = "cpu"):
    """Load weights saved by :func:`save_pretrained` into ``build(**config)`` (``build``: the model
    constructor; ``arch`` must match the file's). Returns ``(model, sidecar_dict)``, the model in eval mode."""
    ckpt = load_checkpoint(path, map_location=map_location)
    for key in ("arch", "config", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}; it was not made by save_pretrained")
    if ckpt.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {ckpt['format']}, newer than this course_lib "
                              f"understands ({FORMAT_VERSION}); update course_lib")
    if ckpt["arch"] != arch:
        raise CheckpointError(f"checkpoint {path} holds a {ckpt['arch']!r} model, expected {arch!r}")
    model = build(**ckpt["config"])
    state = _dequantize_state(ckpt["state_dict"])
    check_state_dict(model, state, source=f"checkpoint {path}")
    model.load_state_dict(state)
    model.eval()
    sidecar = Path(str(path) + ".json")
    return model, json.loads(sidecar.read_text()) if sidecar.is_file() else {}
