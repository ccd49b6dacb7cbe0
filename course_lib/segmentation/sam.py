"""Optional: Segment Anything (Kirillov et al. 2023) prompted on the same portraits, next to the PSPNet.

SAM is a promptable, class-agnostic segmenter: given an image and a box or a point, it returns the mask of "the
thing there". Trained on 11 million images (the PSPNet on 1,149 portraits), it shows what a general model does
without any portrait training, and what a prompt costs (someone, or something, has to draw the box).

Not required by the course: it needs ``pip install segment-anything`` and a SAM checkpoint (:func:`sam_status`
says what is missing), looked up at ``checkpoint=``, ``$COURSE_SAM_CHECKPOINT``, ``<course cache>/sam/`` and torch
hub's checkpoint folder under its official name (:data:`SAM_CHECKPOINTS`). The course does not download it (375 MB
for ViT-B, 2.5 GB for ViT-H): get it from :data:`SAM_URL`.

Prompts: ``"pspnet_box"``, the bounding box of the PSPNet's own mask (fully automatic); ``"true_box"``, that of
the truth (an oracle: what a person drawing a box gives SAM); ``"center_point"``, one positive click at the centre
of the PSPNet's mask.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.checks import check_choice, check_number
from ..core.datasets import cache_dir
from ..core.device import get_device
from .metrics import iou
from .train import _pairs, predict_logits

__all__ = ["SAM_CHECKPOINTS", "SAM_URL", "PROMPTS", "find_sam_checkpoint", "sam_status", "load_sam",
           "box_from_mask", "center_point", "sam_segment", "compare_with_sam"]

#: official checkpoint file names per model type (github.com/facebookresearch/segment-anything)
SAM_CHECKPOINTS = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}
SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
ENV_VAR = "COURSE_SAM_CHECKPOINT"
PROMPTS = ("pspnet_box", "true_box", "center_point")


def _search_dirs():
    return [cache_dir() / "sam", Path(torch.hub.get_dir()) / "checkpoints"]


def find_sam_checkpoint(model_type: str = "vit_b", checkpoint=None) -> Optional[Path]:
    """The SAM checkpoint file to use, or ``None`` when there is none (see the module's doc for the search order).

    An explicit ``checkpoint`` (or ``$COURSE_SAM_CHECKPOINT``) that does not exist is an error, not ``None``:
    a path the user gave must not be silently ignored.
    """
    check_choice(model_type, SAM_CHECKPOINTS, "find_sam_checkpoint: model_type")
    given = checkpoint if checkpoint is not None else (os.environ.get(ENV_VAR, "").strip() or None)
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            source = "checkpoint" if checkpoint is not None else f"${ENV_VAR}"
            raise FileNotFoundError(f"find_sam_checkpoint: {source} = {str(path)!r} is not a file")
        return path
    for d in _search_dirs():
        cand = d / SAM_CHECKPOINTS[model_type]
        if cand.is_file():
            return cand
    return None


def sam_status(model_type: str = "vit_b", checkpoint=None) -> Tuple[bool, str]:
    """``(available, message)``: whether SAM can run here, and what to do if not."""
    check_choice(model_type, SAM_CHECKPOINTS, "sam_status: model_type")
    try:
        import segment_anything  # noqa: F401
    except ImportError:
        return False, ("SAM is not available: the package segment_anything is not installed "
                       "(pip install segment-anything); this section is skipped")
    try:
        path = find_sam_checkpoint(model_type, checkpoint)
    except FileNotFoundError as exc:
        return False, f"SAM is not available: {exc}"
    if path is None:
        name = SAM_CHECKPOINTS[model_type]
        return False, (f"SAM is not available: no checkpoint {name} found (looked in "
                       f"{', '.join(str(d) for d in _search_dirs())}); download {SAM_URL}{name} into one of them "
                       f"or set ${ENV_VAR} to its path; this section is skipped")
    return True, f"SAM {model_type} from {path}"


def load_sam(model_type: str = "vit_b", checkpoint=None, device=None):
    """A ``segment_anything.SamPredictor`` for ``model_type``; a clear error when the package or weights are missing."""
    ok, message = sam_status(model_type, checkpoint)
    if not ok:
        raise RuntimeError(f"load_sam: {message}")
    from segment_anything import SamPredictor, sam_model_registry

    sam = sam_model_registry[model_type](checkpoint=str(find_sam_checkpoint(model_type, checkpoint)))
    sam.to(device=get_device(device))
    sam.eval()
    return SamPredictor(sam)


def _foreground(mask, fn: str, what: str):
    """``(ys, xs, (H, W))``: the foreground pixels of a mask ``(H, W)`` or ``(1, H, W)``, which must have some."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    m = m[0] if m.ndim == 3 and m.shape[0] == 1 else m
    if m.ndim != 2:
        raise ValueError(f"{fn}: mask must be (H, W) or (1, H, W), got shape {tuple(m.shape)}")
    ys, xs = np.nonzero(m > 0.5)
    if ys.size == 0:
        raise ValueError(f"{fn}: the mask is empty (no foreground pixel): there is no {what}")
    return ys, xs, m.shape


def box_from_mask(mask, margin: float = 0.0) -> np.ndarray:
    """``[x0, y0, x1, y1]`` (pixel coordinates, inclusive-exclusive like SAM's boxes) around the foreground.

    ``margin`` widens the box by that fraction of its size on each side, clipped to the image.
    """
    check_number(margin, "box_from_mask: margin", low=0, high=1)
    ys, xs, (h, w) = _foreground(mask, "box_from_mask", "box to draw")
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return np.array([max(0.0, x0 - dx), max(0.0, y0 - dy), min(float(w), x1 + dx), min(float(h), y1 + dy)])


def center_point(mask) -> np.ndarray:
    """``[x, y]`` of a foreground pixel nearest to the foreground's centroid (a centroid can fall outside it)."""
    ys, xs, _ = _foreground(mask, "center_point", "point to click")
    cy, cx = ys.mean(), xs.mean()
    k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return np.array([float(xs[k]), float(ys[k])])


def sam_segment(predictor, image: torch.Tensor, *, box=None, point=None) -> torch.Tensor:
    """SAM's mask ``(1, H, W)`` (0./1.) for ``image`` ``(3, H, W)`` prompted with a ``box`` and/or a positive ``point``.

    SAM proposes three masks for an ambiguous prompt (``multimask_output=True``); the one with the highest
    predicted IoU is kept.
    """
    if box is None and point is None:
        raise ValueError("sam_segment: give a box [x0, y0, x1, y1] and/or a point [x, y] as the prompt")
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"sam_segment: image must be a tensor (3, H, W) in [0, 1], got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    kwargs = {"multimask_output": True}
    if box is not None:
        box = np.asarray(box, dtype=np.float32).reshape(-1)
        if box.shape != (4,) or not (box[2] > box[0] and box[3] > box[1]):
            raise ValueError(f"sam_segment: box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {box.tolist()}")
        kwargs["box"] = box
    if point is not None:
        point = np.asarray(point, dtype=np.float32).reshape(-1)
        if point.shape != (2,):
            raise ValueError(f"sam_segment: point must be [x, y], got {point.tolist()}")
        kwargs["point_coords"] = point[None]
        kwargs["point_labels"] = np.array([1])
    predictor.set_image((image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    masks, scores, _ = predictor.predict(**kwargs)
    best = int(np.argmax(np.asarray(scores)))
    return torch.from_numpy(np.asarray(masks[best], dtype=np.float32))[None]


def compare_with_sam(model: torch.nn.Module, data, predictor, *, size=None, prompts: Sequence[str] = ("pspnet_box",),
                     limit: Optional[int] = None, progress: bool = False) -> dict:
    """Mean per-image IoU of the PSPNet and of SAM with each prompt, on ``data`` (``(image, mask)`` pairs).

    Returns ``{"n": ..., "pspnet": mean IoU, "sam_<prompt>": mean IoU, "per_image": [...]}``. Images whose
    PSPNet mask is empty get no automatic prompt; SAM's IoU is then counted as 0 (it was not given a chance),
    and ``n_no_prompt`` says how many (image, prompt) pairs that happened to.
    """
    if not prompts or any(p not in PROMPTS for p in prompts):
        raise ValueError(f"compare_with_sam: prompts must be a non-empty subset of {PROMPTS}, got {list(prompts)}")
    _, n, get = _pairs(data, limit, "compare_with_sam")
    rows, no_prompt = [], 0
    for i in tqdm(range(n), desc="compare_with_sam", disable=not progress):
        image, truth = get(i)
        logits = predict_logits(model, image[None], size=size)[0]
        ours = (logits > 0).float()  # probability > 0.5, as evaluate_segmentation thresholds
        row = {"index": i, "pspnet": float(iou(logits[None], truth[None], from_logits=True)[0])}
        for prompt in prompts:
            ref = truth if prompt == "true_box" else ours
            if not bool(ref.any()):
                row[f"sam_{prompt}"] = 0.0
                no_prompt += 1
                continue
            given = {"point": center_point(ref)} if prompt == "center_point" else {"box": box_from_mask(ref)}
            row[f"sam_{prompt}"] = float(iou(sam_segment(predictor, image, **given)[None], truth[None]))
        rows.append(row)
    means = {k: float(np.mean([r[k] for r in rows])) for k in ["pspnet"] + [f"sam_{p}" for p in prompts]}
    return {"n": n, "n_no_prompt": no_prompt, "per_image": rows, **means}
