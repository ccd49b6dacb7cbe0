"""Portrait-segmentation benchmarks: speed of the shipped PSPNet and its held-out IoU.

* ms per portrait (batch 1, 3:4 portrait frames whose longer side is 256 and 512 px) for the eager
  model and for ``optimize_for_inference`` (BatchNorm folded, aux head dropped, channels-last), timed
  interleaved in one run (median of the repeats), with the largest logit difference between the two.
* the shipped checkpoint's mean per-image IoU and dataset IoU on the held-out portraits (the
  name-hashed 15 % of the prepared EG1800 folder that training never saw) at the masks' resolution,
  when that folder exists on the machine.
* what the input checks of ``combined_loss`` cost next to its maths (batch 16x1x320x224; issue 13's
  target: at most 10 %), both timed interleaved in one run (fastest of 15 each).
"""
from __future__ import annotations

import time

import torch


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def loss_check_overhead(quick: bool = False) -> dict:
    """ms of ``combined_loss`` (checks + maths) and of its maths alone (``_bce`` + ``_soft_jaccard``)."""
    from course_lib.segmentation.losses import _bce, _soft_jaccard, combined_loss

    g = torch.Generator().manual_seed(0)
    shape = (4, 1, 80, 56) if quick else (16, 1, 320, 224)
    x, t = torch.randn(shape, generator=g), (torch.rand(shape, generator=g) < 0.4).float()

    def maths():
        p_hat, p = x[:, 0], t[:, 0]
        return 0.5 * _bce(p_hat, p, True).mean() + 0.5 * (1 - _soft_jaccard(p_hat, p, True, True, 1e-6))

    times = {"checked": [], "maths": []}
    for _ in range(5 if quick else 15):  # interleaved: both see the same machine state
        for name, f in (("checked", lambda: combined_loss(x, t, 0.5)), ("maths", maths)):
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    checked, alone = min(times["checked"]), min(times["maths"])  # the least disturbed run of each
    return {"batch": "x".join(map(str, shape)), "combined_loss ms": 1000 * checked, "maths alone ms": 1000 * alone,
            "check overhead %": 100 * (checked - alone) / alone}


def run(quick: bool = False) -> dict:
    from course_lib.core.datasets import DatasetUnavailableError
    from course_lib.segmentation import optimize_for_inference, pretrained
    from course_lib.segmentation.portraits import shared_portraits, train_val_split
    from course_lib.segmentation.train import TTA, evaluate_segmentation

    model, sidecar = pretrained()
    model.eval()
    fast = optimize_for_inference(model, verbose=False)
    sizes = ((64, 48),) if quick else ((256, 192), (512, 384))
    repeats = 2 if quick else 7
    rows = []
    for h, w in sizes:
        x = torch.rand(1, 3, h, w)
        times = {"eager": [], "optimised": []}
        with torch.inference_mode():
            diff = float((model(x) - fast(x)).abs().max())
            for _ in range(repeats):  # interleaved: both see the same machine state
                for name, net in (("eager", model), ("optimised", fast)):
                    t0 = time.perf_counter()
                    net(x)
                    times[name].append(time.perf_counter() - t0)
        eager, opt = _median(times["eager"]), _median(times["optimised"])
        rows.append({"portrait (H x W)": f"{h}x{w}", "eager ms": 1000 * eager, "optimised ms": 1000 * opt,
                     "speed-up": eager / opt, "max |logit diff|": diff})
    tables = [{"title": f"Shipped PSPNet ({sidecar['config']['backbone']}, output stride "
                        f"{sidecar['config']['output_stride']}): ms per portrait, batch 1",
               "columns": list(rows[0]), "rows": rows}]
    notes = [f"torch threads: {torch.get_num_threads()}; median of {repeats} interleaved repeats",
             f"shipped checkpoint: {sidecar.get('command', '?')}"]
    row = loss_check_overhead(quick)
    tables.append({"title": "combined_loss: input checks (once, at the entry) vs the maths alone; fastest of "
                            "interleaved runs", "columns": list(row), "rows": [row]})
    try:
        folder = shared_portraits()
    except DatasetUnavailableError:
        notes.append("held-out IoU: skipped (no prepared EG1800 folder on this machine)")
    else:
        _, val = train_val_split(folder, val_fraction=0.15, seed=0)
        size = tuple(sidecar["input_size_hw"])
        t0 = time.perf_counter()
        m = evaluate_segmentation(fast, val, size=size, limit=16 if quick else None, progress=False)
        rows = [{"TTA": "none", "portraits": m["n"], "network input (H x W)": f"{size[0]}x{size[1]}",
                 "mean per-image IoU": m["miou"], "dataset IoU": m["dataset_iou"],
                 "seconds": time.perf_counter() - t0}]
        if not quick:  # test-time augmentation (evaluate --tta): about 5x the time
            t0 = time.perf_counter()
            mt = evaluate_segmentation(fast, val, size=size, progress=False, **TTA)
            rows.append({"TTA": f"flip, scales {list(TTA['scales'])}", "portraits": mt["n"],
                         "network input (H x W)": f"{size[0]}x{size[1]}", "mean per-image IoU": mt["miou"],
                         "dataset IoU": mt["dataset_iou"], "seconds": time.perf_counter() - t0})
        tables.append({"title": "Shipped PSPNet: IoU on held-out real portraits (masks' resolution, threshold 0.5)",
                       "columns": ["TTA", "portraits", "network input (H x W)", "mean per-image IoU", "dataset IoU",
                                   "seconds"],
                       "rows": rows})
        notes.append("Target (issue 5): mean per-image IoU >= 0.95 on real held-out portraits; aim 0.962 "
                     "(MediaPipe selfie segmentation).")
    # the loss experiment of notebook 06 at the lecture profile's size (quick: the ci size)
    from course_lib.segmentation import compare_losses, imbalanced_blobs

    n, side, steps = (32, 32, 10) if quick else (256, 64, 400)
    x, y = imbalanced_blobs(n, side, seed=0)
    x = x.repeat(1, 3, 1, 1)
    n_val = n // 4
    t0 = time.perf_counter()
    rows, _ = compare_losses(torch.utils.data.TensorDataset(x[n_val:], y[n_val:]), (x[:n_val], y[:n_val]),
                             losses=("bce", "jaccard", "combined"), steps=steps, batch_size=16, lr=2e-3, seed=0)
    tables.append({"title": f"Loss experiment (notebook 06): light PSPNet, {n - n_val} training / {n_val} held-out "
                            f"imbalanced_blobs images of {side}x{side} ({100 * float(y.mean()):.1f}% foreground), "
                            f"{steps} steps each, same initial weights",
                   "columns": list(rows[0]), "rows": rows})
    notes.append(f"loss experiment: {time.perf_counter() - t0:.0f} s for the three trainings")
    return {"tables": tables, "notes": notes}
