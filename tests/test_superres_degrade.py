"""Tests of the degradation pipeline and the interpolation baselines.

Each property is checked against an independent reference: PIL's resize
(8-bit and float mode "F"), numpy block means and repeats, scipy's Gaussian
filter, PIL's JPEG codec, and the moments of the noise distributions.
"""
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from skimage import data, filters

from course_lib.core.images import to_tensor
from course_lib.core.metrics import psnr
from course_lib.superres.degrade import (
    JPEG, KERNELS, PRESETS, Downscale, GaussianBlur, GaussianNoise, MotionBlur, Pipeline, PoissonNoise,
    crop_to_multiple, degrade, downscale, gaussian_kernel, motion_blur_kernel, preset_names, resize,
)
from course_lib.superres.interpolate import METHODS, upscale_interpolate

PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
               "lanczos": Image.LANCZOS, "area": Image.BOX}


@pytest.fixture(scope="module")
def astronaut():
    # Odd sides on purpose (509 x 510), so that cropping to a multiple is exercised.
    return data.astronaut()[:509, :510]


def pil_resize_u8(arr, size_hw, kernel):
    return np.array(Image.fromarray(arr).resize((size_hw[1], size_hw[0]), PIL_FILTERS[kernel]))


def pil_resize_float(arr, size_hw, kernel):
    """PIL's float (mode "F") resize, one channel at a time: no 8-bit rounding anywhere."""
    chans = [np.asarray(Image.fromarray(arr[..., c].astype(np.float32)).resize(
        (size_hw[1], size_hw[0]), PIL_FILTERS[kernel])) for c in range(arr.shape[2])]
    return np.stack(chans, -1)


def as_u8(t):
    """(C, H, W) tensor in [0, 1] -> (H, W, C) uint8, rounded like PIL."""
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def hwc(t):
    return t.permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------------
