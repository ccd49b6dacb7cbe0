"""course_lib: the tested library behind the course "Deep learning for imaging".

Notebooks import from here; every model, loss, data pipeline and training loop
that a notebook shows lives in this package and is covered by ``tests/``.

Layout (arrows point one way: notebooks -> units -> core)::

    core/          profiles, device, training loop, checkpoints, images,
                   datasets registry, metrics, plotting
    superres/      unit 1: degradations, interpolation, ESPCN, JPEG deblocking
    exercises/     exercise checks and the student-notebook builder
"""

__version__ = "0.1.0"
