"""Tests of course_lib.style (features, losses, Gatys optimisation). Small images, random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.style import features as features_mod
from course_lib.style import gatys
from course_lib.style import (CONTENT_LAYERS, STYLE_LAYERS, VGGFeatures, content_loss, gram_matrix, layer_names,
                              luminance_only, match_color_statistics, style_loss, style_targets, stylize,
                              total_variation)
from course_lib.core.images import rgb_to_ycbcr


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # 64-px images: threading overhead dominates, and on a busy 2-core CI box two OpenMP
    # threads waiting on each other were measured 2x slower than one.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def vgg():
    return VGGFeatures(CONTENT_LAYERS + STYLE_LAYERS, weights="random", verbose=False)


def _smooth(seed, h, w, c=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, max(2, h // 8), max(2, w // 8), generator=g)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (0.8 * x + 0.2 * torch.rand(1, c, h, w, generator=g))[0].clamp(0, 1)


@pytest.fixture(scope="module")
def images():
    return _smooth(1, 48, 64), _smooth(2, 64, 64)


# ------------------------------------------------------------------ features
def test_layer_names():
    names = layer_names("vgg19")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-1] == "pool5" and "relu5_4" in names and len(names) == 16 * 2 + 5
    assert "conv5_4" not in layer_names("vgg16") and "relu5_3" in layer_names("vgg16")
    with pytest.raises(ValueError, match="arch"):
        layer_names("resnet18")


def test_truncation_shapes_and_frozen(vgg):
    names = list(vgg.features._modules)
    assert names[-1] == "conv5_1"  # nothing after the deepest requested layer
    small = VGGFeatures(["relu1_1", "conv2_1"], weights="random", verbose=False)
    assert list(small.features._modules) == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1"]
    out = small(torch.rand(2, 3, 32, 24))
    assert set(out) == {"relu1_1", "conv2_1"}
    assert out["relu1_1"].shape == (2, 64, 32, 24) and out["conv2_1"].shape == (2, 128, 16, 12)
    assert (out["relu1_1"] >= 0).all() and (out["conv2_1"] < 0).any()  # conv output not overwritten by ReLU
    assert all(not m.inplace for m in small.features if isinstance(m, torch.nn.ReLU))
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    small(x)["conv2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    vgg16 = VGGFeatures(["relu5_3"], arch="vgg16", pooling="max", weights="random", verbose=False)
    assert vgg16(torch.rand(1, 3, 32, 32))["relu5_3"].shape == (1, 512, 2, 2)
    assert isinstance(vgg16.features.pool1, torch.nn.MaxPool2d) and isinstance(vgg.features.pool1, torch.nn.AvgPool2d)


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ValueError, match="conv4_2") as exc:
        VGGFeatures(["conv4_2", "conv9_9"], weights="random", verbose=False)
    assert "conv9_9" in str(exc.value) and "relu5_4" in str(exc.value)
    with pytest.raises(ValueError, match="pooling"):
        VGGFeatures(["conv1_1"], pooling="median", weights="random", verbose=False)


def test_normalisation_inside():
    v = VGGFeatures(["conv1_1"], weights="random", verbose=False)
    assert torch.allclose(v.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.allclose(v.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    x = torch.rand(1, 3, 16, 16)
    conv = v.features.conv1_1
    expected = torch.nn.functional.conv2d((x - v.mean) / v.std, conv.weight, conv.bias, padding=1)
    assert torch.allclose(v(x)["conv1_1"], expected, atol=1e-5)
    # grayscale input is repeated to three channels
    g = torch.rand(1, 1, 16, 16)
    assert torch.allclose(v(g)["conv1_1"], v(g.expand(-1, 3, -1, -1))["conv1_1"])


def test_random_weights_are_normalised_and_seeded():
    v = VGGFeatures(["conv1_1", "conv3_1", "conv5_1"], weights="random", verbose=False)
    out = v(_smooth(3, 64, 64)[None])
    for name, f in out.items():  # deep layers neither vanish nor explode
        assert 0.1 < f.pow(2).mean().item() < 10, name
    w = VGGFeatures(["conv1_1"], weights="random", verbose=False)
    assert torch.equal(w.features.conv1_1.weight, v.features.conv1_1.weight)


def test_auto_falls_back_to_random_and_says_so(monkeypatch, capsys):
    def offline(arch, allow_download):
        raise OSError("no network")

    monkeypatch.setattr(features_mod, "_torchvision_state", offline)
    v = VGGFeatures(["conv1_1"], weights="auto")
    assert v.weights_used == "random (offline fallback)"
    line = capsys.readouterr().out
    assert "random (offline fallback)" in line and "not downloadable" in line
    with pytest.raises(RuntimeError, match="weights='random'"):
        VGGFeatures(["conv1_1"], weights="imagenet")


# ------------------------------------------------------------------ losses
def test_gram_matrix_explicit():
    f = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    g = gram_matrix(f)
    ref = torch.einsum("nihw,njhw->nij", f, f) / (4 * 3 * 5)
    assert torch.allclose(g, ref)
    loop = sum(f[1, 0, h, w] * f[1, 2, h, w] for h in range(3) for w in range(5)) / 60
    assert torch.isclose(g[1, 0, 2], loop)
    assert torch.allclose(g, g.transpose(1, 2))
    assert torch.linalg.eigvalsh(g).min() > -1e-12
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(4, 3, 5\)"):
        gram_matrix(f[0])


def test_style_and_content_loss(vgg, images):
    content, style = images
    feats = vgg(style[None])
    targets = style_targets({n: feats[n] for n in STYLE_LAYERS})
    assert style_loss({n: feats[n] for n in STYLE_LAYERS}, targets).item() == pytest.approx(0.0, abs=1e-12)
    other = vgg(content[None])
    assert style_loss({n: other[n] for n in STYLE_LAYERS}, targets).item() > 0
    # blending: equal-weight blend of two identical styles is that style
    blended = style_targets([feats, feats], blend_weights=[0.3, 0.7])
    assert torch.allclose(blended["conv3_1"], targets["conv3_1"])
    # per-layer weights
    one = style_loss(other["conv2_1"], gram_matrix(feats["conv2_1"]))
    two = style_loss({"conv2_1": other["conv2_1"]}, {"conv2_1": gram_matrix(feats["conv2_1"])}, layer_weights=[2.0])
    assert two.item() == pytest.approx(2 * one.item())
    assert content_loss(other["conv4_2"], other["conv4_2"]).item() == 0
    same_size = vgg(_smooth(11, 64, 64)[None])["conv4_2"]
    assert content_loss(feats["conv4_2"], same_size).item() == pytest.approx(
        torch.mean((feats["conv4_2"] - same_size) ** 2).item())
    with pytest.raises(ValueError, match="differ"):
        content_loss(feats["conv4_2"], other["conv4_2"])
    with pytest.raises(ValueError, match="blend"):
        style_targets([feats, feats], blend_weights=[1.0])


def test_loss_modules_equal_the_functions(vgg, images):
    from course_lib.style import ContentLoss, GramMatrix, StyleLoss, TotalVariation

    content, style = images
    f, g = vgg(content[None]), vgg(style[None])
    assert torch.equal(GramMatrix()(f["conv1_1"]), gram_matrix(f["conv1_1"]))
    targets = style_targets({n: g[n] for n in STYLE_LAYERS})
    feats = {n: f[n] for n in STYLE_LAYERS}
    assert torch.equal(StyleLoss(targets, [1, 2, 3, 4, 5])(feats), style_loss(feats, targets, [1, 2, 3, 4, 5]))
    other = vgg(_smooth(11, 48, 64)[None])
    assert torch.equal(ContentLoss({"conv4_2": other["conv4_2"]})({"conv4_2": f["conv4_2"]}),
                       content_loss(f["conv4_2"], other["conv4_2"]))
    assert torch.equal(TotalVariation()(content), total_variation(content))


def test_match_luminance_gives_the_content_luminance_statistics():
    from course_lib.style.inputs import gray
    from course_lib.style.losses import match_luminance

    style, content = _smooth(12, 40, 30), _smooth(13, 20, 20) * 0.5
    out = match_luminance(style, content)
    assert out.shape == style.shape and torch.equal(out[0], out[2])  # gray
    assert out[0].mean().item() == pytest.approx(gray(content)[0].mean().item(), abs=1e-4)
    assert out[0].std().item() == pytest.approx(gray(content)[0].std().item(), rel=1e-3)


def test_total_variation_by_hand():
    x = torch.tensor([[[0.0, 1.0], [0.5, 0.0]]])  # (1, 2, 2)
    # vertical diffs: 0.5, -1 -> mean sq 0.625; horizontal diffs: 1, -0.5 -> 0.625
    assert total_variation(x).item() == pytest.approx(1.25)
    assert total_variation(torch.full((3, 5, 5), 0.3)).item() == 0
    with pytest.raises(ValueError, match="H, W >= 2"):
        total_variation(torch.rand(3, 1, 5))


def test_match_color_statistics():
    style = _smooth(5, 40, 50) * torch.tensor([0.9, 0.4, 0.2]).view(3, 1, 1)
    content = _smooth(6, 30, 30)
    out = match_color_statistics(style, content, clamp=False)
    o = out.reshape(3, -1).double().numpy()
    c = content.reshape(3, -1).double().numpy()
    np.testing.assert_allclose(o.mean(1), c.mean(1), atol=1e-5)
    np.testing.assert_allclose(np.cov(o, bias=True), np.cov(c, bias=True), atol=1e-5)
    assert out.shape == style.shape
    with pytest.raises(ValueError, match="channel"):
        match_color_statistics(style[:1], content)


def test_luminance_only_keeps_content_chroma():
    content, stylized = _smooth(7, 16, 16), _smooth(8, 16, 16)
    out = luminance_only(stylized, content)
    yo, ys, yc = rgb_to_ycbcr(out), rgb_to_ycbcr(stylized), rgb_to_ycbcr(content)
    inside = (out > 0.001).all(0) & (out < 0.999).all(0)  # away from clipping
    assert torch.allclose(yo[0][inside], ys[0][inside], atol=1e-4)
    assert torch.allclose(yo[1:][:, inside], yc[1:][:, inside], atol=1e-4)


# ------------------------------------------------------------------ stylize
def test_stylize_reduces_style_loss(vgg, images):
    content, style = images
    r = stylize(content, style, size=64, steps=30, features=vgg, progress=False)
    # measured (random normalised weights, 30 LBFGS steps): 189x on these images at 64 px, 213x at 128 px;
    # 47-69x on skimage photos (chelsea with coffee) at 64-128 px. 20x leaves a wide margin.
    assert r.style_loss_start / r.style_loss_end >= 20
    assert r.image.shape == (3, 48, 64) and 0 <= r.image.min() and r.image.max() <= 1
    assert len(r.history["total"]) == 30 and r.stopped is None
    assert r.weights_used == "random"


def test_stylize_deterministic(vgg, images):
    content, style = images
    kw = dict(size=32, steps=8, init="noise", features=vgg, progress=False, seed=3, snapshot_every=4)
    a, b = stylize(content, style, **kw), stylize(content, style, **kw)
    assert torch.equal(a.image, b.image) and a.history == b.history
    assert [s for s, _ in a.snapshots] == [4, 8]
    c = stylize(content, style, **{**kw, "seed": 4})
    assert not torch.equal(a.image, c.image)


def test_stylize_stops_on_nan(vgg, images, monkeypatch):
    content, style = images
    real, calls = gatys.style_loss, []

    def flaky(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)
        return out * float("nan") if len(calls) == 5 else out

    monkeypatch.setattr(gatys, "style_loss", flaky)
    r = stylize(content, style, size=32, steps=10, features=vgg, progress=False)
    assert r.stopped is not None and "non-finite" in r.stopped
    assert len(r.history["total"]) == 4
    assert torch.isfinite(r.image).all()


def test_stylize_aspect_ratios_and_formats(vgg):
    content = _smooth(9, 30, 60, c=1)           # grayscale, wide
    style = torch.cat([_smooth(10, 50, 20), torch.ones(1, 50, 20)])  # RGBA, tall
    r = stylize(content, style, size=40, steps=3, features=vgg, progress=False, optimizer="adam",
                preserve_color="luminance", scales=[32, 40])
    assert r.image.shape == (3, 20, 40)
    assert any("resized" in n and "aspect ratio" in n for n in r.notes)
    assert len(r.history["total"]) == 6 and set(r.history["size"]) == {32, 40}
    with pytest.raises(ValueError, match="too small"):
        stylize(content, style, size=16, steps=1, features=vgg, progress=False)


def test_stylize_reports_offline_weights(monkeypatch, images, capsys):
    monkeypatch.setattr(features_mod, "_torchvision_state",
                        lambda arch, allow_download: (_ for _ in ()).throw(OSError("offline")))
    content, style = images
    r = stylize(content, style, size=24, steps=2, progress=False, content_layers=("relu2_1",),
                style_layers=("relu1_1", "relu2_1"))
    assert r.weights_used == "random (offline fallback)"
    assert "random (offline fallback)" in capsys.readouterr().out


def test_reconstruct_content_and_style_from_single_layers():
    """Gatys et al. Fig. 1: matching conv1_1 features from noise brings the photo back;
    matching conv1_1 Gram matrices lowers the style loss but not the pixel error as much."""
    from course_lib.core import datasets
    from course_lib.core.images import to_tensor
    from course_lib.style import VGGFeatures, reconstruct
    from course_lib.style.inputs import fit_longer_side, resize

    photo = to_tensor(datasets.offline_natural_images()["astronaut"])
    vgg = VGGFeatures(["conv1_1", "conv2_1"], weights="random", verbose=False)
    target = resize(photo, fit_longer_side(*photo.shape[-2:], 48))
    noise_mse = ((torch.rand_like(target) - target) ** 2).mean().item()
    content = reconstruct(photo, ["conv1_1"], kind="content", size=48, steps=40, features=vgg)
    assert content.image.shape == target.shape
    assert content.style_loss_end < 0.05 * content.style_loss_start
    content_mse = ((content.image - target) ** 2).mean().item()
    assert content_mse < 0.25 * noise_mse
    style = reconstruct(photo, ["conv1_1", "conv2_1"], kind="style", size=48, steps=40, features=vgg)
    assert style.style_loss_end < 0.2 * style.style_loss_start
    assert ((style.image - target) ** 2).mean().item() > 2 * content_mse  # the arrangement is lost
    with pytest.raises(ValueError, match="kind"):
        reconstruct(photo, ["conv1_1"], kind="texture", features=vgg)
    with pytest.raises(ValueError, match="conv5_1"):
        reconstruct(photo, ["conv5_1"], features=vgg)
