"""Tests of course_lib.superres.inference (upscale, block by block) and .fast (the optimised CPU path).

The optimised FastESPCN is tested equal to the readable ESPCN to 1e-4 (max abs difference) on every
activation, scale, strip height and the lecture model.
"""
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from course_lib.core.images import rgb_to_ycbcr
from course_lib.superres.fast import FastESPCN, optimize_for_inference
from course_lib.superres.inference import receptive_radius, upscale
from course_lib.superres.models import DeblockNet, DeblockThenSR, ESPCN, ESPCNConfig, espcn_lecture, espcn_paper


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _paper(scale=3):
    return ESPCN(espcn_paper(scale)).eval()


def _randomised_deblock():
    # The deblocking net starts as the identity (zero last layer); give it weights so the test means something.
    net = DeblockNet(channels=1, light=True)
    with torch.no_grad():
        net.reconstruct.weight.normal_(0, 0.05)
        net.reconstruct.bias.normal_(0, 0.05)
    return net.eval()


# --- optimised path ------------------------------------------------------------

@pytest.mark.parametrize("size", [(17, 23), (31, 9), (64, 65), (1, 1)])
@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("strip_rows", [None, 3])  # one strip, or many (the borders between strips)
def test_optimized_equals_eager(size, scale, strip_rows):
    model = _paper(scale)
    fast = optimize_for_inference(model, verbose=False, strip_rows=strip_rows)
    assert isinstance(fast, FastESPCN)
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        ref = model(x)
    got = fast(x)
    assert got.shape == ref.shape == (2, 1, size[0] * scale, size[1] * scale)
    assert (got - ref).abs().max() < 1e-4
    assert (fast(x[0]) - ref[0]).abs().max() < 1e-4  # (C, H, W) works too


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu"])
def test_optimized_other_activations(activation):
    model = ESPCN(ESPCNConfig(scale=2, activation=activation, output_activation="clamp")).eval()
    fast = optimize_for_inference(model, verbose=False, strip_rows=4)
    x = torch.rand(1, 1, 11, 14)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() < 1e-4


def test_optimized_lecture_model_and_attributes():
    model = ESPCN(espcn_lecture(2)).eval()
    fast = optimize_for_inference(model, verbose=False)
    assert fast.scale == 2 and fast.in_channels == 3 and receptive_radius(fast) == receptive_radius(model)
    x = torch.rand(1, 3, 19, 21)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() < 1e-4


def test_optimized_falls_back_with_a_note(capsys):
    pipeline = DeblockThenSR(_randomised_deblock(), _paper(3))
    fast = optimize_for_inference(pipeline)
    assert "eager" in capsys.readouterr().out
    x = torch.rand(1, 1, 12, 10)
    with torch.no_grad():
        assert (fast(x) - pipeline(x)).abs().max() < 1e-5


def test_upscale_optimized_equals_eager():
    model = _paper(3)
    img = torch.rand(3, 45, 38)
    ref = upscale(model, img, tile=16)
    assert (upscale(model, img, tile=16, optimized=True) - ref).abs().max() < 1e-4
    assert (upscale(optimize_for_inference(model, verbose=False), img) - ref).abs().max() < 1e-4


def test_optimized_checks_its_input():
    with pytest.raises(TypeError, match="optimize_for_inference: model must be an nn.Module, got str"):
        optimize_for_inference("not a model")
    with pytest.raises(ValueError, match="strip_rows must be an int >= 1"):
        FastESPCN(_paper(3), strip_rows=0)


# --- tiled upscale -------------------------------------------------------------

def test_receptive_radius_of_the_paper_model():
    assert receptive_radius(_paper(3)) == 4  # 5x5, 3x3, 3x3: 2 + 1 + 1
    assert receptive_radius(ESPCN(espcn_lecture(3))) == 6


def test_tiled_equals_untiled_for_the_paper_model_on_rgb():
    model = _paper(3)
    img = torch.rand(3, 101, 77)
    whole = upscale(model, img, tile=None)
    tiled = upscale(model, img, tile=32)
    assert whole.shape == tiled.shape == (3, 303, 231)
    assert (whole - tiled).abs().max() < 1e-5


def test_tiled_equals_untiled_for_deblock_then_sr():
    pipeline = DeblockThenSR(_randomised_deblock(), _paper(2))
    img = torch.rand(3, 53, 41)
    assert receptive_radius(pipeline) == receptive_radius(pipeline.deblock) + 4
    whole = upscale(pipeline, img, tile=None)
    tiled = upscale(pipeline, img, tile=20)
    assert whole.shape == (3, 106, 82)
    assert (whole - tiled).abs().max() < 1e-5


def test_upscale_pil_returns_pil_of_r_times_the_size():
    img = Image.fromarray((torch.rand(29, 37, 3) * 255).to(torch.uint8).numpy(), mode="RGB")
    out = upscale(_paper(3), img)
    assert isinstance(out, Image.Image) and out.size == (37 * 3, 29 * 3) and out.mode == "RGB"


def test_y_model_on_rgb_keeps_bicubic_chroma():
    img = torch.rand(1, 3, 24, 31)
    out = upscale(_paper(2), img, clamp=False)  # clamping would change chroma where RGB leaves [0, 1]
    expected = F.interpolate(rgb_to_ycbcr(img)[:, 1:], scale_factor=2, mode="bicubic", align_corners=False)
    assert (rgb_to_ycbcr(out)[:, 1:] - expected).abs().max() < 1e-5


def test_upscale_errors_are_clear():
    rgb_model = ESPCN(espcn_lecture(2)).eval()
    with pytest.raises(ValueError, match="takes 3 channel"):
        upscale(rgb_model, torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="takes 1 channel"):
        upscale(_paper(2), torch.rand(4, 8, 8))
    for bad in (0, -3, 2.5, "32"):
        with pytest.raises(ValueError, match="tile"):
            upscale(_paper(2), torch.rand(3, 8, 8), tile=bad)
    with pytest.raises(TypeError, match="nn.Module"):
        upscale(lambda x: x, torch.rand(3, 8, 8))
