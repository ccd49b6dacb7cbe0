"""Tests of course_lib.style.fast (fast style transfer, Johnson et al. 2016).

A tiny stand-in feature extractor replaces VGG16 so that the tests need no
weights and run in seconds; it returns the same layer names.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from course_lib.style import transformer
from course_lib.style.fast import (
    STYLE_LAYERS, PerceptualLoss, StyleContentData, TransformerNet, TransformerNetConfig, apply,
    frames_per_second, train_fast,
)

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The tensors here are tiny: with 2 OpenMP threads on a busy 2-core CI
    # machine the thread barriers cost more than the work (measured 70 s vs 12 s).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TinyFeatures(nn.Module):
    """Four conv+ReLU stages (pooling in between) named like VGG16's style layers."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        chans = [3, 4, 6, 8, 8]
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(4))
        with torch.no_grad():
            for c in self.convs:
                c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.5)
                c.bias.zero_()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = {}
        for i, (conv, name) in enumerate(zip(self.convs, STYLE_LAYERS)):
            if i:
                x = nn.functional.avg_pool2d(x, 2)
            x = torch.relu(conv(x))
            out[name] = x
        return out


def _stripes(h=24, w=24):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    s = 0.5 + 0.5 * torch.sin((xx + yy).float() * 1.3)
    return torch.stack([s, 1 - s, 0.5 * s])


def _contents(n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 20 + 2 * i, 22, generator=g) for i in range(n)]


# --- the network ---------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 37, 53), (2, 3, 37, 53), (1, 3, 5, 3), (1, 3, 64, 64)])
def test_output_shape_equals_input_and_range(shape):
    torch.manual_seed(0)
    net = TransformerNet(width=0.25).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


def test_clamp_output_in_range():
    net = TransformerNet(width=0.125, output="clamp").eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 17, 9) * 50)
    assert y.min() >= 0 and y.max() <= 1


def test_architecture_no_transposed_convs_and_paper_channels():
    net = TransformerNet()
    assert not any(isinstance(m, (nn.ConvTranspose2d,)) for m in net.modules())
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in (convs[0], convs[-1])] == [9, 9]
    assert [c.out_channels for c in convs[:3]] == [32, 64, 128]
    assert sum(isinstance(m, transformer.ResidualBlock) for m in net.modules()) == 5
    assert sum(isinstance(m, nn.InstanceNorm2d) and m.affine for m in net.modules()) == 15
    assert any(isinstance(m, nn.ReflectionPad2d) for m in net.modules())
    assert [c.out_channels for c in TransformerNet(width=0.25).modules() if isinstance(c, nn.Conv2d)][:3] == [8, 16, 32]


def test_config_round_trip():
    cfg = TransformerNetConfig(width=0.5, residual_blocks=3, output="clamp")
    assert TransformerNetConfig.from_dict(cfg.to_dict()) == cfg
    net = TransformerNet(cfg)
    assert TransformerNet.arch == "transformer_net"
    again = TransformerNet.from_dict(net.config_dict())
    again.load_state_dict(net.state_dict())  # same architecture
    with pytest.raises(ValueError, match="unknown key"):
        TransformerNetConfig.from_dict({"widht": 1.0})
    with pytest.raises(ValueError, match="output"):
        TransformerNet(output="tanh")
    with pytest.raises(ValueError, match="width"):
        TransformerNet(width=0)


def test_pretrained_round_trip(tmp_path):
    from course_lib.core.checkpoints import load_pretrained, save_pretrained

    net = TransformerNet(width=0.125)
    path = save_pretrained(tmp_path / "s.pt", net, arch=net.arch, config=net.config_dict(), half=False)
    back, _ = load_pretrained(path, TransformerNet, arch="transformer_net")
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(back(x), net.eval()(x))


def test_checkpoint_of_the_previous_version_loads_and_gives_the_same_output():
    """tests/data/style_transformer_net_v1.pt was saved by the TransformerNet of style/fast.py before the
    readable rewrite (issue 13): same state_dict keys and config keys, same output (to float rounding)."""
    from course_lib.core.checkpoints import load_pretrained

    net, sidecar = load_pretrained(DATA / "style_transformer_net_v1.pt", TransformerNet, arch="transformer_net")
    assert sidecar["config"] == {"width": 0.125, "residual_blocks": 2, "output": "sigmoid"}
    io = torch.load(DATA / "style_transformer_net_v1_io.pt", weights_only=True)
    with torch.no_grad():
        assert (net(io["input"]) - io["output"]).abs().max() < 1e-6
    assert set(net.state_dict()) == set(torch.load(DATA / "style_transformer_net_v1.pt",
                                                   weights_only=True)["state_dict"])


def test_bad_inputs_raise_clear_errors_at_apply():
    net = TransformerNet(width=0.125)
    with pytest.raises(ValueError, match=r"\(1, 37, 53\)"):
        apply(net, torch.rand(1, 37, 53))
    with pytest.raises(TypeError, match="float"):
        apply(net, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="Tensor.*PIL"):
        apply(net, np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="empty"):
        apply(net, torch.rand(1, 3, 0, 4))
    with pytest.raises(TypeError, match="TransformerNet"):
        apply("not a model", torch.rand(3, 8, 8))


# --- data ------------------------------------------------------------------------

