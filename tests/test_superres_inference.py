"""Tests of course_lib.superres.inference (tiled upscale, the optimised CPU path) and .winograd."""
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from course_lib.core.images import rgb_to_ycbcr
from course_lib.superres.inference import optimize_for_inference, receptive_radius, upscale
from course_lib.superres.models import DeblockNet, DeblockThenSR, ESPCN, ESPCNConfig, espcn_lecture, espcn_paper
from course_lib.superres.winograd import WinogradConv2d, winograd_conv3x3, winograd_matrices, winograd_weight


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


# --- Winograd ------------------------------------------------------------------

@pytest.mark.parametrize("m", [2, 4])
def test_winograd_matrices_compute_a_1d_correlation(m):
    # F(m, 3): A^T [(G g) * (B^T d)] is the 'valid' correlation of m + 2 inputs with a 3-tap filter.
    bt, g, at = winograd_matrices(m)
    d, w = torch.randn(m + 2, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    direct = torch.stack([(d[i:i + 3] * w).sum() for i in range(m)])
    assert torch.allclose(at @ ((g @ w) * (bt @ d)), direct, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("size", [(1, 1), (5, 7), (13, 9), (32, 33)])
def test_winograd_conv_equals_conv2d(m, size):
    conv = torch.nn.Conv2d(16, 8, 3, padding=1)
    x = torch.rand(2, 16, *size) * 2 - 1  # tanh outputs lie in [-1, 1]
    with torch.no_grad():
        got = winograd_conv3x3(x, winograd_weight(conv.weight, m), conv.bias, m)
        assert got.shape == (2, 8, *size)
        assert (got - conv(x)).abs().max() < 2e-5
        assert (WinogradConv2d.from_conv(conv, m)(x) - conv(x)).abs().max() < 2e-5


def test_winograd_numerics_on_the_paper_layer():
    # The 64 -> 32 layer with trained-like weights on tanh-range inputs: F(4x4, 3x3) stays near 1e-5.
    conv = torch.nn.Conv2d(64, 32, 3, padding=1)
    x = torch.rand(1, 64, 40, 44) * 2 - 1
    with torch.no_grad():
        ref = conv.double()(x.double())
        conv.float()
        for m, tol in ((2, 5e-6), (4, 3e-5)):
            err = (winograd_conv3x3(x, winograd_weight(conv.weight, m), conv.bias, m).double() - ref).abs().max()
            assert err < tol, (m, float(err))


def test_winograd_rejects_bad_input():
    with pytest.raises(ValueError, match="m must be"):
        winograd_matrices(3)
    with pytest.raises(ValueError, match="3x3"):
        WinogradConv2d.from_conv(torch.nn.Conv2d(1, 4, 5, padding=2))
    with pytest.raises(ValueError, match="channels"):
        winograd_conv3x3(torch.rand(1, 3, 8, 8), winograd_weight(torch.rand(4, 2, 3, 3), 2), None, 2)


# --- optimised path ------------------------------------------------------------

@pytest.mark.parametrize("size", [(17, 23), (31, 9), (64, 65), (1, 1)])
@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("strip_rows", [None, 3])  # one strip, or many (the borders between strips)
def test_optimized_equals_eager(size, scale, strip_rows):
    model = _paper(scale)
    fast = optimize_for_inference(model, verbose=False, strip_rows=strip_rows)
    assert type(fast).__name__ == "FastESPCN"
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        ref = model(x)
    got = fast(x)
    assert got.shape == ref.shape == (2, 1, size[0] * scale, size[1] * scale)
    assert (got - ref).abs().max() < 1e-4
    assert (fast(x[0]) - ref[0]).abs().max() < 1e-4  # (C, H, W) works too


@pytest.mark.parametrize("m", [2, 4])
def test_optimized_with_winograd_layers_equals_eager(m):
    model = _paper(3)
    fast = optimize_for_inference(model, verbose=False, winograd=m, strip_rows=8)
    x = torch.rand(1, 1, 21, 30)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() < 1e-4


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
    fast = optimize_for_inference(_paper(3), verbose=False)
    with pytest.raises(ValueError, match="channel"):
        fast(torch.rand(1, 3, 8, 8))
    with pytest.raises(TypeError):
        optimize_for_inference("not a model")


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
