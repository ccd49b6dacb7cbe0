"""Core benchmarks: SSIM (course torch implementation vs skimage) and fit() overhead."""
from __future__ import annotations

import time

import numpy as np
import torch


def _time(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool = False) -> dict:
    from skimage.metrics import structural_similarity

    from course_lib.core.metrics import ssim
    from course_lib.core.training import fit

    size = 128 if quick else 512
    rng = np.random.default_rng(0)
    a = rng.random((size, size, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    ta, tb = (torch.from_numpy(x.transpose(2, 0, 1)).float() for x in (a, b))
    repeat = 2 if quick else 5
    t_ours = _time(lambda: ssim(ta, tb), repeat)
    t_sk = _time(lambda: structural_similarity(a, b, data_range=1, channel_axis=2, gaussian_weights=True,
                                               sigma=1.5, use_sample_covariance=False), repeat)
    rows = [{"metric": f"SSIM {size}x{size} RGB", "course (s)": t_ours, "skimage (s)": t_sk,
             "speed-up": t_sk / t_ours}]

    steps = 20 if quick else 200
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 1, 3, padding=1))
    data = torch.utils.data.TensorDataset(torch.rand(256, 1, 32, 32), torch.rand(256, 1, 32, 32))
    res = fit(model, torch.nn.functional.mse_loss, data, steps=steps, batch_size=16, device="cpu",
              progress=False)
    fit_rows = [{"what": "fit(), 2-layer conv, 32x32, batch 16", "steps": steps,
                 "samples/s": res.samples_per_s}]
    return {
        "tables": [
            {"title": "SSIM", "columns": ["metric", "course (s)", "skimage (s)", "speed-up"], "rows": rows},
            {"title": "Training loop throughput", "columns": ["what", "steps", "samples/s"], "rows": fit_rows},
        ],
        "notes": ["Times are the best of several runs after one warm-up."],
    }
