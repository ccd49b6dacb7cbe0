"""Tests of course_lib.segmentation.pspnet: shapes, the pyramid by hand, output stride, weights, inference.

Kept fast (a few seconds on 2 cores): the light preset on tiny odd-sized
inputs, and one ResNet-18 built once for the module.
"""
import contextlib
import doctest
import io
import math
import urllib.error

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.models.resnet import Bottleneck, ResNet

import importlib

psp_module = importlib.import_module("course_lib.segmentation.pspnet")  # the module (the package exports a function of that name)
from course_lib.segmentation.backbone import dilate_stage
from course_lib.segmentation.inference import count_parameters, optimize_for_inference, predict_mask
from course_lib.segmentation.pspnet import (
    PRESETS, PSPNet, PSPNetConfig, PyramidPoolingModule, ppm_branch, psp_loss, pspnet, pspnet_config, pyramid_pooling,
)

H, W = 65, 47  # odd, divisible by neither 8 nor 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def light():
    torch.manual_seed(0)
    return pspnet("light", verbose=False)


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    """The resnet18 preset (output stride 16, pretrained=None) built offline with an empty hub cache."""
    hub = tmp_path_factory.mktemp("hub")
    note = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(note):
        mp.setattr(torch.hub, "get_dir", lambda: str(hub))
        torch.manual_seed(0)
        model = pspnet("resnet18")
    model.note = note.getvalue()
    return model


