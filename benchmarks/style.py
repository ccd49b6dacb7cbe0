"""Style-transfer benchmarks: seconds per L-BFGS function evaluation, course vs a plain reference, and
frames per second of the fast (feed-forward) network.

The reference (:func:`reference_stylize_step_time`, here and not in the package: only this benchmark
uses it) is written the obvious way, as the PyTorch tutorial: the full VGG19 forward every step with
loss modules inserted after the layers, and the targets' Gram matrices recomputed every step. The
course's ``stylize`` computes the targets once and runs a VGG truncated after the deepest layer it
needs. Same images, sizes, layers and weights in one run; the per-evaluation time of ``stylize`` is
(t(n2) - t(n1)) / (n2 - n1) so that its one-off set-up does not count.

Fast style transfer (Johnson et al.): ``style.fast.frames_per_second`` of the float32 TransformerNet
at width 1 (the paper's) and 0.5 (the lecture notebook's). The int8 path that used to be compared
here was removed in issue 13 (it ran on private oneDNN operators and deprecated quantised tensors).
"""
from __future__ import annotations

import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def reference_stylize_step_time(content: torch.Tensor, style: torch.Tensor, size: int = 128, steps: int = 5,
                                style_weight: float = 1e6, content_weight: float = 1.0,
                                weights: str = "random") -> dict:
    """Seconds per step of the naive tutorial-style loop: ``{"seconds_per_step", "steps", "size", "weights_used"}``."""
    import torchvision

    from course_lib.style import VGGFeatures, as_rgb, gram_matrix

    class Normalization(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1))

        def forward(self, img):
            return (img - self.mean) / self.std

    class Recorder(nn.Module):  # the tutorial's ContentLoss/StyleLoss, without a fixed target
        def forward(self, x):
            self.out = x
            return x

    torch.manual_seed(0)
    vgg = VGGFeatures(["relu5_4"], weights=weights, pooling="max", verbose=False)  # weights only
    cnn = torchvision.models.vgg19(weights=None).features
    cnn.load_state_dict({f"{i}.{k}": v for i, m in enumerate(vgg.features) for k, v in m.state_dict().items()})
    model, content_rec, style_rec, i = nn.Sequential(Normalization()), [], [], 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            layer, name = nn.ReLU(inplace=False), f"relu_{i}"
        else:
            name = f"pool_{i}"
        model.add_module(name, layer)
        if name == "conv_4":
            content_rec.append(Recorder())
            model.add_module(f"content_loss_{i}", content_rec[-1])
        if name in ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"):
            style_rec.append(Recorder())
            model.add_module(f"style_loss_{i}", style_rec[-1])
    model.eval().requires_grad_(False)
    c = F.interpolate(as_rgb(content)[None], size=(size, size), mode="bilinear", align_corners=False)
    s = F.interpolate(as_rgb(style)[None], size=(size, size), mode="bilinear", align_corners=False)
    x = c.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], max_iter=1)

    def closure():
        opt.zero_grad()
        with torch.no_grad():
            model(c)
            c_targets = [r.out.clone() for r in content_rec]
            model(s)
            s_targets = [gram_matrix(r.out) for r in style_rec]
        model(x)
        loss = content_weight * sum(F.mse_loss(r.out, t) for r, t in zip(content_rec, c_targets))
        loss = loss + style_weight * sum(F.mse_loss(gram_matrix(r.out), t) for r, t in zip(style_rec, s_targets))
        loss.backward()
        return loss

    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step(closure)
    dt = (time.perf_counter() - t0) / steps
    return {"seconds_per_step": dt, "steps": steps, "size": size, "weights_used": vgg.weights_used}


def gatys_table(quick: bool = False) -> dict:
    from course_lib.core import datasets
    from course_lib.core.images import to_tensor
    from course_lib.style import CONTENT_LAYERS, STYLE_LAYERS, VGGFeatures, stylize

    photos = datasets.offline_natural_images()
    content, style = to_tensor(photos["chelsea"]), to_tensor(photos["immunohistochemistry"])
    vgg = VGGFeatures(list(STYLE_LAYERS) + list(CONTENT_LAYERS), pooling="avg", verbose=False)
    sizes = (64,) if quick else (256, 512)
    n1, n2 = (1, 3) if quick else (2, 6)
    rows = []
    for size in sizes:
        ref = reference_stylize_step_time(content, style, size=size, steps=2 if quick else 3)
        times = {}
        for n in (n1, n2):
            t0 = time.perf_counter()
            stylize(content, style, size=size, steps=n, features=vgg, progress=False)
            times[n] = time.perf_counter() - t0
        ours = max((times[n2] - times[n1]) / (n2 - n1), 1e-9)
        rows.append({"size (px, longer side)": size, "reference s/eval": ref["seconds_per_step"],
                     "course s/eval": ours, "ratio course/reference": ours / ref["seconds_per_step"],
                     "weights": vgg.weights_used})
    title = "Gatys et al.: seconds per L-BFGS function evaluation (VGG19, conv4_2 + conv1_1..conv5_1)"
    return {"table": {"title": title, "columns": list(rows[0]), "rows": rows},
            "notes": ["Aim (issue 4): course <= 0.7x the reference at the same size and layers.",
                      f"torch threads: {torch.get_num_threads()}"]}


def fast_style(quick: bool = False) -> dict:
    """Frames per second of the TransformerNet (float32, batch 1) at 256/512/1024 px (quick: 64/96/128)."""
    from course_lib.style import TransformerNet, frames_per_second

    sizes, repeats = ((64, 96, 128), 3) if quick else ((256, 512, 1024), 5)
    torch.manual_seed(0)
    nets = {width: TransformerNet(width=width).eval() for width in (1.0, 0.5)}
    load_before = os.getloadavg()[0]
    rows = [{"size (px)": size, **{f"fps, width {w:g}": frames_per_second(net, size, repeats, warmup=1)
                                   for w, net in nets.items()}} for size in sizes]
    load_after = os.getloadavg()[0]
    notes = [f"fps: style.fast.frames_per_second, random input size x size, batch 1, float32 eager, "
             f"{torch.get_num_threads()} threads, median of {repeats} after one warm-up; load average "
             f"{load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} cores): absolute fps are noisy."]
    return {"title": "Fast style transfer: frames per second", "columns": list(rows[0]), "rows": rows,
            "notes": notes}


def run(quick: bool = False) -> dict:
    fast = fast_style(quick)
    gatys = gatys_table(quick)
    return {"tables": [gatys["table"], {k: fast[k] for k in ("title", "columns", "rows")}],
            "notes": gatys["notes"] + fast["notes"]}
