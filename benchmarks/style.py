"""Style-transfer benchmarks: seconds per L-BFGS function evaluation, course vs a plain reference.

The reference is written the obvious way (as the PyTorch tutorial): the full VGG19 forward every
step with loss modules inserted after the layers and Gram matrices of the targets recomputed every
step (``course_lib.style.gatys.reference_stylize_step_time``). The course's ``stylize`` computes the
targets once and runs a VGG truncated after the deepest layer it needs. Same images, sizes, layers
and weights in one run; per-evaluation time of ``stylize`` is (t(n2) - t(n1)) / (n2 - n1) so that
its one-off set-up does not count.
"""
from __future__ import annotations

import time

import torch


def run(quick: bool = False) -> dict:
    from course_lib.core import datasets
    from course_lib.core.images import to_tensor
    from course_lib.style import CONTENT_LAYERS, STYLE_LAYERS, VGGFeatures, stylize
    from course_lib.style.gatys import reference_stylize_step_time

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
    return {"tables": [{"title": "Gatys et al.: seconds per L-BFGS function evaluation (VGG19, conv4_2 + conv1_1..conv5_1)",
                        "columns": list(rows[0]), "rows": rows}],
            "notes": ["Aim (issue 4): course <= 0.7x the reference at the same size and layers.",
                      f"torch threads: {torch.get_num_threads()}"]}
