"""The Haar wavelet packet transform, checked against PyWavelets (an independent implementation)."""
import math

import numpy as np
import pytest
import pywt
import torch

from course_lib.phase.wavelets import (
    frequency_order, gini_index, haar_packet, haar_step, inverse_haar_packet, inverse_haar_step,
    packet_mosaic, packet_paths, sparsity_stats,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_haar_step_hand_example_and_pywt_dwt2():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]], dtype=torch.float64)
    # a b / c d = 1 2 / 3 5: A = 11/2, H = (3 - 8)/2, V = (4 - 7)/2, D = (6 - 5)/2
    assert haar_step(x).flatten().tolist() == [5.5, -2.5, -1.5, 0.5]
    img = _rand(1, 1, 12, 16)
    cA, (cH, cV, cD) = pywt.dwt2(img[0, 0].numpy(), "haar", mode="periodization")
    np.testing.assert_allclose(haar_step(img)[0].numpy(), np.stack([cA, cH, cV, cD]), atol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_packet_matches_pywt_natural_and_frequency_order(depth):
    x = _rand(2, 3, 16, 24, seed=depth)  # batch and channels, non-square
    c = haar_packet(x, depth)
    assert c.shape == (2, 3 * 4 ** depth, 16 // 2 ** depth, 24 // 2 ** depth)
    n, ch = 1, 2
    wp = pywt.WaveletPacket2D(x[n, ch].numpy(), "haar", mode="periodization", maxlevel=depth)
    nodes = wp.get_level(depth, order="natural")
    assert [node.path for node in nodes] == packet_paths(depth)
    mine = c[n, ch * 4 ** depth:(ch + 1) * 4 ** depth].numpy()
    np.testing.assert_allclose(mine, np.stack([node.data for node in nodes]), atol=1e-12)
    freq = [node.data for row in wp.get_level(depth, order="freq") for node in row]
    np.testing.assert_allclose(mine[frequency_order(depth).numpy()], np.stack(freq), atol=1e-12)


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_perfect_reconstruction_and_energy(depth):
    x = _rand(3, 2, 32, 40, seed=10 + depth, dtype=torch.float32)
    c = haar_packet(x, depth)
    assert (inverse_haar_packet(c, depth) - x).abs().max() < 1e-6
    assert math.isclose(float((c.double() ** 2).sum()), float((x.double() ** 2).sum()), rel_tol=1e-6)
    # orthonormal: inner products are preserved too
    y = _rand(3, 2, 32, 40, seed=99, dtype=torch.float32)
    assert math.isclose(float((haar_packet(y, depth) * c).sum()), float((x * y).sum()), rel_tol=1e-5)


def test_step_inverse_and_matrix_is_orthonormal():
    eye = torch.eye(4, dtype=torch.float64).view(4, 1, 2, 2)  # the four pixels of a 2x2 block
    m = haar_step(eye).view(4, 4)
    assert torch.allclose(m @ m.T, torch.eye(4, dtype=torch.float64))
    x = _rand(2, 4, 6, 10)
    assert torch.allclose(inverse_haar_step(haar_step(x)), x, atol=1e-12)


def test_gradients_flow():
    x = _rand(1, 1, 8, 8).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: haar_packet(t, 2), (x,), fast_mode=True)
    c = _rand(1, 16, 2, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: inverse_haar_packet(t, 2), (c,), fast_mode=True)
    # energy preservation means d/dx sum(packet(x)**2) = 2x
    x2 = _rand(2, 1, 16, 16).requires_grad_()
    (haar_packet(x2, 3) ** 2).sum().backward()
    assert torch.allclose(x2.grad, 2 * x2.detach())


def test_validation_messages():
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 8.*28x28"):
        haar_packet(torch.rand(1, 1, 28, 28), 3)
    with pytest.raises(ValueError, match="depth must be an int >= 0"):
        haar_packet(torch.rand(1, 1, 8, 8), -1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        haar_packet(torch.rand(8, 8), 1)
    with pytest.raises(ValueError, match="multiple of 4"):
        inverse_haar_step(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"4\*\*depth = 16"):
        inverse_haar_packet(torch.rand(1, 8, 4, 4), 2)


def test_packet_mosaic():
    x = _rand(2, 1, 16, 16)
    c = haar_packet(x, 2)
    m = packet_mosaic(c, 2)
    assert m.shape == (2, 1, 16, 16)
    assert torch.equal(m[:, 0, :4, :4], c[:, 0])  # lowest frequencies at the top left
    # tile (row 0, column 1): the band with the lowest non-zero horizontal frequency, 'av'
    assert torch.equal(m[:, 0, :4, 4:8], c[:, packet_paths(2).index("av")])
    nat = packet_mosaic(c, 2, order="natural")
    assert torch.equal(nat[:, 0, :4, 4:8], c[:, 1])


def test_gini_and_sparsity_stats_known_values():
    n = 100
    spike = torch.zeros(1, n)
    spike[0, 7] = -3.0
    const = torch.full((1, n), 0.5)
    assert math.isclose(float(gini_index(spike)), 1 - 1 / n, rel_tol=1e-6)
    assert abs(float(gini_index(const))) < 1e-6
    s = sparsity_stats(spike.view(1, 1, 10, 10))
    assert s["energy_top"] == pytest.approx(1.0) and s["l1_l2"] == pytest.approx(1.0)
    assert s["hoyer"] == pytest.approx(1.0)
    c = sparsity_stats(const.view(1, 1, 10, 10), top=0.1)
    assert c["energy_top"] == pytest.approx(0.1) and c["l1_l2"] == pytest.approx(10.0)
    assert c["hoyer"] == pytest.approx(0.0, abs=1e-12)
    # hand example: energies 16, 9, 1, 0 -> top 25% (one coefficient) holds 16/26
    v = torch.tensor([[0.0, 3.0, -4.0, 1.0]])
    assert sparsity_stats(v, top=0.25)["energy_top"] == pytest.approx(16 / 26)
    per = sparsity_stats(torch.cat([spike, const]), per_image=True)
    assert per["gini"].shape == (2,) and per["gini"][0] > per["gini"][1]


def test_natural_image_is_sparser_in_the_packet_domain():
    import skimage.data

    img = torch.from_numpy(skimage.data.camera()[::8, ::8].astype(np.float64) / 255).view(1, 1, 64, 64)
    pixels = sparsity_stats(img)
    packets = sparsity_stats(haar_packet(img, 3))
    assert packets["energy_top"] > 0.9 > pixels["energy_top"]
    assert packets["gini"] > pixels["gini"] + 0.3
    assert packets["l1_l2"] < pixels["l1_l2"] / 2
