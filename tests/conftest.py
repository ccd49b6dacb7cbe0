import os

import pytest

os.environ.setdefault("COURSE_PROFILE", "ci")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module with one torch op thread, restoring the count afterwards.

    The tensors in most unit tests are tiny: op threads gain nothing on them, and on the 2-core
    CI machine (or a busy laptop) OpenMP threads wait for each other -- a 32x32 FFT measured 10x
    slower with 2 threads. Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
