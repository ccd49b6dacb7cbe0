"""phase.fourier against numpy.fft and hand-built cases."""
import math

import numpy as np
import pytest
import torch

from course_lib.phase.fourier import (
    add_noise, combine_magnitude_phase, dft2_matrix, dft2_sum, dft_matrix, fourier_magnitude, magnitude_phase,
    pad_image, random_magnitude, random_phase, snr_db, support_mask, swap_phase_magnitude, unpad_image,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 12, 10, generator=g, dtype=torch.float64)
    x[..., :3, :] = 0  # some structure: an empty band, as in a digit's frame
    return x


def np_mag(x, shape=None):
    return np.abs(np.fft.fft2(x, s=shape, norm="ortho"))


def test_padding_puts_the_image_top_left_and_support_matches(images):
    xp = pad_image(images, 2)
    assert xp.shape == (3, 1, 24, 20)
    assert torch.equal(xp[..., :12, :10], images) and not bool(xp[..., 12:, :].any()) and not bool(xp[..., 10:].any())
    assert torch.equal(unpad_image(xp, 2), images)
    mask = support_mask((12, 10), 2)
    assert mask.shape == (24, 20) and int(mask.sum()) == 120 and bool(mask[:12, :10].all())
    assert pad_image(torch.ones(1, 1, 32, 32), 1.5).shape == (1, 1, 48, 48)  # PR-DAD's 32 -> 48


def test_fourier_magnitude_matches_numpy_and_parseval(images):
    for pad in (1, 2):
        H, W = 12 * pad, 10 * pad
        ref = np_mag(images.numpy(), (H, W))
        y = fourier_magnitude(images, pad)
        np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)
        np.testing.assert_allclose(y.square().sum((-2, -1)).numpy(), images.square().sum((-2, -1)).numpy(), rtol=1e-12)
    assert fourier_magnitude(images.float(), 2).dtype == torch.float32


def test_magnitude_is_invariant_to_rotation_and_circular_shift_but_not_to_a_mirror(images):
    x = images[0, 0].numpy()
    # no padding: any circular shift, and the 180° rotation
    y1 = np_mag(x)
    np.testing.assert_allclose(np_mag(np.roll(x, (3, -4), (0, 1))), y1, atol=1e-12)
    np.testing.assert_allclose(fourier_magnitude(torch.rot90(images, 2, (-2, -1)), 1)[0, 0].numpy(), y1, atol=1e-12)
    # padded: shifts on the padded grid, and the rotated image placed top-left
    xp = np.zeros((24, 20))
    xp[:12, :10] = x
    y2 = fourier_magnitude(images, 2)[0, 0].numpy()
    np.testing.assert_allclose(np_mag(np.roll(xp, (5, 7), (0, 1))), y2, atol=1e-12)
    np.testing.assert_allclose(fourier_magnitude(torch.rot90(images, 2, (-2, -1)), 2)[0, 0].numpy(), y2, atol=1e-12)
    # a mirror about one axis is NOT an ambiguity: the test above could fail
    assert np.abs(np_mag(x[::-1, :].copy()) - y1).max() > 1e-3


