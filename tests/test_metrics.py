"""core.metrics against skimage.metrics and hand-computed values."""
import numpy as np
import pytest
import torch
from skimage import data, metrics as skm, color

from course_lib.core.images import to_tensor
from course_lib.core.metrics import mse, psnr, ssim


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    a = data.astronaut()[100:164, 150:230].astype(np.float64) / 255
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    return a, b


def t(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def test_psnr_matches_skimage(pair):
    a, b = pair
    assert float(psnr(t(b), t(a))) == pytest.approx(skm.peak_signal_noise_ratio(a, b, data_range=1), abs=1e-9)
    assert float(psnr(torch.full((1, 4, 4), 0.1), torch.zeros(1, 4, 4))) == pytest.approx(20.0)
    assert float(psnr(t(a), t(a))) == float("inf")


def test_psnr_y_and_shave_follow_the_sr_protocol(pair):
    a, b = pair
    ya, yb = color.rgb2ycbcr(a)[..., 0] / 255, color.rgb2ycbcr(b)[..., 0] / 255
    ref = skm.peak_signal_noise_ratio(ya[3:-3, 3:-3], yb[3:-3, 3:-3], data_range=1)
    assert float(psnr(t(b), t(a), y_channel=True, shave=3)) == pytest.approx(ref, abs=1e-9)
    with pytest.raises(ValueError, match="removes the whole"):
        psnr(t(b), t(a), shave=40)


def test_ssim_matches_skimage(pair):
    a, b = pair
    ref = skm.structural_similarity(a, b, data_range=1, channel_axis=2, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False)
    assert float(ssim(t(b), t(a))) == pytest.approx(ref, abs=1e-9)
    g = color.rgb2gray(a)
    ref_g = skm.structural_similarity(g, g * 0.8 + 0.1, data_range=1, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False)
    assert float(ssim(torch.from_numpy(g * 0.8 + 0.1)[None], torch.from_numpy(g)[None])) == pytest.approx(ref_g, abs=1e-9)
    assert float(ssim(t(a), t(a))) == pytest.approx(1.0)


def test_batched_values_are_per_image(pair):
    a, b = pair
    batch_p, batch_t = torch.stack([t(b), t(a)]), torch.stack([t(a), t(a)])
    out = psnr(batch_p, batch_t)
    assert out.shape == (2,) and out[1] == float("inf")
    s = ssim(batch_p, batch_t)
    assert s.shape == (2,) and float(s[0]) == pytest.approx(float(ssim(t(b), t(a))))
    assert float(mse(t(b), t(a))) == pytest.approx(np.mean((a - b) ** 2))


def test_ssim_is_differentiable():
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    ssim(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(3, 4, 4), torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="needs RGB"):
        psnr(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8), y_channel=True)
    with pytest.raises(TypeError, match="pred must be a torch.Tensor"):
        psnr(np.zeros((4, 4)), torch.zeros(4, 4))