def _calibrate_batchnorm(model, seed=0):
    """Give every BatchNorm realistic running statistics and non-trivial affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
            m.reset_running_stats()
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(2, 3, H, W, generator=g))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    return model.eval()


# ---------------------------------------------------------------------------
# pyramid pooling
# ---------------------------------------------------------------------------

class _Record(nn.Module):
    """A branch that remembers its input and doubles it (keeps the channels)."""

    def forward(self, t):
        self.seen = t
        return 2 * t


def test_pyramid_pooling_against_hand_computation():
    torch.manual_seed(0)
    n, c, h, w = 2, 5, 12, 18  # 2, 3 and 6 divide both sides
    x = torch.randn(n, c, h, w)
    branches = [_Record() for _ in range(4)]
    out = pyramid_pooling(x, branches, bins=(1, 2, 3, 6))
    assert out.shape == (n, c + 4 * c, h, w)
    assert torch.equal(out[:, :c], x)  # the features themselves come first
    # bin 1: the branch sees the global mean; upsampling a 1x1 map is a constant
    torch.testing.assert_close(branches[0].seen[..., 0, 0], x.mean((2, 3)))
    torch.testing.assert_close(out[:, c:2 * c], (2 * x.mean((2, 3)))[..., None, None].expand(n, c, h, w))
    # bins that divide the size: adaptive pooling is a mean over equal blocks
    for k, b in enumerate((2, 3, 6), start=1):
        hand = x.reshape(n, c, b, h // b, b, w // b).mean((3, 5))
        torch.testing.assert_close(branches[k].seen, hand)
    # align_corners=False: the first half-cell from the border copies the corner value.
    # bin 2 -> 12 x 18: source row (i + 0.5) / 6 - 0.5 <= 0 for i <= 2, column for j <= 4
    pooled2 = branches[1].seen
    corner = out[:, 2 * c:3 * c, :3, :5]
    torch.testing.assert_close(corner, (2 * pooled2[:, :, :1, :1]).expand_as(corner))


def test_pyramid_pooling_with_exercise_style_branches_and_small_maps():
    torch.manual_seed(0)
    branches = [ppm_branch(8, 2) for _ in range(4)]
    for b in branches:
        b.eval()
    x = torch.rand(1, 8, 4, 5)  # smaller than the 6x6 bin: adaptive pooling still works
    out = pyramid_pooling(x, branches)
    assert out.shape == (1, 8 + 4 * 2, 4, 5)
    with pytest.raises(ValueError):  # one branch per bin (zip(..., strict=True))
        pyramid_pooling(x, branches[:3])


def test_pyramid_pooling_module_channels_and_batch_of_one():
    ppm = PyramidPoolingModule(64)
    assert ppm.out_channels == 64 + 4 * 64 // 4 == 128
    ppm.train()
    assert ppm(torch.rand(1, 64, 3, 2)).shape == (1, 128, 3, 2)  # batch 1 in training, map < 6x6
    # why the bin-1 branch has no BatchNorm: on a 1x1 map with batch 1 it raises in training
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(4).train()(torch.rand(1, 4, 1, 1))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ppm.branches[0].modules())
    assert all(any(isinstance(m, nn.BatchNorm2d) for m in br.modules()) for br in ppm.branches[1:])


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("output_stride, num_classes", [(8, 1), (16, 3)])
def test_output_shape_and_stride_for_odd_sizes(output_stride, num_classes):
    model = pspnet("light", output_stride=output_stride, num_classes=num_classes, verbose=False).eval()
    with torch.no_grad():
        for shape in [(1, 3, H, W), (2, 3, 33, 17)]:
            assert model(torch.rand(*shape)).shape == (shape[0], num_classes, *shape[2:])
        c3, c4 = model.backbone(torch.rand(1, 3, H, W))
    # every stride-2 step rounds up: layer4 is ceil(H / os) x ceil(W / os)
    assert c4.shape == (1, 128, math.ceil(H / output_stride), math.ceil(W / output_stride))
    assert c3.shape == (1, 64, *c4.shape[-2:])  # layer4 never strides (os 16: layer3 does, os 8: neither)


def test_backbone_output_stride_resnet18(r18):
    assert r18.output_stride == 16
    with torch.no_grad():
        c3, c4 = r18.eval().backbone(torch.rand(1, 3, H, W))
    assert c4.shape == (1, 512, math.ceil(H / 16), math.ceil(W / 16))
    assert c3.shape == (1, 256, math.ceil(H / 16), math.ceil(W / 16))
    # os 8 dilates layer3 as well
    r18_os8 = PSPNet("resnet18", output_stride=8, pretrained=False, aux=False, verbose=False).eval()
    with torch.no_grad():
        c3, c4 = r18_os8.backbone(torch.rand(1, 3, H, W))
    assert c4.shape == (1, 512, math.ceil(H / 8), math.ceil(W / 8))


@pytest.mark.parametrize("dilate", [[False, True, True], [False, False, True]])
def test_dilate_stage_matches_torchvision_for_bottleneck(dilate):
    ref = ResNet(Bottleneck, [1, 1, 2, 2], replace_stride_with_dilation=dilate)
    ours = ResNet(Bottleneck, [1, 1, 2, 2])
    if dilate[1]:
        dilate_stage(ours.layer3, 2, 1)
        dilate_stage(ours.layer4, 4, 2)
    else:
        dilate_stage(ours.layer4, 2, 1)

    def convs(net):
        return [(n, m.stride, m.dilation, m.padding) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]

    assert convs(ours) == convs(ref)


def test_aux_head_only_in_training(light):
    calls = []
    hook = light.aux_head.register_forward_hook(lambda *a: calls.append(1))
    try:
        x = torch.rand(2, 3, H, W)
        out = light.train()(x)
        assert isinstance(out, dict) and set(out) == {"out", "aux"}
        assert out["out"].shape == out["aux"].shape == (2, 1, H, W)
        assert len(calls) == 1
        with torch.no_grad():
            out = light.eval()(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 1, H, W)
        assert len(calls) == 1  # not run in eval mode
    finally:
        hook.remove()
    no_aux = pspnet("light", aux=False, verbose=False).train()
    assert no_aux.aux_head is None and isinstance(no_aux(x), torch.Tensor)


def test_psp_loss_combines_main_and_aux():
    torch.manual_seed(0)
    a, b, y = torch.randn(2, 1, 5, 4), torch.randn(2, 1, 5, 4), torch.rand(2, 1, 5, 4)
    mse = nn.MSELoss()
    torch.testing.assert_close(psp_loss({"out": a, "aux": b}, y, mse), mse(a, y) + 0.4 * mse(b, y))
    torch.testing.assert_close(psp_loss({"out": a, "aux": b}, y, mse, aux_weight=1.0), mse(a, y) + mse(b, y))
    torch.testing.assert_close(psp_loss(a, y, mse), mse(a, y))
    torch.testing.assert_close(psp_loss({"out": a}, y, mse), mse(a, y))
    with pytest.raises(ValueError, match="'out'"):
        psp_loss({"main": a}, y, mse)
    with pytest.raises(ValueError, match="'out'"):
        psp_loss((a, b), y, mse)


@pytest.mark.parametrize("which", ["light", "r18"])
def test_gradients_reach_every_parameter(which, request):
    model = request.getfixturevalue(which)
    torch.manual_seed(0)
    model.train()
    model.zero_grad()
    x, y = torch.rand(2, 3, H, W), (torch.rand(2, 1, H, W) > 0.5).float()
    psp_loss(model(x), y, nn.BCEWithLogitsLoss()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad()


def test_batch_of_one_trains(light):
    out = light.train()(torch.rand(1, 3, H, W))
    psp_loss(out, torch.rand(1, 1, H, W), nn.BCEWithLogitsLoss()).backward()
    light.zero_grad()


# ---------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------

def test_weights_random_offline_with_note(r18):
    assert r18.weights_used == "random"
    assert r18.note.count("\n") == 1  # one line
    assert "random" in r18.note and "resnet18-f37072fd.pth" in r18.note
    light = pspnet("light", verbose=False)
    assert light.weights_used == "random"


def test_imagenet_weights_loaded_from_hub_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    reference = torchvision.models.resnet18(weights=None).state_dict()  # stands in for the real file
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference, tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    model = pspnet("resnet18", aux=False)
    assert model.weights_used == "imagenet"
    assert "imagenet backbone weights -- ImageNet, from the torch hub cache" in capsys.readouterr().out
    assert torch.equal(model.backbone.stem[0].weight, reference["conv1.weight"])
    assert torch.equal(model.backbone.layer4[1].conv2.weight, reference["layer4.1.conv2.weight"])


def test_pretrained_true_offline_raises_naming_url_and_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError) as info:
        PSPNet("resnet18", pretrained=True, verbose=False)
    msg = str(info.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "checkpoints" / "resnet18-f37072fd.pth") in msg


# ---------------------------------------------------------------------------
# config, presets, rebuild
# ---------------------------------------------------------------------------

def test_presets_and_config():
    assert set(PRESETS) == {"light", "resnet18", "resnet50"}
    assert pspnet_config("resnet18").output_stride == 16
    assert (pspnet_config("resnet50").output_stride, pspnet_config("resnet50").backbone) == (8, "resnet50")
    assert pspnet_config("light", num_classes=3).num_classes == 3
    with pytest.raises(ValueError, match="unknown preset 'tiny'"):
        pspnet("tiny")
    with pytest.raises(ValueError, match="backbone must be one of"):
        PSPNet("resnet101")
    with pytest.raises(ValueError, match="output_stride must be one of 8, 16"):
        PSPNet("light", output_stride=32)
    with pytest.raises(ValueError, match="no ImageNet weights for the 'light'"):
        PSPNet("light", pretrained=True)
    with pytest.raises(ValueError, match="unknown key"):
        PSPNetConfig.from_dict({"backbone": "light", "stride": 8})
    with pytest.raises(ValueError, match="dropout"):
        PSPNet("light", dropout=1.5)


def test_rebuild_from_config_dict(light):
    cfg = light.config_dict()
    assert cfg["pretrained"] is False and cfg["bins"] == [1, 2, 3, 6]
    copy = PSPNet(**cfg, verbose=False)
    copy.load_state_dict(light.state_dict())  # strict
    x = torch.rand(1, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(copy.eval()(x), light.eval()(x))


def test_count_parameters(light):
    assert count_parameters(light) == sum(p.numel() for p in light.parameters())
    model = pspnet("light", verbose=False)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - count_parameters(model.backbone)


# ---------------------------------------------------------------------------
# inference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["light", "r18"])
def test_optimize_for_inference_equals_eager(which, request):
    model = _calibrate_batchnorm(pspnet("light", verbose=False) if which == "light"
                                 else request.getfixturevalue("r18"))
    model.train()
    fast = optimize_for_inference(model, verbose=False)
    assert model.training and model.aux_head is not None  # the original is untouched
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not fast.training and fast.aux_head is None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert fast.backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, got = model.eval()(x), fast(x)
    assert ref.abs().max() > 1e-3  # a meaningful comparison
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="cannot be trained"):
        fast.train()(x)


def test_predict_mask_pil_and_tensor(light):
    light.train()  # its mode must be restored
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, H, W, generator=g)
    probs = predict_mask(light, x, threshold=None)
    assert light.training
    assert probs.shape == (H, W) and probs.dtype == torch.float32
    assert 0 <= probs.min() and probs.max() <= 1
    with torch.no_grad():
        torch.testing.assert_close(probs, torch.sigmoid(light.eval()(x[None]))[0, 0])
    mask = predict_mask(light, x[None])
    assert mask.shape == (H, W) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(mask, (probs >= 0.5).float())
    for size in (64, (40, 24)):
        assert predict_mask(light, x, size=size, threshold=None).shape == (H, W)
    rgba = Image.fromarray((torch.rand(H, W, 4, generator=g) * 255).byte().numpy(), mode="RGBA")
    assert predict_mask(light, rgba, threshold=None).shape == (H, W)


@pytest.mark.parametrize("bad, error, match", [
    (torch.rand(2, 3, 8, 8), ValueError, "one image at a time"),
    (torch.rand(1, 8, 8), ValueError, r"3 \(RGB\) channels.*grayscale"),
    (torch.rand(4, 8, 8), ValueError, "RGBA"),
    ((torch.rand(3, 8, 8) * 255).byte(), TypeError, "float tensor"),
    (torch.rand(3, 8, 8) * 255, ValueError, "divide by 255"),
    (torch.rand(8, 8), ValueError, r"\(3, H, W\)"),
    ([[0.5]], TypeError, "PIL image or a tensor"),
])
def test_predict_mask_rejects_bad_images(light, bad, error, match):
    with pytest.raises(error, match=match):
        predict_mask(light, bad)


def test_predict_mask_rejects_bad_arguments(light):
    x = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="threshold"):
        predict_mask(light, x, threshold=2)
    with pytest.raises(ValueError, match="size"):
        predict_mask(light, x, size=(1, 2, 3))
    with pytest.raises(TypeError, match="nn.Module"):
        predict_mask(lambda t: t, x)


def test_docstring_examples():
    result = doctest.testmod(psp_module, extraglobs={"torch": torch, "nn": nn, "F": F})
    assert result.attempted > 0 and result.failed == 0