def test_dft_written_out_equals_fft():
    rng = np.random.default_rng(1)
    v = rng.standard_normal(7) + 1j * rng.standard_normal(7)
    for norm in ("ortho", "backward", "forward"):
        np.testing.assert_allclose((dft_matrix(7, norm).numpy() @ v), np.fft.fft(v, norm=norm), atol=1e-12)
    x = rng.random((2, 5, 6))
    np.testing.assert_allclose(dft2_sum(torch.from_numpy(x)).numpy(), np.fft.fft2(x, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(dft2_sum(torch.from_numpy(x), "backward").numpy(),
                               torch.fft.fft2(torch.from_numpy(x)).numpy(), atol=1e-11)
    big = dft2_matrix(5, 6)
    np.testing.assert_allclose((big.numpy() @ x[0].reshape(-1)).reshape(5, 6), np.fft.fft2(x[0], norm="ortho"),
                               atol=1e-12)
    w = dft_matrix(8).numpy()
    np.testing.assert_allclose(w @ w.conj().T, np.eye(8), atol=1e-12)  # unitary
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        dft_matrix(0)
    with pytest.raises(ValueError, match="4096"):
        dft2_matrix(128)


def test_swap_phase_magnitude_twice_gives_the_originals_back(images):
    a, b = images[0], images[1]
    ab, ba = swap_phase_magnitude(a, b)
    assert not ab.is_complex() and ab.shape == a.shape
    fa, fb, fab = (np.fft.fft2(t.numpy(), norm="ortho") for t in (a, b, ab))
    np.testing.assert_allclose(np.abs(fab), np.abs(fa), atol=1e-10)           # magnitude of a
    np.testing.assert_allclose(np.exp(1j * np.angle(fab)), np.exp(1j * np.angle(fb)), atol=1e-8)  # phase of b
    a2, b2 = swap_phase_magnitude(ab, ba)
    torch.testing.assert_close(a2, a, atol=1e-10, rtol=0)
    torch.testing.assert_close(b2, b, atol=1e-10, rtol=0)
    mag, phase = magnitude_phase(a)
    torch.testing.assert_close(combine_magnitude_phase(mag, phase), a, atol=1e-12, rtol=0)


def test_random_phase_and_random_magnitude(images):
    x = images[:2]
    rp = random_phase(x, seed=0)
    torch.testing.assert_close(fourier_magnitude(rp, 1), fourier_magnitude(x, 1), atol=1e-10, rtol=0)
    assert (rp - x).abs().max() > 0.1
    torch.testing.assert_close(random_phase(x, seed=0), rp)  # seeded
    rm = random_magnitude(x, seed=0)
    fx, fr = np.fft.fft2(x.numpy(), norm="ortho"), np.fft.fft2(rm.numpy(), norm="ortho")
    keep = np.abs(fx) > 1e-6
    np.testing.assert_allclose(np.exp(1j * np.angle(fr[keep])), np.exp(1j * np.angle(fx[keep])), atol=1e-6)
    np.testing.assert_allclose(rm.square().sum((-2, -1)).numpy(), x.square().sum((-2, -1)).numpy(), rtol=1e-10)


def test_poisson_noise_statistics():
    # constant magnitudes, unnormalised DFT scale Y = sqrt(M) y: counts = Y_noisy^2 / alpha^2 must be
    # Poisson(Y^2 / alpha^2) (mean = variance = rate); E[Y_noisy^2] = Y^2, Var[Y_noisy^2] = alpha^2 Y^2
    alpha, v = 2.0, 0.1
    y = torch.full((64, 1, 32, 32), v, dtype=torch.float64)
    M = 32 * 32
    rate = M * v * v / alpha ** 2
    noisy = add_noise(y, "poisson", alpha, seed=0)
    counts = (noisy.square() * M / alpha ** 2).numpy()
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)  # whole photons
    assert counts.mean() == pytest.approx(rate, rel=0.01)
    assert counts.var() == pytest.approx(rate, rel=0.03)
    intensity = noisy.square() * M                                                  # Y_noisy^2
    assert float(intensity.mean()) == pytest.approx(M * v * v, rel=0.01)          # unbiased in intensity
    assert float(intensity.var()) == pytest.approx(alpha ** 2 * M * v * v, rel=0.03)
    torch.testing.assert_close(add_noise(y, "poisson", alpha, seed=0), noisy)      # seeded
    torch.manual_seed(3)                                                            # seed=None: global RNG
    first = add_noise(y, "poisson", alpha)
    torch.manual_seed(3)
    torch.testing.assert_close(add_noise(y, "poisson", alpha), first)


def test_poisson_snr_follows_the_photon_count():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 16, 16, generator=g, dtype=torch.float64)
    energy = x.square().sum((-3, -2, -1))
    for pad in (1, 2):
        y = fourier_magnitude(x, pad)
        snr = {a: snr_db(y, add_noise(y, "poisson", a, seed=1)) for a in (0.5, 1.0, 3.0)}
        # many photons per coefficient: Y_noisy ~ Y + N(0, alpha^2 / 4), a noise energy of alpha^2 / 4
        # per image whatever pad, so SNR ~ 10 log10(4 sum(x^2) / alpha^2); the coefficients with few
        # photons add a little more error, so the SNR is at most that and not much less
        for a in (0.5, 1.0):
            expected = 10 * torch.log10(4 * energy / a ** 2)
            assert bool(((snr[a] < expected + 0.3) & (snr[a] > expected - 1.5)).all()), (pad, a, snr[a], expected)
        # the noise amplitude grows like alpha: 3x alpha costs 20 log10(3) = 9.5 dB, a little more where
        # the approximation starts to fail (about 9 photons per coefficient on average at alpha 3 here)
        drop = snr[1.0] - snr[3.0]
        assert bool(((drop > 20 * math.log10(3) - 0.5) & (drop < 20 * math.log10(3) + 2.5)).all()), (pad, drop)


