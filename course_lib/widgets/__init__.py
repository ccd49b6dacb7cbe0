"""Interactive figures for the lectures (ipywidgets). Each module has a plain
function that draws one static figure (what the executed notebook shows) and
an ``*_explorer()`` that wraps it in controls with ``continuous_update=False``."""


def _explorer(rows, draw):
    """Rows of controls above the figure ``draw()``, drawn again when a control changes (a slider: on release)."""
    import ipywidgets as w

    from ..core.plotting import show_in_output

    out = w.Output()

    def redraw(_=None):
        show_in_output(out, draw())

    for control in (c for row in rows for c in row):
        if hasattr(control, "continuous_update"):
            control.continuous_update = False
        control.observe(redraw, names="value")
    redraw()
    return w.VBox([*(w.HBox(row) for row in rows), out])
