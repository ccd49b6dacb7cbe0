"""phase.prdad (the networks) and phase.losses (the rotation-invariant loss, the auto-encoder objective)."""
import numpy as np
import pytest
import torch

from course_lib.phase.losses import AutoEncoderLoss, autoencoder_loss, rotation_invariant_loss
from course_lib.phase.prdad import (
    METHODS, DoubleConv, FCBlock, PRConfig, PRDAD1, SparseAutoEncoder, build_model, count_parameters,
    magnitude_features,
)
from course_lib.phase.wavelets import inverse_haar_packet


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rot(x):
    return torch.rot90(x, 2, dims=(-2, -1))


def _magnitude(x, pad):
    """Independent reference: numpy, explicit zero padding at the top left."""
    h, w = x.shape[-2:]
    big = np.zeros(x.shape[:-2] + (int(round(pad * h)), int(round(pad * w))))
    big[..., :h, :w] = x.numpy()
    return torch.from_numpy(np.abs(np.fft.fft2(big, norm="ortho"))).float()


def _digits(n=8, size=32):
    """``n`` rendered digit glyphs in [0, 1] (fast, no data set needed)."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=22)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    out = []
    for d in "0123456789"[:n]:
        img = Image.new("L", (size, size))
        ImageDraw.Draw(img).text((size // 2 - 7, 0), d, fill=255, font=font)
        out.append(np.asarray(img, dtype=np.float32) / 255)
    return torch.from_numpy(np.stack(out)).unsqueeze(1)


# --------------------------------------------------------------------------- loss
def test_rotation_invariant_loss_hand_cases():
    t = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert float(rotation_invariant_loss(t, t)) == 0.0
    assert float(rotation_invariant_loss(_rot(t), t)) == 0.0  # the twin costs nothing
    # pred = [[0, 1], [0, 0]]: direct squared errors 1 + 1 -> 0.5; rotated = [[0, 0], [1, 0]] -> 0.5
    p = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    assert float(rotation_invariant_loss(p, t)) == pytest.approx(0.5)
    # per-image minimum, then the mean over images
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[1.0, 2.0], [3.0, 4.0]]]])
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]],       # direct: (0+0+0+4)/4 = 1
                         [[[4.0, 3.0], [2.0, 0.0]]]])      # rotated [[0,2],[3,4]]: 1/4
    assert float(rotation_invariant_loss(pred, target)) == pytest.approx((1.0 + 0.25) / 2)
    assert float(rotation_invariant_loss(pred, target, "l1")) == pytest.approx((0.5 + 0.25) / 2)


def test_rotation_invariant_loss_validation_and_gradient():
    with pytest.raises(ValueError, match="same shape"):
        rotation_invariant_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match="base must be one of 'mse', 'l1'"):
        rotation_invariant_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), "huber")
    p = torch.rand(3, 1, 5, 5, requires_grad=True)
    rotation_invariant_loss(p, torch.rand(3, 1, 5, 5)).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


# --------------------------------------------------------------------------- features
@pytest.mark.parametrize("pad", [1, 2, 1.5])
def test_magnitude_features_is_log_of_the_rfft_half_plane(pad):
    x = torch.rand(2, 1, 10, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = _magnitude(x, pad).double()
    f = magnitude_features(y)
    h, w = y.shape[-2:]
    assert f.shape == (2, 1, h, w // 2 + 1)
    big = np.zeros((2, 1, h, w))
    big[..., :10, :12] = x.numpy()
    ref = np.fft.fftshift(np.log1p(np.abs(np.fft.rfft2(big, norm="ortho"))), axes=-2)
    np.testing.assert_allclose(f.numpy(), ref, atol=1e-10)


def test_magnitude_features_averages_a_frequency_with_its_mirror():
    y = torch.zeros(1, 1, 4, 4)
    y[0, 0, 1, 1] = 2.0  # its mirror (-1, -1) mod 4 = (3, 3) is 0
    f = magnitude_features(y)
    shifted_row = (1 + 4 // 2) % 4
    assert float(f[0, 0, shifted_row, 1]) == pytest.approx(np.log1p(1.0))


# --------------------------------------------------------------------------- blocks
def test_blocks():
    b = FCBlock(7, 5)
    assert [type(m).__name__ for m in b] == ["Linear", "BatchNorm1d", "PReLU"] and b[0].bias is not None
    assert DoubleConv(2, 3)(torch.rand(2, 2, 6, 6)).shape == (2, 3, 6, 6)


# --------------------------------------------------------------------------- models
@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("pad", [1, 2])
@pytest.mark.parametrize("method", METHODS)
def test_model_shapes_and_ranges(method, size, pad):
    torch.manual_seed(0)
    model = build_model(method, size, pad)
    mag = (round(pad * size),) * 2
    assert model.config.mag_shape == mag
    y = _magnitude(torch.rand(3, 1, size, size), pad)
    model.train()
    out = model(y)
    assert out.shape == (3, 1, size, size) and torch.isfinite(out).all()
    model.eval()
    with torch.no_grad():
        out = model(y)
    assert out.shape == (3, 1, size, size)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_wrong_magnitude_size_is_explained_at_the_command_line(tmp_path, capsys):
    # the networks' forward is the computation only; the edge (the CLI) names the sizes
    from course_lib.phase.__main__ import main

    path = tmp_path / "y.npy"
    np.save(path, np.random.default_rng(0).random((4, 28, 28)))
    assert main(["evaluate", "--data", "mnist-offline", "--method", "mlp", "--pad", "2", "--limit", "4",
                 "--magnitudes", str(path)]) == 2
    assert "checkpoint takes magnitudes of size 56x56, the file holds 28x28" in capsys.readouterr().err


def test_prdad1_is_the_inverse_packet_of_its_coefficients():
    model = PRDAD1((64, 64), (32, 32), depth=2, hidden=64, channels=8)
    y = torch.rand(2, 1, 64, 64)
    image, coeffs = model(y, return_coeffs=True)
    assert coeffs.shape == (2, 16, 8, 8)
    assert torch.allclose(image, inverse_haar_packet(coeffs, 2), atol=1e-6)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 8"):
        PRDAD1((56, 56), (28, 28), depth=3)


def test_build_model_round_trip_and_parameter_counts():
    for method in METHODS:
        model = build_model(method, 32, 2, hidden=64)
        cfg = model.config.to_dict()
        assert cfg["hidden"] == 64
        copy = build_model(**cfg)
        copy.load_state_dict(model.state_dict())  # same architecture
        assert PRConfig.from_dict(cfg) == model.config
        assert count_parameters(copy) == count_parameters(model) > 0
    with pytest.raises(ValueError, match="unknown key"):
        PRConfig.from_dict({"method": "mlp", "image_size": 32, "width": 3})
    with pytest.raises(ValueError, match="method must be one of"):
        build_model("gan", 32)


# --------------------------------------------------------------------------- auto-encoder
def test_autoencoder_loss_is_rotation_invariant():
    x = torch.rand(4, 1, 16, 16)
    # an "auto-encoder" that returns the twin: the reconstruction term must be 0
    loss, logs = autoencoder_loss(x, lambda v: 2 * v, lambda c: _rot(c) / 2, lam=0.5)
    assert float(logs["reconstruction"]) == pytest.approx(0.0, abs=1e-12)
    assert float(logs["sparsity"]) == pytest.approx(float((2 * x).abs().mean()))
    assert float(loss) == pytest.approx(0.5 * float((2 * x).abs().mean()))
    # a wrong reconstruction is penalised
    _, logs = autoencoder_loss(x, lambda v: v, lambda c: c.flip(-1), lam=0.0)
    assert float(logs["reconstruction"]) > 0.01


def test_sparse_autoencoder_shapes_and_loss_wrapper():
    ae = SparseAutoEncoder((32, 32), channels=4, code_channels=32, code_size=8)
    x = torch.rand(2, 1, 32, 32)
    rec, code = ae(x)
    assert rec.shape == x.shape and code.shape == (2, 32, 8, 8) and ae.code_shape == (32, 8, 8)
    assert 32 * 8 * 8 > 32 * 32  # over-complete
    assert 0 <= rec.min().item() and rec.max().item() <= 1
    ae.eval()
    a, _ = autoencoder_loss(x, ae.encode, ae.decode, lam=1e-2)
    b, _ = AutoEncoderLoss(1e-2)(ae(x), x)
    assert torch.allclose(a, b)
    assert SparseAutoEncoder(28, 4, 8, 7)(torch.rand(2, 1, 28, 28))[1].shape == (2, 8, 7, 7)
    with pytest.raises(ValueError, match="must be 4 times code_size"):
        SparseAutoEncoder((32, 32), code_size=12)


def test_prdad2_decoder_is_frozen_until_unfrozen():
    torch.manual_seed(0)
    model = build_model("prdad2", 32, 2, hidden=64, ae_channels=4)
    dec = model.autoencoder.decoder
    before = {k: v.clone() for k, v in dec.state_dict().items()}  # weights and BN statistics
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    mlp_before = model.mlp[0][0].weight.clone()
    model.train()
    y, x = torch.rand(4, 1, 64, 64), torch.rand(4, 1, 32, 32)
    loss = rotation_invariant_loss(model(y), x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in dec.state_dict().items())
    assert not torch.equal(mlp_before, model.mlp[0][0].weight)
    assert not dec.training and model.training
    assert count_parameters(model, trainable_only=True) == (
        count_parameters(model) - count_parameters(model.autoencoder))
    image, code = model(y, return_code=True)
    assert code.shape == (4, 32, 8, 8)
    model.unfreeze_decoder()
    assert all(p.requires_grad for p in dec.parameters()) and dec.training
    assert not any(p.requires_grad for p in model.autoencoder.encoder.parameters())
    model.freeze_decoder()
    model.train()
    assert not dec.training


def test_prdad1_overfits_eight_digits():
    torch.manual_seed(0)
    x = _digits(8, 32)
    y = _magnitude(x, 2)
    model = PRDAD1((64, 64), (32, 32), depth=2, hidden=128, channels=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(150):
        loss = rotation_invariant_loss(model(y), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1])