def test_poisson_snr_on_offline_digits_matches_the_references():
    # REFERENCE_RESULTS / PRCGAN: alpha 1 is about 24 dB, alpha 3 about 16 dB (measured: 24.4 and 15.4)
    from course_lib.phase.data import offline_digit_split

    x = offline_digit_split()[1][:500].double()
    for pad in (1, 2):
        y = fourier_magnitude(x, pad)
        for alpha, reference in ((1.0, 24.0), (3.0, 16.0)):
            snr = float(snr_db(y, add_noise(y, "poisson", alpha, seed=0)).mean())
            assert snr == pytest.approx(reference, abs=1.5), (pad, alpha, snr)


def test_gaussian_noise_and_snr_db():
    y = torch.full((4, 1, 16, 16), 10.0, dtype=torch.float64)
    noisy = add_noise(y, "gaussian", 0.5, seed=0)
    assert float((noisy - y).std()) == pytest.approx(0.5, rel=0.05)
    # SNR = 10 log10(||y||^2 / ||n||^2) = 10 log10(100 / 0.25) = 26 dB, per image
    s = snr_db(y, noisy)
    assert s.shape == (4,) and float((s - 10 * math.log10(400)).abs().max()) < 0.6
    ref = 10 * np.log10((y[0].numpy() ** 2).sum() / ((noisy[0] - y[0]).numpy() ** 2).sum())
    assert float(snr_db(y[0], noisy[0])) == pytest.approx(ref)
    assert float(snr_db(y[0], y[0])) == math.inf
    assert float(add_noise(torch.zeros(1, 1, 4, 4), "gaussian", 1.0, seed=0).min()) >= 0  # clipped at 0


def test_bad_inputs_raise_clear_errors(images):
    y = fourier_magnitude(images, 2)
    with pytest.raises(ValueError, match="y is a Fourier magnitude and must be non-negative"):
        add_noise(-y, "poisson", 1.0)
    bad = y.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="y must be finite"):
        add_noise(bad, "gaussian", 0.1)
    with pytest.raises(ValueError, match="kind must be one of"):
        add_noise(y, "speckle", 1.0)
    with pytest.raises(ValueError, match="alpha"):
        add_noise(y, "poisson", 0.0)
    with pytest.raises(ValueError, match="pad must be a number >= 1"):
        fourier_magnitude(images, 0.5)
    with pytest.raises(ValueError, match="not a whole number"):
        pad_image(images, 1.25)  # 1.25 * 10 = 12.5 pixels
    with pytest.raises(ValueError, match="same"):
        swap_phase_magnitude(images[0], images[0, :, :8])
    with pytest.raises(ValueError, match="same shape"):
        snr_db(y, y[:1])
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        fourier_magnitude(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"shape \(the image size\) must be"):
        support_mask((4,), 2)
