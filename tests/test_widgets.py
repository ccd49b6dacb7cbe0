import pytest
import torch
from skimage import data as skdata

from course_lib.core.images import to_tensor
from course_lib.core.metrics import psnr
from course_lib.superres.degrade import GaussianBlur, Downscale, JPEG
from course_lib.widgets.degradation import degradation_explorer, degradation_figure, degradation_pipeline


def test_pipeline_from_widget_settings():
    pipe = degradation_pipeline(scale=2, kernel="area", blur_sigma=1.5, noise_sigma=0, jpeg_quality=40)
    assert [type(s) for s in pipe.steps] == [GaussianBlur, Downscale, JPEG]
    assert degradation_pipeline().steps[0].kernel == "bicubic" and len(degradation_pipeline().steps) == 1
    with pytest.raises(ValueError, match="kernel must be one of"):
        degradation_pipeline(kernel="sinc")
    with pytest.raises(ValueError, match=r"jpeg_quality \(100 = no JPEG\) must be an int >= 1 and <= 100, got 0"):
        degradation_pipeline(jpeg_quality=0)


def test_figure_reports_the_bicubic_psnr_and_degrades_monotonically():
    hr = to_tensor(skdata.astronaut()[100:196, 150:246])
    _, clean = degradation_figure(hr, scale=2)
    _, noisy = degradation_figure(hr, scale=2, noise_sigma=20)
    _, blurred = degradation_figure(hr, scale=2, blur_sigma=2.0)
    assert clean["lr_shape"] == (3, 48, 48)
    assert clean["psnr_y"] > noisy["psnr_y"] and clean["psnr_y"] > blurred["psnr_y"]
    assert "GaussianNoise" in " ".join(noisy["steps"])


def test_explorer_builds_controls():
    hr = to_tensor(skdata.astronaut()[:64, :64])
    box = degradation_explorer(hr)
    names = [c.description for row in box.children[:2] for c in row.children]
    assert {"scale", "kernel", "blur σ (px)", "JPEG quality"} <= set(names)
    sliders = [c for row in box.children[:2] for c in row.children if hasattr(c, "continuous_update")]
    assert sliders and all(not c.continuous_update for c in sliders)


def test_style_widget_runs_a_short_optimisation():
    import torch
    from course_lib.style import STYLE_LAYERS, CONTENT_LAYERS, VGGFeatures
    from course_lib.widgets.style import style_explorer, style_figure

    torch.manual_seed(0)
    content, style = torch.rand(3, 48, 48), torch.rand(3, 40, 56)
    vgg = VGGFeatures(list(STYLE_LAYERS) + list(CONTENT_LAYERS), weights="random", verbose=False)
    _, result = style_figure(content, style, style_layers=("conv1_1", "conv2_1"), size=48, steps=8, features=vgg)
    assert result.image.shape == (3, 48, 48) and result.style_loss_end < result.style_loss_start
    with pytest.raises(ValueError, match="at least one style layer"):
        style_figure(content, style, style_layers=(), features=vgg)
    box = style_explorer(content, style, features=vgg)
    assert [c.description for c in box.children[1].children] == list(STYLE_LAYERS)


def test_jaccard_vs_nll_case_and_sweep():
    import numpy as np

    from course_lib.widgets.jaccard_vs_nll import jaccard_vs_nll_figure, loss_case, loss_sweep

    perfect = loss_case(0.1, 0.99, "none", size=48)
    assert perfect["iou"] == 1.0 and perfect["jaccard_loss"] < 0.1
    # the BCE gradient w.r.t. the logits is (sigmoid(z) - t) / number of pixels (hand formula)
    case = loss_case(0.1, 0.8, "shifted", amount=0.5, size=48)
    expected = (case["prob"] - case["target"]) / case["prob"].size
    assert np.allclose(case["grad_bce"], expected, atol=1e-12)
    assert 0 < case["iou"] < 1
    # calling everything background: NLL shrinks with the object, the Jaccard loss does not
    sweep = loss_sweep([0.005, 0.05, 0.3], confidence=0.9, error="all background", size=48)
    assert sweep["bce"][0] < sweep["bce"][1] < sweep["bce"][2]
    assert min(sweep["jaccard_loss"]) > 0.85 and sweep["iou"] == [0.0, 0.0, 0.0]
    fig, _ = jaccard_vs_nll_figure(0.05, 0.9, "shrunk", size=32)
    assert len(fig.axes) >= 5
    with pytest.raises(ValueError, match="error must be one of"):
        loss_case(0.1, 0.9, "rotated")
    with pytest.raises(ValueError, match="confidence"):
        loss_case(0.1, 0.4, "none")


def test_phase_swap_images_follow_their_phase():
    from course_lib.widgets.phase_swap import gray_images, phase_swap_figure, phase_swap_images

    im = gray_images(48)
    a, b = im["astronaut"], im["grace_hopper"]
    assert a.shape == (48, 48) and 0 <= float(a.min()) and float(a.max()) <= 1
    rec = phase_swap_images(a, b)
    # |F A| with B's phase has exactly A's magnitude (numpy FFT as the independent reference)
    import numpy as np

    assert np.allclose(np.abs(np.fft.fft2(rec["|A| with phase of B"].numpy(), norm="ortho")),
                       np.abs(np.fft.fft2(a.double().numpy(), norm="ortho")), atol=1e-9)
    fig, corr = phase_swap_figure(a, b)
    assert corr["|A| with phase of B"]["corr_with_B"] > corr["|A| with phase of B"]["corr_with_A"] + 0.3
    assert corr["|B| with phase of A"]["corr_with_A"] > corr["|B| with phase of A"]["corr_with_B"] + 0.3
    assert abs(corr["|A| with random phase"]["corr_with_A"]) < 0.3
    with pytest.raises(ValueError, match="same size"):
        phase_swap_images(a, b[:40])
