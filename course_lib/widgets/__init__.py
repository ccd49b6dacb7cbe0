"""Interactive figures for the lectures (ipywidgets). Each module has a plain
function that draws one static figure (what the executed notebook shows) and
an ``*_explorer()`` that wraps it in controls with ``continuous_update=False``."""
