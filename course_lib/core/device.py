"""Device choice (cuda -> mps -> cpu), mixed precision, and seeding."""
from __future__ import annotations

import contextlib
import os
import platform
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "autocast", "describe_environment"]


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Pick the best available device: CUDA, then Apple MPS, then CPU (``$COURSE_DEVICE`` overrides).

    ``prefer`` forces a device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); asking for one that
    is not available is an error that says what is.
    """
    prefer = prefer if prefer is not None else os.environ.get("COURSE_DEVICE") or None
    if prefer is not None:
        try:
            dev = torch.device(prefer)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"get_device: prefer={prefer!r} is not a device name ({exc})") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("get_device: CUDA was asked for but is not available here; "
                             "use 'cpu' (or on Colab: Runtime > Change runtime type > GPU)")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError("get_device: MPS was asked for but is not available here; use 'cpu'")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")


def seed_everything(seed: int = 0, deterministic: bool = True) -> int:
    """Seed Python, NumPy and torch so that CPU runs repeat exactly. With ``deterministic=True`` cuDNN
    picks deterministic kernels too (CUDA runs then repeat up to the reduction order of atomics)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed_everything: seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # every device, CUDA included
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed


def autocast(device: torch.device, enabled: bool = True):
    """Mixed precision on CUDA (float16), a no-op context elsewhere."""
    if enabled and torch.device(device).type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def describe_environment() -> dict:
    """Versions, device, threads and profile: what a bug report needs."""
    from . import profiles

    dev = get_device()
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": str(dev),
            "profile": profiles.profile_name()}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except Exception as exc:  # pragma: no cover - reported, not fatal
        info["torchvision"] = f"not importable ({exc})"
    return info
