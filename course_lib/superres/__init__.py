"""Unit 1 -- super-resolution: enlarge an image with the best possible quality and sharpness.

Modules: degrade, interpolate, data, models, train, inference, fast, evaluate (see the README's "Layout");
``python -m course_lib.superres {train,evaluate,upscale}``. Shipped weights: :func:`pretrained` loads
``course_lib/checkpoints/espcn_x{2,3,4}.pt`` and ``deblock_y.pt``, whose JSON sidecars record the command, data,
steps and held-out metrics.
"""
from __future__ import annotations

from pathlib import Path

from ..core.checkpoints import CheckpointError, load_pretrained
from ..core.checks import check_choice
from .degrade import PRESETS, degrade, downscale, preset_names
from .evaluate import evaluate_images, sr_methods
from .fast import optimize_for_inference
from .inference import upscale
from .interpolate import METHODS, upscale_interpolate
from .models import DeblockNet, DeblockThenSR, ESPCN, espcn_lecture, espcn_paper, pixel_shuffle

__all__ = ["pretrained", "pretrained_deblock", "CHECKPOINT_DIR", "degrade", "downscale", "PRESETS", "preset_names",
           "upscale_interpolate", "METHODS", "ESPCN", "espcn_paper", "espcn_lecture", "pixel_shuffle", "DeblockNet",
           "DeblockThenSR", "upscale", "optimize_for_inference", "evaluate_images", "sr_methods"]

#: Shipped checkpoints live inside the package so that ``pip install`` (Colab) carries them.
CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
SCALES = (2, 3, 4)


def pretrained(scale: int = 3, with_info: bool = False):
    """The shipped paper ESPCN for ``scale`` (2, 3 or 4), in eval mode; ``with_info=True`` also returns the JSON
    sidecar (command, data, steps, metrics)."""
    check_choice(scale, SCALES, "pretrained: scale")
    path = CHECKPOINT_DIR / f"espcn_x{scale}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"pretrained: no shipped checkpoint {path}; train one with "
                                f"`python -m course_lib.superres train --scale {scale} --out {path}`")
    model, info = load_pretrained(path, ESPCN, arch="espcn")
    if model.scale != scale:
        raise CheckpointError(f"checkpoint {path} is for scale {model.scale}, not {scale}")
    return (model, info) if with_info else model


def pretrained_deblock(with_info: bool = False):
    """The shipped JPEG deblocking network (Y channel), in eval mode."""
    path = CHECKPOINT_DIR / "deblock_y.pt"
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_deblock: no shipped checkpoint {path}; train one with "
                                f"`python -m course_lib.superres train --deblock --out {path}`")
    model, info = load_pretrained(path, DeblockNet, arch="deblock")
    return (model, info) if with_info else model
