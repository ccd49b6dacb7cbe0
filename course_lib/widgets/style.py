"""The style widget: change the style weight and the style layers, re-run a short optimisation (at low
resolution; a button runs it, since each run takes seconds) and see the style-loss reduction.
"""
from __future__ import annotations

from typing import Sequence

from ..core.plotting import show_images

__all__ = ["style_figure", "style_explorer"]


def style_figure(content, style, *, style_weight: float = 1e6, style_layers: Sequence[str] = None,
                 size: int = 96, steps: int = 20, features=None, seed: int = 0):
    """One short Gatys optimisation and its figure; returns ``(figure, result)``."""
    from ..core.checks import InputError, check_number
    from ..style import STYLE_LAYERS, stylize

    layers = STYLE_LAYERS if style_layers is None else tuple(style_layers)
    if not layers:
        raise InputError("style_figure: choose at least one style layer")
    check_number(style_weight, "style_figure: style_weight", low=0.0, low_open=True)
    result = stylize(content, style, size=size, steps=steps, style_weight=style_weight, style_layers=layers,
                     features=features, seed=seed, progress=False)
    gain = result.style_loss_start / max(result.style_loss_end, 1e-12)
    fig = show_images([content, style, result.image],
                      ["content", "style", f"style weight {style_weight:.0e}, layers {', '.join(layers)}\n"
                                           f"style loss {gain:.1f}x lower ({result.weights_used})"],
                      ncols=3, size=3.0, interpolation="antialiased")
    return fig, result


def style_explorer(content, style, *, size: int = 96, steps: int = 20, features=None):
    """Controls for :func:`style_figure`: style weight (log scale), style layers, and a Run button."""
    import ipywidgets as w

    from ..core.plotting import show_in_output
    from ..style import STYLE_LAYERS

    weight = w.FloatLogSlider(value=1e6, base=10, min=2, max=9, step=0.5, description="style weight",
                              continuous_update=False)
    boxes = [w.Checkbox(value=True, description=name, indent=False, layout=w.Layout(width="90px"))
             for name in STYLE_LAYERS]
    run = w.Button(description="Run", button_style="primary")
    out = w.Output()

    def redraw(_=None):
        chosen = [b.description for b in boxes if b.value]
        if not chosen:
            return show_in_output(out, "choose at least one style layer")
        fig, _ = style_figure(content, style, style_weight=weight.value, style_layers=chosen, size=size,
                              steps=steps, features=features)
        show_in_output(out, fig)

    run.on_click(redraw)
    return w.VBox([w.HBox([weight, run]), w.HBox(boxes), out])