# Resampling against PIL
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_downscale_matches_pil(astronaut, scale):
    h, w = astronaut.shape[0] // scale * scale, astronaut.shape[1] // scale * scale
    ref = pil_resize_u8(astronaut[:h, :w], (h // scale, w // scale), "bicubic")
    lr = downscale(to_tensor(astronaut), scale, "bicubic")
    assert lr.shape == (3, h // scale, w // scale)
    got = as_u8(lr)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    value = psnr(torch.from_numpy(got).float() / 255, torch.from_numpy(ref).float() / 255)
    assert value > 55.0, f"x{scale}: {float(value):.2f} dB vs PIL"


def test_bicubic_mean_psnr_vs_pil_over_scales(astronaut):
    values = []
    for scale in (2, 3, 4):
        h, w = astronaut.shape[0] // scale * scale, astronaut.shape[1] // scale * scale
        ref = to_tensor(pil_resize_u8(astronaut[:h, :w], (h // scale, w // scale), "bicubic"))
        got = to_tensor(as_u8(degrade(to_tensor(astronaut), scale, "bicubic")))
        values.append(float(psnr(got, ref)))
    assert np.mean(values) > 55.0, values


def test_pil_input_gives_pil_output_equal_to_pil_bicubic(astronaut):
    img = Image.fromarray(astronaut)
    lr = degrade(img, 4)
    assert isinstance(lr, Image.Image) and lr.mode == "RGB" and lr.size == (510 // 4, 509 // 4)
    ref = pil_resize_u8(astronaut[:508, :508], (127, 127), "bicubic")
    assert np.abs(np.asarray(lr).astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("kernel", ["bilinear", "bicubic", "lanczos"])
@pytest.mark.parametrize("size", [(20, 13), (96, 120)])  # shrink by a non-integer factor, and enlarge
def test_float_resize_equals_pil_float_mode(kernel, size):
    # Values in [0.3, 0.7]: the kernels' overshoot never reaches 0 or 1, so no
    # clipping happens and the result must equal PIL's float resize.
    rng = np.random.default_rng(0)
    arr = (0.3 + 0.4 * rng.random((48, 40, 3))).astype(np.float32)
    got = hwc(resize(torch.from_numpy(arr).permute(2, 0, 1), size, kernel))
    ref = pil_resize_float(arr, size, kernel)
    np.testing.assert_allclose(got, ref, atol=2e-5)


@pytest.mark.parametrize("kernel", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(20, 13), (96, 120)])
def test_hand_written_weights_equal_pil_and_interpolate(kernel, size):
    # The readable PIL weights (degrade._resample_weights, Keys' cubic with a = -0.5) give PIL's float
    # resize, and F.interpolate(antialias=True), which resize() runs for speed, gives the same.
    from course_lib.superres.degrade import _resample_axis

    rng = np.random.default_rng(0)
    arr = (0.3 + 0.4 * rng.random((48, 40, 3))).astype(np.float32)
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].double()
    by_hand = _resample_axis(_resample_axis(x, size[1], -1, kernel, True, by_hand=True), size[0], -2, kernel, True,
                             by_hand=True)
    np.testing.assert_allclose(hwc(by_hand[0]), pil_resize_float(arr, size, kernel), atol=2e-5)
    fast = _resample_axis(_resample_axis(x, size[1], -1, kernel, True), size[0], -2, kernel, True)
    assert (fast - by_hand).abs().max() < 1e-6


@pytest.mark.parametrize("scale", [2, 3])
def test_lanczos_downscale_and_upscale_match_pil(astronaut, scale):
    arr = astronaut[:120, 200:330]
    h, w = arr.shape[0] // scale * scale, arr.shape[1] // scale * scale
    ref = pil_resize_u8(arr[:h, :w], (h // scale, w // scale), "lanczos")
    got = as_u8(downscale(to_tensor(arr), scale, "lanczos"))
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    up_ref = pil_resize_u8(ref, (ref.shape[0] * scale, ref.shape[1] * scale), "lanczos")
    up = as_u8(upscale_interpolate(to_tensor(ref), scale, "lanczos"))
    assert np.abs(up.astype(int) - up_ref.astype(int)).max() <= 1


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_upscale_matches_pil(astronaut, method):
    lr = pil_resize_u8(astronaut[:300, :300], (100, 100), "bicubic")
    ref = pil_resize_u8(lr, (300, 300), method)
    got = as_u8(upscale_interpolate(to_tensor(lr), 3, method))
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_area_is_block_mean():
    rng = np.random.default_rng(1)
    arr = rng.random((2, 3, 30, 24)).astype(np.float32)
    got = downscale(torch.from_numpy(arr), 3, "area").numpy()
    ref = arr.reshape(2, 3, 10, 3, 8, 3).mean(axis=(3, 5))
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_nearest_downscale_keeps_pil_pixels(astronaut):
    arr = astronaut[:120, :120]
    got = as_u8(downscale(to_tensor(arr), 4, "nearest"))
    assert np.array_equal(got, pil_resize_u8(arr, (30, 30), "nearest"))
    assert np.array_equal(got, arr[2::4, 2::4])  # the pixel at s // 2 in each block


def test_nearest_upscale_is_repeat():
    rng = np.random.default_rng(2)
    arr = rng.random((3, 7, 5)).astype(np.float32)
    got = upscale_interpolate(torch.from_numpy(arr), 3, "nearest").numpy()
    np.testing.assert_array_equal(got, np.repeat(np.repeat(arr, 3, axis=1), 3, axis=2))


@pytest.mark.parametrize("method", METHODS)
def test_upscale_shapes_range_and_pil_round_trip(method):
    x = torch.rand(2, 3, 9, 7)
    y = upscale_interpolate(x, 4, method)
    assert y.shape == (2, 3, 36, 28) and y.min() >= 0 and y.max() <= 1
    img = upscale_interpolate(Image.new("L", (7, 9), 128), 2, method)
    assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (14, 18)


def test_crop_to_multiple_keeps_top_left():
    x = torch.rand(3, 65, 50)
    y = crop_to_multiple(x, 4)
    assert y.shape == (3, 64, 48) and torch.equal(y, x[:, :64, :48])


# ---------------------------------------------------------------------------
# Blur
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.5, 1.3, 2.7])
def test_isotropic_blur_equals_scipy_gaussian_filter(sigma):
    rng = np.random.default_rng(3)
    arr = rng.random((3, 40, 33))
    k = gaussian_kernel(sigma, dtype=torch.float64)
    assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-12)
    radius = k.shape[0] // 2
    got = GaussianBlur(sigma)(torch.from_numpy(arr), seed=0).numpy()
    # scipy's "mirror" is the border of core.filters.gaussian_blur, so the whole image agrees, not only the interior.
    ref = np.stack([ndimage.gaussian_filter(a, sigma, mode="mirror", radius=radius) for a in arr])
    np.testing.assert_allclose(got, ref, atol=1e-6)
    # skimage (truncate=4 by default, so compare away from the borders where its weights differ slightly)
    sk = filters.gaussian(arr, sigma=sigma, channel_axis=0, truncate=radius / sigma + 1e-9, mode="reflect",
                          preserve_range=True)
    np.testing.assert_allclose(got[:, radius:-radius, radius:-radius], sk[:, radius:-radius, radius:-radius],
                               atol=1e-6)


@pytest.mark.parametrize("sx,sy,angle", [(3.0, 1.0, 30.0), (1.0, 2.5, -75.0), (2.0, 2.0, 10.0)])
def test_anisotropic_kernel_has_the_right_covariance(sx, sy, angle):
    k = gaussian_kernel(sx, sy, angle, truncate=6.0, dtype=torch.float64).numpy()
    assert math.isclose(k.sum(), 1.0, rel_tol=1e-12)
    r = k.shape[0] // 2
    rows, cols = np.mgrid[-r:r + 1, -r:r + 1]
    # Expected: R diag(sx^2, sy^2) R^T in (x, up) coordinates, with "up" = -row.
    t = np.deg2rad(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    cov = rot @ np.diag([sx ** 2, sy ** 2]) @ rot.T
    x, up = cols, -rows
    got = np.array([[(k * x * x).sum(), (k * x * up).sum()], [(k * up * x).sum(), (k * up * up).sum()]])
    np.testing.assert_allclose(got, cov, atol=1e-6 * max(sx, sy) ** 2)
    assert abs((k * cols).sum()) < 1e-12 and abs((k * rows).sum()) < 1e-12  # centred


def test_blur_of_an_impulse_is_the_kernel():
    x = torch.zeros(1, 41, 41, dtype=torch.float64)
    x[0, 20, 20] = 1.0
    step = GaussianBlur(sigma=2.0, sigma_y=0.7, angle=40.0)
    y = step(x, seed=0)[0]
    k = gaussian_kernel(2.0, 0.7, 40.0, dtype=torch.float64)
    r = k.shape[0] // 2
    torch.testing.assert_close(y[20 - r:21 + r, 20 - r:21 + r], k)
    assert math.isclose(float(y.sum()), 1.0, rel_tol=1e-9)


def test_motion_blur_kernel():
    k = motion_blur_kernel(5, 0, dtype=torch.float64)
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[2] = 0.2
    torch.testing.assert_close(k, expected)
    torch.testing.assert_close(motion_blur_kernel(5, 90, dtype=torch.float64), expected.T)
    for length, angle in [(7.5, 30.0), (12, 135.0), (1, 0.0)]:
        k = motion_blur_kernel(length, angle, dtype=torch.float64)
        assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-12)
        torch.testing.assert_close(k, k.flip(0, 1))  # point-symmetric about the centre
    # Along its direction, a line of L pixels has variance (L^2 - 1) / 12.
    k = motion_blur_kernel(9, 0, dtype=torch.float64).numpy()
    c = np.arange(k.shape[1]) - k.shape[1] // 2
    assert math.isclose((k.sum(0) * c ** 2).sum(), (81 - 1) / 12, rel_tol=1e-12)
    y = MotionBlur(length=(3, 9), angle=(0, 180))(torch.rand(2, 3, 20, 20), seed=0)
    assert y.shape == (2, 3, 20, 20)


# ---------------------------------------------------------------------------
# Noise and JPEG
# ---------------------------------------------------------------------------

def test_poisson_noise_mean_and_variance():
    x = torch.full((1, 256, 256), 0.3, dtype=torch.float64)
    for scale in (20.0, 200.0):
        y = PoissonNoise(scale=scale)(x, seed=0)
        assert abs(float(y.mean()) - 0.3) < 0.01
        assert float(y.var()) == pytest.approx(0.3 / scale, rel=0.05)
        # the values are photon counts / scale
        counts = (y * scale).numpy()
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)


def test_gaussian_noise_std_and_gray():
    x = torch.full((3, 128, 128), 0.5)
    y = GaussianNoise(sigma=10)(x, seed=0)
    assert float((y - x).std()) == pytest.approx(10 / 255, rel=0.03)
    assert abs(float((y - x).mean())) < 1e-3
    assert not torch.equal(y[0], y[1])  # colour: each channel its own noise
    g = GaussianNoise(sigma=10, gray=True)(x, seed=0)
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    assert torch.equal(GaussianNoise(sigma=0)(x, seed=0), x)


@pytest.mark.parametrize("quality", [10, 30, 95])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_equals_pil_encode_decode(astronaut, quality, mode):
    img = Image.fromarray(astronaut[:64, 100:180]).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(mode))
    got = JPEG(quality)(to_tensor(img), seed=0)
    assert torch.equal(got, to_tensor(ref))
    out = JPEG(quality)(img)
    assert isinstance(out, Image.Image) and np.array_equal(np.asarray(out), ref)


# ---------------------------------------------------------------------------
# Pipeline, presets, determinism
# ---------------------------------------------------------------------------

def test_seed_determinism_and_difference():
    hr = torch.rand(3, 64, 64)
    pipe = PRESETS["realistic"](4)
    a, b = pipe(hr, seed=5), pipe(hr, seed=5)
    assert torch.equal(a, b)
    assert not torch.equal(a, pipe(hr, seed=6))
    assert torch.equal(degrade(hr, 4, "realistic", seed=5), a)
    # A Generator is used and advanced: two calls on one generator differ,
    # and replaying the generator replays both.
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    first, second = pipe(hr, seed=g1), pipe(hr, seed=g1)
    assert not torch.equal(first, second)
    assert torch.equal(pipe(hr, seed=g2), first) and torch.equal(pipe(hr, seed=g2), second)


def test_describe_reports_the_sampled_values_and_order():
    pipe = Pipeline([GaussianBlur((0.5, 2.0)), Downscale(2, ["area", "bicubic"]), JPEG((30, 95)),
                     PoissonNoise(50, p=0.0)])
    assert len(pipe.describe()) == 4 and pipe.describe()[0].startswith("GaussianBlur(")
    pipe(torch.rand(3, 16, 16), seed=0)
    lines = pipe.describe()
    assert lines[0].startswith("GaussianBlur(sigma=")
    assert lines[1] in ("Downscale(x2, kernel=area)", "Downscale(x2, kernel=bicubic)")
    q = int(lines[2].split("=")[1].rstrip(")"))
    assert lines[2].startswith("JPEG(quality=") and 30 <= q <= 95
    assert lines[3] == "PoissonNoise: skipped (p=0)"
    shuffled = PRESETS["realistic"](2)
    orders = set()
    for seed in range(8):
        shuffled(torch.rand(3, 16, 16), seed=seed)
        names = [line.split("(")[0].split(":")[0] for line in shuffled.describe()]
        assert names[-1] == "JPEG" and len(names) == 5
        orders.add(tuple(names))
    assert len(orders) > 1  # the order changes from call to call


@pytest.mark.parametrize("preset", preset_names())
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_preset_gives_the_exact_lr_shape(preset, scale):
    hr = torch.rand(2, 3, 37, 50)
    lr = degrade(hr, scale, preset, seed=1)
    assert lr.shape == (2, 3, 37 // scale, 50 // scale)
    assert lr.min() >= 0 and lr.max() <= 1
    single = degrade(hr[0], scale, preset, seed=1)
    assert single.shape == (3, 37 // scale, 50 // scale)


@pytest.mark.parametrize("preset", preset_names())
def test_presets_accept_pil_and_return_pil(preset):
    img = Image.fromarray(data.astronaut()[:45, :61])
    lr = degrade(img, 3, preset, seed=0)
    assert isinstance(lr, Image.Image) and lr.size == (20, 15) and lr.mode == "RGB"
    gray = degrade(img.convert("L"), 2, preset, seed=0)
    assert isinstance(gray, Image.Image) and gray.mode == "L" and gray.size == (30, 22)


def test_gaussian_preset_is_blur_then_subsample():
    rng = np.random.default_rng(4)
    hr = rng.random((3, 36, 30))
    lr = degrade(torch.from_numpy(hr), 3, "gaussian").numpy()
    radius = int(math.ceil(3 * 1.5))
    blurred = np.stack([ndimage.gaussian_filter(a, 1.5, mode="mirror", radius=radius) for a in hr])
    np.testing.assert_allclose(lr, blurred[:, 1::3, 1::3], atol=1e-6)


def test_jpeg30_preset_is_bicubic_then_jpeg():
    hr = to_tensor(data.astronaut()[:96, :96])
    expected = JPEG(30)(downscale(hr, 2))
    assert torch.equal(degrade(hr, 2, "jpeg30"), expected)


def test_custom_pipeline_and_step_p():
    hr = torch.rand(3, 32, 32)
    pipe = Pipeline([Pipeline([Downscale(2), GaussianNoise(5)], shuffle=True), Downscale(2, "area")])
    assert pipe.total_scale == 4
    assert degrade(hr, 4, pipe, seed=0).shape == (3, 8, 8)
    skipped = Pipeline([GaussianBlur(2.0, p=0.0), Downscale(2)])
    assert torch.equal(skipped(hr, seed=0), downscale(hr, 2))


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2.5, 0, -1, True, "2"])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="degrade: scale must be an int >= 1"):
        degrade(torch.rand(3, 16, 16), scale)
    with pytest.raises(ValueError, match="upscale_interpolate: scale must be an int >= 1"):
        upscale_interpolate(torch.rand(3, 8, 8), scale)


def test_image_smaller_than_scale():
    with pytest.raises(ValueError, match=r"3x5 pixels is smaller than scale=4"):
        degrade(torch.rand(3, 3, 5), 4)
    with pytest.raises(ValueError, match="smaller than scale=4"):
        downscale(torch.rand(1, 3, 16, 3), 4)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="kernel must be one of 'nearest', 'bilinear', 'bicubic'.*got 'cubic'"):
        downscale(torch.rand(3, 8, 8), 2, "cubic")
    with pytest.raises(ValueError, match="kernel must be one of .*'lanczos'; got 'gauss'"):
        Downscale(2, ["area", "gauss"])
    with pytest.raises(ValueError, match="preset must be one of " + ", ".join(map(repr, preset_names())) + "; got 'blurry'"):
        degrade(torch.rand(3, 8, 8), 2, "blurry")
    with pytest.raises(ValueError, match="method must be one of 'nearest', 'bilinear', 'bicubic', 'lanczos'; got 'area'"):
        upscale_interpolate(torch.rand(3, 8, 8), 2, "area")
    assert set(KERNELS) == {"nearest", "bilinear", "bicubic", "area", "lanczos"}


def test_bad_step_parameters():
    with pytest.raises(ValueError, match=r"JPEG: quality must be an int >= 1 and <= 100, got 0"):
        JPEG(0)
    with pytest.raises(ValueError, match=r"JPEG: quality must be an int >= 1 and <= 100, got 101"):
        JPEG((30, 101))
    with pytest.raises(ValueError, match="JPEG: quality must be an int"):
        JPEG(50.5)
    with pytest.raises(ValueError, match="GaussianBlur: sigma must be a finite number > 0"):
        GaussianBlur(-1.0)
    with pytest.raises(ValueError, match=r"sigma range must have low <= high, got \(3\.0, 0\.2\)"):
        GaussianBlur((3.0, 0.2))
    with pytest.raises(ValueError, match=r"GaussianNoise: sigma \(units of 1/255\) must be a finite number >= 0 and <= 255"):
        GaussianNoise(300)
    with pytest.raises(ValueError, match=r"PoissonNoise: scale \(photons at white\) must be a finite number > 0"):
        PoissonNoise(0)
    with pytest.raises(ValueError, match=r"MotionBlur: length \(pixels\) must be a finite number >= 1"):
        MotionBlur(0.5)
    with pytest.raises(ValueError, match=r"GaussianNoise: p must be a finite number >= 0.0 and <= 1.0, got 1.5"):
        GaussianNoise(5, p=1.5)
    with pytest.raises(TypeError, match=r"steps\[1\] must be a step"):
        Pipeline([Downscale(2), "jpeg"])


def test_bad_images_and_pipelines():
    with pytest.raises(ValueError, match=r"must have shape \(C, H, W\) or \(N, C, H, W\), got \(16, 16\)"):
        degrade(torch.rand(16, 16), 2)
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got range \[0, 255\]"):
        degrade(torch.linspace(0, 255, 3 * 64).reshape(3, 8, 8), 2)
    with pytest.raises(TypeError, match="must be a torch.Tensor .* or a PIL image, got ndarray"):
        degrade(np.zeros((8, 8, 3)), 2)
    with pytest.raises(ValueError, match="pipeline downscales by 2 in all, but scale=4"):
        degrade(torch.rand(3, 16, 16), 4, Pipeline([Downscale(2)]))
    with pytest.raises(ValueError, match="JPEG: images must have 1 or 3 channels, got shape"):
        JPEG(50)(torch.rand(4, 8, 8))
    with pytest.raises(ValueError, match=r"resize: size must be an int or a pair \(H, W\) of ints >= 1, got \(0, 4\)"):
        resize(torch.rand(3, 8, 8), (0, 4))
