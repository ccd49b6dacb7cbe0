"""One-line input checks, shared by every unit (in the style of kornia's ``KORNIA_CHECK_*``).

Where users enter (command lines, data loaders, :func:`~course_lib.core.training.fit`, checkpoint
loading, the functions the notebooks call) arguments are checked once, with these helpers; a bad one
fails with one line that names it and says what was expected::

    >>> check_int(0, "espcn: scale", minimum=2)
    Traceback (most recent call last):
    ...
    course_lib.core.checks.InputError: espcn: scale must be an int >= 2, got 0

Not inside ``forward``, loops or private helpers: the teaching code stays the lecture's equations.
Every helper returns the checked (and normalised) value, so a check is one line.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch

__all__ = ["InputError", "check_int", "check_number", "check_choice", "check_tensor", "check_finite",
           "check_same_shape", "check_size", "check_probability", "make_generator", "ConfigMixin"]


class InputError(ValueError, TypeError):
    """A bad argument, named in the message. Both a ``ValueError`` and a ``TypeError``: a wrong type and
    a wrong value are the same mistake for a user, and callers may catch either."""


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(value, name: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (a bool is not an int here: ``scale=True`` is a bug)."""
    ok = not isinstance(value, bool) and isinstance(value, int)
    if not ok or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f" >= {minimum}" if minimum is not None else "") + (
            f"{' and' if minimum is not None else ''} <= {maximum}" if maximum is not None else "")
        raise InputError(f"{name} must be an int{bounds}, got {_shown(value)}")
    return int(value)


def check_number(value, name: str, *, low: Optional[float] = None, high: Optional[float] = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float within the bounds (``low_open``: ``> low`` instead of ``>= low``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        parts = ([f"{'>' if low_open else '>='} {low}"] if low is not None else []) + (
            [f"{'<' if high_open else '<='} {high}"] if high is not None else [])
        raise InputError(f"{name} must be a finite number{' ' + ' and '.join(parts) if parts else ''}, "
                         f"got {_shown(value)}")
    return float(value)


def check_probability(value, name: str) -> float:
    """A number in [0, 1]."""
    return check_number(value, name, low=0.0, high=1.0)


def check_choice(value, choices: Iterable, name: str):
    """``value`` if it is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {_shown(value)}")
    return value


def check_tensor(x, name: str, *, dims: int | Sequence[int] | None = None, channels: int | Sequence[int] | None = None,
                 shape_hint: str = "", floating: bool = False) -> torch.Tensor:
    """``x`` if it is a non-empty tensor with one of ``dims`` dimensions and ``channels`` at dim -3
    (``shape_hint``, e.g. ``"(N, C, H, W)"``, names the dimensions in the message)."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor {shape_hint}".rstrip() + f", got {type(x).__name__}")
    allowed = (dims,) if isinstance(dims, int) else tuple(dims or ())
    if allowed and x.dim() not in allowed:
        raise InputError(f"{name} must have {' or '.join(map(str, allowed))} dimensions {shape_hint}".rstrip()
                         + f", got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(x.shape)})")
    if floating and not x.is_floating_point():
        raise InputError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if channels is not None:
        allowed_c = (channels,) if isinstance(channels, int) else tuple(channels)
        if x.dim() < 3 or x.shape[-3] not in allowed_c:
            raise InputError(f"{name} must have {' or '.join(map(str, allowed_c))} channel(s) at dim -3, "
                             f"got shape {tuple(x.shape)}")
    return x


def check_finite(x: torch.Tensor, name: str = "image") -> torch.Tensor:
    """``x`` if it holds no NaN or infinity (a NaN pixel would silently become black or a NaN metric)."""
    if (x.is_floating_point() or x.is_complex()) and not bool(torch.isfinite(x).all()):
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        raise InputError(f"{name} must be finite, found {n_nan} NaN and {n_inf} infinite value(s) "
                         f"in a tensor of shape {tuple(x.shape)}")
    return x


def check_same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    """``names`` like ``"psnr: pred and target"``."""
    if a.shape != b.shape:
        raise InputError(f"{names} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_size(size, name: str, minimum: int = 1) -> Tuple[int, int]:
    """An int ``s`` (square) or a pair ``(H, W)`` of ints >= ``minimum``, as ``(H, W)``."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= minimum for s in size)):
        raise InputError(f"{name} must be an int or a pair (H, W) of ints >= {minimum}, got {_shown(size)}")
    return int(size[0]), int(size[1])


def make_generator(seed, name: str) -> Optional[torch.Generator]:
    """``None``, an int seed or a ``torch.Generator`` -> a generator (``None`` stays ``None``)."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(check_int(seed, name, minimum=0))


class ConfigMixin:
    """``from_dict`` / ``to_dict`` for a config dataclass (checkpoint sidecars, run configs). ``to_dict``
    gives JSON types (tuples become lists); ``from_dict`` names any key it does not know -- the usual
    symptom of a checkpoint made by another version."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        if not isinstance(d, Mapping):
            raise InputError(f"{cls.__name__}.from_dict: d must be a mapping, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InputError(f"{cls.__name__}: unknown key(s) {unknown}; known keys are {known}")
        return cls(**d)

    def to_dict(self) -> Dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
