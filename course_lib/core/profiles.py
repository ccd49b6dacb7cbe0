"""Run profiles: one notebook, three budgets.

A *profile* is a frozen dataclass of sizes that every notebook reads in its ``parameters`` cell. The
same notebook then runs ``ci`` in seconds on a 2-core CI machine (tiny images, few steps), ``lecture``
in minutes on a laptop CPU, ``full`` at the published sizes on a GPU. ``COURSE_PROFILE`` chooses;
when it is unset, ``full`` is used if CUDA is available and ``lecture`` otherwise.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

__all__ = ["Profile", "PROFILES", "profile", "profile_name"]

ENV_VAR = "COURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Sizes that scale a notebook's work; all counts are upper bounds. ``image_size``: side (pixels) of
    images shown and processed; ``patch_size``: side of HR training patches; ``train_steps``: optimiser
    steps of a training run in a notebook; ``n_train``, ``n_val``, ``n_test``: images used;
    ``optim_steps``: iterations of an optimisation method (Gatys L-BFGS, phase retrieval)."""

    name: str
    image_size: int
    patch_size: int
    batch_size: int
    train_steps: int
    eval_every: int
    n_train: int
    n_val: int
    n_test: int
    optim_steps: int
    num_workers: int

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (``p.replace(train_steps=10)``)."""
        unknown = sorted(set(changes) - set(self.as_dict()))
        if unknown:
            raise TypeError(f"Profile.replace: unknown field(s) {unknown}; valid fields are {list(self.as_dict())}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PROFILES: dict[str, Profile] = {
    "ci": Profile(name="ci", image_size=64, patch_size=24, batch_size=8, train_steps=30, eval_every=15,
                  n_train=8, n_val=4, n_test=16, optim_steps=20, num_workers=0),
    "lecture": Profile(name="lecture", image_size=256, patch_size=51, batch_size=16, train_steps=600,
                       eval_every=200, n_train=24, n_val=4, n_test=256, optim_steps=150, num_workers=0),
    "full": Profile(name="full", image_size=512, patch_size=96, batch_size=64, train_steps=20000,
                    eval_every=1000, n_train=100000, n_val=100, n_test=1024, optim_steps=1000, num_workers=4),
}


def profile_name() -> str:
    """The active profile's name: ``$COURSE_PROFILE`` or the device default."""
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if name:
        if name not in PROFILES:
            raise ValueError(f"{ENV_VAR}={name!r} is not a profile; expected one of {sorted(PROFILES)}")
        return name
    import torch

    return "full" if torch.cuda.is_available() else "lecture"


def profile(name: str | None = None) -> Profile:
    """Return the profile ``name`` (or the active one when ``name`` is None)."""
    name = profile_name() if name is None else name
    if not isinstance(name, str) or name.lower() not in PROFILES:
        raise ValueError(f"profile: name must be one of {sorted(PROFILES)}, got {name!r}")
    return PROFILES[name.lower()]