def test_style_content_data_pairs_crops_and_flips(tmp_path):
    imgs = _contents(2)
    data = StyleContentData(imgs, 16, length=5)
    assert len(data) == 5
    x, y = data[3]
    assert x.shape == (3, 16, 16) and x is y
    # a crop (possibly flipped) of image 1
    src = imgs[1]
    found = any(torch.equal(c, x) or torch.equal(c.flip(-1), x)
                for t in range(src.shape[1] - 15) for l in range(src.shape[2] - 15)
                for c in [src[:, t:t + 16, l:l + 16]])
    assert found
    # smaller than the crop: scaled up first
    x, _ = StyleContentData({"tiny": torch.rand(3, 6, 9)}, 16)[0]
    assert x.shape == (3, 16, 16)
    # folder: listed lazily, read on access
    for i in range(3):
        Image.fromarray((np.random.rand(20, 30, 3) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    folder = StyleContentData(tmp_path, 16)
    assert folder._files is None and len(folder) == 3
    assert folder[2][0].shape == (3, 16, 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        len(StyleContentData(tmp_path / "empty", 16))
    with pytest.raises(ValueError, match=r"content image \[0\] must have 3 channel.*\(4, 10, 10\)"):
        StyleContentData([torch.rand(4, 10, 10)], 8)
    with pytest.raises(ValueError, match="no content"):
        StyleContentData([], 8)
    with pytest.raises(FileNotFoundError):
        StyleContentData(tmp_path / "missing", 8)


# --- the loss ----------------------------------------------------------------------

def test_perceptual_loss_grams_once_and_three_terms():
    feats = TinyFeatures()
    style = _stripes()
    loss_fn = PerceptualLoss(feats, style, content_weight=1.0, style_weight=10.0, tv_weight=0.1)
    assert feats.calls == 1  # the style Grams, once
    assert not any(p.requires_grad for p in feats.parameters())
    targets = loss_fn.target_grams()
    assert set(targets) == set(STYLE_LAYERS) and targets["relu1_2"].shape == (1, 4, 4)
    pred = torch.rand(2, 3, 16, 16, requires_grad=True)
    content = torch.rand(2, 3, 16, 16)
    for _ in range(3):
        loss, parts = loss_fn(pred, content)
    assert feats.calls == 1 + 3 * 2  # pred and content per call; never the style again
    assert set(parts) == {"content", "style", "tv"}
    assert torch.allclose(loss.detach(), sum(parts.values()))
    assert all(float(v) > 0 for v in parts.values())
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    # the content term is zero when pred == content, the style term when pred is the style image
    _, parts = loss_fn(content, content)
    assert float(parts["content"]) == 0
    _, parts = loss_fn(style[None], style[None])
    assert float(parts["style"]) < 1e-10
    # the fit() format
    from course_lib.core.training import _split_loss

    value, logs = _split_loss(loss_fn(pred, content))
    assert set(logs) == {"content", "style", "tv"}


def test_perceptual_loss_errors():
    feats = TinyFeatures()
    with pytest.raises(ValueError, match=r"style image 0 must have 3 channel.*\(1, 16, 16\)"):
        PerceptualLoss(feats, torch.rand(1, 16, 16))
    with pytest.raises(ValueError, match="style_weight"):
        PerceptualLoss(feats, _stripes(), style_weight=-1)

    class Partial(nn.Module):
        def forward(self, x):
            return {"relu1_2": x}

    with pytest.raises(KeyError, match="relu2_2"):
        PerceptualLoss(Partial(), _stripes())


# --- training through fit ------------------------------------------------------------

def _train(steps, checkpoint=None, **kw):
    return train_fast(_contents(4), _stripes(), size=16, steps=steps, batch_size=2, lr=1e-2,
                      content_weight=1.0, style_weight=1e3, tv_weight=1.0, features=TinyFeatures(),
                      width=0.125, progress=False, seed=0, checkpoint=checkpoint, **kw)


def test_train_fast_reduces_loss():
    result = _train(20)
    losses = [row["loss"] for row in result.history["train"]]
    assert len(losses) == 20 and result.step == 20
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])
    assert set(result.history["train"][0]) >= {"content", "style", "tv"}
    assert isinstance(result.model, TransformerNet)
    assert result.extra["config"] == result.model.config_dict()


def test_train_fast_resumes_from_checkpoint(tmp_path):
    ckpt = tmp_path / "fast.pt"
    first = _train(6, checkpoint=ckpt, checkpoint_every=3)
    assert first.step == 6 and ckpt.is_file()
    resumed = _train(12, checkpoint=ckpt, checkpoint_every=3)
    assert resumed.resumed_from == 6 and resumed.step == 12
    assert len(resumed.history["train"]) == 12
    straight = _train(12)
    for (k, a), b in zip(resumed.model.state_dict().items(), straight.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


# --- inference ---------------------------------------------------------------------------

def test_apply_tensor_and_pil_any_size():
    torch.manual_seed(0)
    net = TransformerNet(width=0.125)
    net.train()
    img = Image.fromarray((np.random.rand(29, 41, 3) * 255).astype(np.uint8))
    out = apply(net, img)
    assert isinstance(out, Image.Image) and out.size == img.size and out.mode == "RGB"
    assert net.training  # mode restored
    gray = apply(net, img.convert("L"))
    assert gray.size == img.size
    x = torch.rand(3, 29, 41)
    y = apply(net, x)
    assert y.shape == x.shape
    with torch.no_grad():
        assert torch.equal(apply(net, x[None])[0], net.eval()(x[None])[0])


def test_frames_per_second():
    net = TransformerNet(width=0.125)
    fps = frames_per_second(net, 32, repeats=2, warmup=1)
    assert fps > 0
    assert frames_per_second(net, (16, 24), repeats=1, batch=2) > 0
    with pytest.raises(ValueError, match="repeats"):
        frames_per_second(net, 16, repeats=0)
