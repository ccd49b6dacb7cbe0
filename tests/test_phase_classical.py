"""phase.classical (the reference loop) and phase.engines (the fast engine): ER / HIO / RAAR, restarts, errors."""
import numpy as np
import pytest
import torch

from course_lib.phase.classical import (
    STEPS, alternating_projections, available_engines, error_reduction, gerchberg_saxton, hio, hio_step,
    magnitude_error, project_constraints, raar,
)
from course_lib.phase.fourier import add_noise, fourier_magnitude, support_mask, unpad_image
from course_lib.phase.metrics import rotation_invariant_mse


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    """Eight of scikit-learn's 8x8 digits, upscaled to 16x16, in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits().images[[0, 1, 2, 3, 4, 5, 6, 7]] / 16.0
    return torch.from_numpy(np.kron(d, np.ones((2, 2))))[:, None]  # float64 (8, 1, 16, 16)


def np_magnitude_error(images, y, pad):
    x = images[:, 0].numpy()
    H, W = y.shape[-2:]
    a = np.abs(np.fft.fft2(x, s=(H, W), norm="ortho"))
    return np.linalg.norm((a - y[:, 0].numpy()).reshape(len(x), -1), axis=1) / \
        np.linalg.norm(y[:, 0].numpy().reshape(len(x), -1), axis=1)


def test_hio_and_raar_recover_oversampled_digits(digits):
    y = fourier_magnitude(digits.float(), pad=2)
    for algorithm in (hio, raar):
        res = algorithm(y, pad=2, iters=400, restarts=2, seed=0)
        assert res.images.shape == (8, 1, 16, 16) and res.images.dtype == torch.float32
        assert res.history.shape == (400, 8) and res.magnitude_error.shape == (8,)
        mse = rotation_invariant_mse(res.images.double(), digits, register=True)
        assert float(mse.mean()) < 0.01, (algorithm.__name__, mse)
        # the output satisfies the constraints
        assert float(res.images.min()) >= 0 and float(res.images.max()) <= 1
        # the reported magnitude error is what numpy measures
        np.testing.assert_allclose(res.magnitude_error.numpy(), np_magnitude_error(res.images.double(), y.double(), 2),
                                   atol=1e-4)


def test_error_reduction_never_increases_the_magnitude_error(digits):
    y = fourier_magnitude(digits, pad=2)  # float64: the property holds exactly, up to rounding
    res = error_reduction(y, pad=2, iters=150, seed=3)
    steps = res.history[1:] - res.history[:-1]
    assert float(steps.max()) <= 1e-12, float(steps.max())
    assert float((res.history[0] - res.history[-1]).min()) > 0       # and it does decrease
    assert bool((res.magnitude_error <= res.history[-1] + 1e-12).all())
    assert gerchberg_saxton is error_reduction
    # HIO does not have the property: its error goes up at times
    h = hio(y, pad=2, iters=150, seed=3).history
    assert float((h[1:] - h[:-1]).max()) > 1e-6


ALGORITHMS = {"error_reduction": error_reduction, "hio": hio, "raar": raar}


@pytest.mark.parametrize("engine", ["torch", "numba"])
@pytest.mark.parametrize("name", ["error_reduction", "hio", "raar"])
def test_engine_equals_the_reference_loop(digits, name, engine):
    # the engine (rfft, chunks, in-place, numba) against the readable loop of classical.py (full fft2).
    # HIO amplifies rounding differences during its transient (a factor of ~1e5 in 50 iterations),
    # so the exact comparison is made in float64 over 20 iterations (1e-9), and in float32 over 3 (1e-5)
    if engine == "numba":
        pytest.importorskip("numba")
    y = fourier_magnitude(digits[:3], pad=2)
    support = support_mask((16, 16), 2)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 32, 32, generator=g, dtype=torch.float64) * support
    beta = {"error_reduction": 0.8, "hio": 0.8, "raar": 0.9}[name]
    res = ALGORITHMS[name](y, pad=2, iters=20, init=x0, engine=engine, chunk_size=2)
    ref = alternating_projections(y, support, x0, algorithm=name, beta=beta, iters=20)
    torch.testing.assert_close(res.images, unpad_image(ref, 2), atol=1e-9, rtol=0)
    torch.testing.assert_close(res.magnitude_error, magnitude_error(ref, y)[:, 0], atol=1e-9, rtol=0)
    # the history: the magnitude error of the iterate before each step
    u, hist = x0, []
    for _ in range(20):
        hist.append(magnitude_error(u, y)[:, 0])
        u = STEPS[name](u, y, support, beta)
    torch.testing.assert_close(res.history, torch.stack(hist), atol=1e-9, rtol=0)
    # one image (H, W) goes through the same loop
    one = alternating_projections(y[1, 0], support, x0[1, 0], algorithm=name, beta=beta, iters=20)
    torch.testing.assert_close(one, ref[1, 0], atol=1e-12, rtol=0)
    b32 = ALGORITHMS[name](y.float(), pad=2, iters=3, init=x0.float(), history=False, engine=engine).images
    s32 = alternating_projections(y.float(), support, x0.float(), algorithm=name, beta=beta, iters=3)
    torch.testing.assert_close(b32, unpad_image(s32, 2), atol=1e-5, rtol=0)


def test_noisy_magnitudes_batched_equals_full_spectrum(digits):
    # noise makes y lose its symmetry y[-k] = y[k]; the half-spectrum engine must still match
    # the plain full-spectrum loop (which takes the real part of the inverse FFT)
    y = add_noise(fourier_magnitude(digits[:2], pad=2), "poisson", 1.0, seed=0)
    assert float((y - torch.roll(torch.flip(y, (-2, -1)), (1, 1), (-2, -1))).abs().max()) > 1e-3
    support = support_mask((16, 16), 2)
    x0 = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * support
    for algorithm in (hio, raar):
        batched = algorithm(y, pad=2, iters=15, init=x0)
        ref = alternating_projections(y, support, x0, algorithm=algorithm.__name__, beta=batched.beta, iters=15)
        torch.testing.assert_close(unpad_image(ref, 2), batched.images, atol=1e-9, rtol=0)
        np.testing.assert_allclose(batched.magnitude_error.numpy(), np_magnitude_error(batched.images, y, 2),
                                   atol=1e-10)


def test_hio_step_is_one_iteration(digits):
    y = fourier_magnitude(digits[:2], pad=2)[:, 0]
    support = support_mask((16, 16), 2)
    x = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * support
    x0 = x.clone()
    for _ in range(5):
        x = hio_step(x, y, support, beta=0.7)  # batched over the leading dimension too
    z = torch.fft.fft2(x, norm="ortho")
    final = project_constraints(torch.fft.ifft2(y * z / z.abs(), norm="ortho").real, support)
    torch.testing.assert_close(final, alternating_projections(y, support, x0, beta=0.7, iters=5), atol=1e-12, rtol=0)
    # by hand, one step on one pixel outside the support: x - beta x'
    x1 = hio_step(x0[0], y[0], support, beta=0.7)
    xprime = torch.fft.ifft2(y[0] * torch.sgn(torch.fft.fft2(x0[0], norm="ortho")), norm="ortho").real
    assert float(x1[20, 20]) == pytest.approx(float(x0[0, 20, 20] - 0.7 * xprime[20, 20]), abs=1e-12)


def test_restarts_keep_the_lowest_magnitude_error(digits):
    y = fourier_magnitude(digits[:4], pad=2)
    support = support_mask((16, 16), 2)
    res = hio(y, pad=2, iters=60, restarts=3, seed=5)
    # the random starts are drawn in turn from one generator seeded with `seed`
    g = torch.Generator().manual_seed(5)
    starts = [torch.rand(4, 1, 32, 32, generator=g, dtype=torch.float64) * support for _ in range(3)]
    single = [hio(y, pad=2, iters=60, init=s) for s in starts]
    errors = torch.stack([r.magnitude_error for r in single])
    torch.testing.assert_close(res.magnitude_error, errors.min(0).values, atol=1e-12, rtol=0)
    assert torch.equal(res.restart, errors.argmin(0))
    for i in range(4):
        torch.testing.assert_close(res.images[i], single[int(res.restart[i])].images[i])
        torch.testing.assert_close(res.history[:, i], single[int(res.restart[i])].history[:, i])


def test_supports_and_options(digits):
    y = fourier_magnitude(digits[:2].float(), pad=2)
    base = hio(y, pad=2, iters=30)
    # the support on the image grid, or as a full mask, is the default one
    same = hio(y, torch.ones(16, 16, dtype=torch.bool), pad=2, iters=30)
    torch.testing.assert_close(same.images, base.images)
    full = hio(y, support_mask((16, 16), 2)[None, None].expand(2, 1, 32, 32), pad=2, iters=30)
    torch.testing.assert_close(full.images, base.images)
    # a tight support (the true one) forces zeros where the digit is empty
    tight = digits[:2, :, :, :] > 0
    res = error_reduction(y, tight, pad=2, iters=30)
    assert not bool(res.images[~tight].any())
    # chunks and worker threads do not change the result (beyond rounding, which HIO amplifies: float64)
    y64 = y.double()
    ref = hio(y64, pad=2, iters=20).images
    torch.testing.assert_close(hio(y64, pad=2, iters=20, chunk_size=1).images, ref, atol=1e-9, rtol=0)
    torch.set_num_threads(2)  # two worker threads, one chunk each
    try:
        torch.testing.assert_close(hio(y64, pad=2, iters=20, chunk_size=1).images, ref, atol=1e-9, rtol=0)
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(1)
    # no oversampling: no support beyond the frame, still runs
    assert hio(fourier_magnitude(digits[:2].float(), 1), pad=1, iters=10).images.shape == (2, 1, 16, 16)
    # without 'box' values above 1 are allowed, without 'nonneg' negative ones
    free = raar(y, pad=2, iters=30, constraints=("support", "real"))
    assert float(free.images.min()) < 0


def test_bad_inputs_raise_clear_errors(digits):
    y = fourier_magnitude(digits[:2].float(), pad=2)
    with pytest.raises(ValueError, match="y is a Fourier magnitude and must be non-negative"):
        hio(-y)
    nan = y.clone()
    nan[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="y must be finite"):
        hio(nan)
    with pytest.raises(ValueError, match=r"y must have shape \(N, 1, H, W\)"):
        hio(y[:, 0])
    with pytest.raises(ValueError, match="support of size 40x40 is larger than the measurement y"):
        hio(y, torch.ones(40, 40, dtype=torch.bool))
    with pytest.raises(ValueError, match="outside the top-left 16x16 block"):
        hio(y, torch.ones(32, 32, dtype=torch.bool), pad=2)
    with pytest.raises(ValueError, match="not pad=3 times"):
        hio(y, pad=3)
    with pytest.raises(ValueError, match="init must have shape"):
        hio(y, init=torch.rand(2, 1, 20, 20))
    with pytest.raises(ValueError, match=r"beta must be a finite number > 0 and <= 1, got 1.5"):
        hio(y, beta=1.5)
    with pytest.raises(ValueError, match="'real' constraint cannot be dropped"):
        hio(y, constraints=("support", "nonneg"))
    with pytest.raises(ValueError, match="unknown constraint"):
        hio(y, constraints=("support", "real", "sparse"))
    with pytest.raises(ValueError, match="all zeros"):
        hio(torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("constraints", [("support", "real", "nonneg", "box"), ("support", "real"),
                                         ("real", "nonneg")])
def test_numba_engine_equals_torch_engine(digits, dtype, constraints):
    # the fused numba kernels must do exactly what the torch ops do: same iterates, same history
    pytest.importorskip("numba")
    y = fourier_magnitude(digits[:5].to(dtype), pad=2)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for algorithm in (error_reduction, hio, raar):
        a = algorithm(y, pad=2, iters=3, restarts=2, seed=1, constraints=constraints, chunk_size=4,
                      engine="torch")
        b = algorithm(y, pad=2, iters=3, restarts=2, seed=1, constraints=constraints, chunk_size=4,
                      engine="numba")
        assert (a.engine, b.engine) == ("torch", "numba")
        torch.testing.assert_close(b.images, a.images, atol=tol, rtol=0)
        torch.testing.assert_close(b.history, a.history, atol=tol, rtol=0)
        torch.testing.assert_close(b.magnitude_error, a.magnitude_error, atol=tol, rtol=0)
    # a support mask per image, and the default engine picks numba on the CPU
    mask = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.3
    ym = fourier_magnitude(digits[:5].to(dtype) * mask, pad=2)
    a = hio(ym, mask, pad=2, iters=3, seed=2, constraints=constraints, engine="torch")
    b = hio(ym, mask, pad=2, iters=3, seed=2, constraints=constraints)
    assert b.engine == "numba"
    torch.testing.assert_close(b.images, a.images, atol=tol, rtol=0)


def test_numba_engine_recovers_digits_and_validates(digits, monkeypatch):
    pytest.importorskip("numba")
    y = fourier_magnitude(digits.float(), pad=2)
    res = hio(y, pad=2, iters=400, restarts=2, seed=0, engine="numba", history=False)
    assert float(rotation_invariant_mse(res.images.double(), digits, register=True).mean()) < 0.01
    with pytest.raises(ValueError, match="engine must be one of"):
        hio(y, engine="fortran")
    import course_lib.phase._kernels as kernels

    assert available_engines() == ("numba", "torch")
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert available_engines() == ("torch",)
    with pytest.raises(ValueError, match="engine='numba' needs the numba package"):
        hio(y, iters=2, engine="numba")
    assert hio(y, iters=2).engine == "torch"  # 'auto' without numba: the torch path


@pytest.mark.parametrize("shape,pad", [((15, 13), 2), ((16, 16), 1), ((12, 10), 1.5), ((9, 9), 3)])
def test_numba_engine_odd_sizes_and_noisy_magnitudes(shape, pad):
    # odd widths (the half spectrum has W // 2 + 1 columns), fractional and larger padding, no block (pad 1), and
    # noisy magnitudes that are not even (y[-k] != y[k]): the kernels must follow the torch path everywhere
    pytest.importorskip("numba")
    x = torch.rand(5, 1, *shape, generator=torch.Generator().manual_seed(0))
    y = add_noise(fourier_magnitude(x, pad), "poisson", 1.0, seed=0)
    for algorithm in (error_reduction, hio, raar):
        a = algorithm(y, pad=pad, iters=3, chunk_size=2, engine="torch")
        b = algorithm(y, pad=pad, iters=3, chunk_size=2, engine="numba")
        torch.testing.assert_close(b.images, a.images, atol=1e-5, rtol=0)
        torch.testing.assert_close(b.history, a.history, atol=1e-6, rtol=0)


def test_the_benchmarks_numpy_baseline_is_the_reference_loop(digits):
    from benchmarks.phase import hio_numpy

    y = fourier_magnitude(digits[:1], pad=2)[0, 0]
    support = support_mask((16, 16), 2)
    x0 = torch.rand(32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * support
    plain = hio_numpy(y.numpy(), support.numpy(), beta=0.8, iters=20, x0=x0.numpy())
    np.testing.assert_allclose(plain, alternating_projections(y, support, x0, iters=20).numpy(), atol=1e-9)
