"""Tests of course_lib.superres.models: sub-pixel shuffle, ESPCN, ICNR, deblocking."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.superres.models import (
    ESPCN, DeblockConfig, DeblockNet, DeblockThenSR, ESPCNConfig, count_parameters, espcn_lecture, espcn_paper,
    flops, icnr_, pixel_shuffle, pixel_unshuffle,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- pixel shuffle -----------------------------------------------------------

@pytest.mark.parametrize("r", [1, 2, 3, 4])
def test_pixel_shuffle_equals_torch(r):
    x = torch.randn(2, 3 * r * r, 5, 7)
    assert torch.equal(pixel_shuffle(x, r), nn.PixelShuffle(r)(x))
    y = torch.randn(2, 3, 5 * r, 7 * r)
    assert torch.equal(pixel_unshuffle(y, r), nn.PixelUnshuffle(r)(y))
    assert torch.equal(pixel_unshuffle(pixel_shuffle(x, r), r), x)
    assert torch.equal(pixel_shuffle(pixel_unshuffle(y, r), r), y)


def test_pixel_shuffle_layout_by_hand():
    # Four channels at one LR pixel become one 2x2 block, read row by row.
    x = torch.tensor([10.0, 11.0, 12.0, 13.0]).view(1, 4, 1, 1)
    assert torch.equal(pixel_shuffle(x, 2), torch.tensor([[[[10.0, 11.0], [12.0, 13.0]]]]))
    # Two LR pixels side by side: blocks side by side, each from its own pixel.
    x = torch.arange(8.0).view(1, 4, 1, 2)  # channel k holds (2k, 2k+1)
    assert torch.equal(pixel_shuffle(x, 2)[0, 0], torch.tensor([[0.0, 2.0, 1.0, 3.0], [4.0, 6.0, 5.0, 7.0]]))


def test_pixel_shuffle_validation():
    with pytest.raises(ValueError, match=r"divisible by r\*r = 4.*\(1, 3, 2, 2\)"):
        pixel_shuffle(torch.zeros(1, 3, 2, 2), 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(4, 2, 2\)"):
        pixel_shuffle(torch.zeros(4, 2, 2), 2)
    with pytest.raises(ValueError, match=r"divisible by r = 2.*\(1, 1, 3, 4\)"):
        pixel_unshuffle(torch.zeros(1, 1, 3, 4), 2)
    with pytest.raises(TypeError, match="r must be an int"):
        pixel_shuffle(torch.zeros(1, 4, 2, 2), 2.0)
    with pytest.raises(ValueError, match="r must be an int >= 1"):
        pixel_shuffle(torch.zeros(1, 4, 2, 2), 0)


# --- ESPCN -------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("preset", [espcn_lecture, espcn_paper])
def test_presets_output_is_r_times_input(preset, scale):
    model = ESPCN(preset(scale))
    c = model.in_channels
    out = model(torch.rand(2, c, 11, 7))
    assert out.shape == (2, c, 11 * scale, 7 * scale)
    assert model(torch.rand(c, 6, 5)).shape == (c, 6 * scale, 5 * scale)  # single image


def test_lecture_preset_matches_lecture():
    model = ESPCN(espcn_lecture(3))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in convs] == \
        [(3, 64, (5, 5)), (64, 64, (5, 5)), (64, 27, (5, 5))]
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 2 and all(a.negative_slope == 0.2 for a in acts)
    out = model(torch.rand(1, 3, 8, 8))
    assert out.min() > 0 and out.max() < 1  # sigmoid


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "tanh"])
@pytest.mark.parametrize("output_activation", [None, "sigmoid", "clamp"])
def test_all_activations(activation, output_activation):
    model = ESPCN(scale=2, channels="rgb", activation=activation, output_activation=output_activation)
    x = torch.rand(1, 3, 6, 9)
    assert model(x).shape == (1, 3, 12, 18)
    if output_activation == "clamp":
        model.eval()
        out = model(x * 100)
        assert out.min() >= 0 and out.max() <= 1


def test_parameter_counts_by_hand():
    paper = ESPCN(espcn_paper(3))
    assert count_parameters(paper) == (1 * 64 * 25 + 64) + (64 * 32 * 9 + 32) + (32 * 9 * 9 + 9)
    for r in (2, 3, 4):
        lecture = ESPCN(espcn_lecture(r))
        expected = (3 * 64 * 25 + 64) + (64 * 64 * 25 + 64) + (64 * 3 * r * r * 25 + 3 * r * r)
        assert count_parameters(lecture) == expected
    paper.features[0].weight.requires_grad_(False)
    assert count_parameters(paper, trainable_only=True) == count_parameters(paper) - 64 * 25
    # PReLU adds one slope per hidden feature map.
    assert count_parameters(ESPCN(espcn_paper(3))) + 64 + 32 == \
        count_parameters(ESPCN(ESPCNConfig(scale=3, activation="prelu")))


def _conv_macs_by_hooks(model, x):
    """Multiply-adds of every Conv2d, measured from the tensors that pass through."""
    total = []

    def hook(m, inp, out):
        kh, kw = m.kernel_size
        total.append(out.numel() // out.shape[0] * kh * kw * m.in_channels // m.groups)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    model(x)
    for h in handles:
        h.remove()
    return sum(total)


def test_flops_by_hand():
    model = ESPCN(espcn_paper(3))
    macs = 25 * 1 * 64 + 9 * 64 * 32 + 9 * 32 * 9  # per LR pixel
    assert flops(model, 10, 20) == 2 * macs * 10 * 20
    # The analytic count agrees with what the convolutions actually do.
    for m, shape in [(model, (1, 1, 10, 20)), (ESPCN(espcn_lecture(2)), (1, 3, 10, 20)),
                     (DeblockNet(channels=3, light=True), (1, 3, 10, 20))]:
        assert flops(m, 10, 20) == 2 * _conv_macs_by_hooks(m, torch.rand(shape))
    pipe = DeblockThenSR(DeblockNet(channels=1), model)
    assert flops(pipe, 4, 4) == flops(pipe.deblock, 4, 4) + flops(model, 4, 4)
    with pytest.raises(TypeError, match="Sequential"):
        flops(nn.Sequential(nn.Conv2d(1, 1, 3)), 4, 4)


def test_written_out_layers_of_the_paper_model():
    # the paper's 5-3-3 kernels, 64/32 maps and tanh, and the state_dict keys of the shipped checkpoints
    model = ESPCN(espcn_paper(3))
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in model.modules() if isinstance(m, nn.Conv2d)] == \
        [(1, 64, (5, 5)), (64, 32, (3, 3)), (32, 9, (3, 3))]
    assert isinstance(model.features[1], nn.Tanh) and isinstance(model.features[3], nn.Tanh)
    assert list(model.state_dict()) == ["features.0.weight", "features.0.bias", "features.2.weight",
                                        "features.2.bias", "to_subpixels.weight", "to_subpixels.bias"]


def test_config_validation():
    with pytest.raises(ValueError, match="channels must be one of 'rgb', 'y'; got 'RGBA'"):
        ESPCNConfig(channels="RGBA")
    with pytest.raises(ValueError, match="odd"):
        ESPCNConfig(kernels=(5, 4, 3))
    with pytest.raises(ValueError, match="features must be two ints.*got features=\\(64,\\)"):
        ESPCNConfig(features=(64,), kernels=(5, 3, 3))
    with pytest.raises(ValueError, match="activation must be one of"):
        ESPCNConfig(activation="gelu")
    with pytest.raises(ValueError, match="scale must be an int >= 1"):
        ESPCNConfig(scale=0)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['depth'\]"):
        ESPCN(scale=2, depth=3)


def test_gradient_flows():
    for model in (ESPCN(espcn_paper(2)), ESPCN(espcn_lecture(2))):
        x = torch.rand(2, model.in_channels, 6, 6)
        target = torch.rand(2, model.in_channels, 12, 12)
        F.mse_loss(model(x), target).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_config_round_trip_via_dict():
    for cfg in (espcn_paper(4), espcn_lecture(2), ESPCNConfig(activation="prelu", icnr=True)):
        model = ESPCN(cfg)
        d = json.loads(json.dumps(model.config_dict()))  # as in a JSON sidecar
        assert ESPCN.from_dict(d).config == cfg
        copy = ESPCN(**d)  # as core.checkpoints.load_pretrained rebuilds it
        copy.load_state_dict(model.state_dict())
        x = torch.rand(1, model.in_channels, 5, 5)
        assert torch.equal(copy(x), model(x))
    deblock = DeblockNet(channels=3, light=True)
    assert DeblockNet(**json.loads(json.dumps(deblock.config_dict()))).config == deblock.config


# --- ICNR --------------------------------------------------------------------

def _blocks_constant(out, r):
    """True where each r x r output block is constant: out == nearest upsampling of its block mean."""
    block_mean = F.avg_pool2d(out, r)
    return torch.allclose(out, F.interpolate(block_mean, scale_factor=r, mode="nearest"), atol=1e-6)


@pytest.mark.parametrize("r", [2, 3])
def test_icnr_gives_nearest_neighbour_start(r):
    x = torch.rand(2, 3, 7, 6)
    with_icnr = ESPCN(scale=r, channels="rgb", activation="relu", icnr=True)
    without = ESPCN(scale=r, channels="rgb", activation="relu", icnr=False)
    with torch.no_grad():
        assert _blocks_constant(with_icnr(x), r)
        assert not _blocks_constant(without(x), r)
    # The same on the raw function: sub-pixel kernels of a group are identical.
    w = torch.empty(4 * r * r, 5, 3, 3)
    icnr_(w, r)
    groups = w.view(4, r * r, 5, 3, 3)
    assert torch.equal(groups, groups[:, :1].expand_as(groups))
    assert not torch.equal(groups[0, 0], groups[1, 0])  # different kernels for different outputs


def test_icnr_validation():
    with pytest.raises(ValueError, match=r"divide by scale\*\*2 = 4, got shape \(6, 5, 3, 3\)"):
        icnr_(torch.empty(6, 5, 3, 3), 2)
    with pytest.raises(ValueError, match=r"\(C\*r\*r, C_in, kH, kW\).*got shape \(4, 5\)"):
        icnr_(torch.empty(4, 5), 2)


# --- Deblocking --------------------------------------------------------------

def test_deblock_layers_and_residual_identity():
    net = DeblockNet(channels=1)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in convs] == \
        [(1, 64, 9), (64, 32, 7), (32, 16, 1), (16, 1, 5)]
    assert sum(isinstance(m, nn.PReLU) for m in net.modules()) == 3
    light = DeblockNet(channels=3, light=True)
    assert count_parameters(light) < count_parameters(DeblockNet(channels=3)) / 3

    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        light.reconstruct.weight.normal_()
        assert not torch.allclose(light(x), x)
        nn.init.zeros_(light.reconstruct.weight)
        nn.init.zeros_(light.reconstruct.bias)
    assert torch.equal(light(x), x)  # output = input + 0
    # Clamped in eval mode only.
    with torch.no_grad():
        light.reconstruct.bias.fill_(0.5)
    assert light.train()(x).max() > 1
    assert light.eval()(x).max() <= 1
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        DeblockConfig(channels=2)


def test_deblock_then_sr():
    pipe = DeblockThenSR(DeblockNet(channels=3, light=True), ESPCN(espcn_lecture(2)))
    x = torch.rand(1, 3, 8, 8)
    out = pipe(x)
    assert out.shape == (1, 3, 16, 16)
    assert torch.equal(out, pipe.sr(pipe.deblock(x)))
    assert pipe.scale == 2
    F.mse_loss(out, torch.rand_like(out)).backward()
    assert pipe.deblock.reconstruct.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="deblock outputs 1 channel"):
        DeblockThenSR(DeblockNet(channels=1), ESPCN(espcn_lecture(2)))


def test_checkpoint_round_trip(tmp_path):
    from course_lib.core.checkpoints import load_pretrained, save_pretrained

    model = ESPCN(espcn_paper(3))
    path = save_pretrained(tmp_path / "espcn.pt", model, arch=model.arch, config=model.config_dict(), half=False)
    again, sidecar = load_pretrained(path, ESPCN, arch="espcn")
    assert sidecar["config"]["kernels"] == [5, 3, 3]
    x = torch.rand(1, 1, 6, 6)
    assert torch.equal(again(x), model.eval()(x))
