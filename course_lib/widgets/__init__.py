"""Interactive figures for the lectures (ipywidgets). Each module has a plain
function that draws one static figure (what the executed notebook shows) and
an ``*_explorer()`` that wraps it in controls with ``continuous_update=False``."""


def _live_output(controls, draw):
    """An ``ipywidgets.Output`` showing the figure ``draw()`` now and again whenever one of ``controls`` changes."""
    import ipywidgets as w

    from ..core.plotting import show_in_output

    out = w.Output()

    def redraw(_=None):
        show_in_output(out, draw())

    for control in controls:
        control.observe(redraw, names="value")
    redraw()
    return out
