"""Shipped phase-retrieval networks (one per method and regime), magnitude error and HIO/ER refinement."""
import json

import numpy as np
import pytest
import torch

from course_lib.phase import shipped as P
from course_lib.phase.data import load_images, simulate_measurement
from course_lib.phase.fourier import fourier_magnitude
from course_lib.phase.metrics import evaluate_reconstructions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_images("mnist-offline", split="test", limit=48)


# --- regimes ---------------------------------------------------------------

@pytest.mark.parametrize("pad, noise, tag", [
    (1, None, "pad1"), (1.0, "none", "pad1"), (2, None, "pad2"),
    (2, "poisson:3", "pad2_poisson3"), (2.0, ("poisson", 3.0), "pad2_poisson3"), (2, ["poisson", 3], "pad2_poisson3"),
])
def test_regime_name(pad, noise, tag):
    assert P.regime_name(pad, noise) == tag


@pytest.mark.parametrize("pad, noise, says", [
    (1.5, None, "pad 1.5 with noise none"), (2, "poisson:1", "noise poisson:1"), (1, "gaussian:0.1", "gaussian"),
])
def test_regime_name_unknown_regime_names_the_shipped_ones(pad, noise, says):
    with pytest.raises(ValueError) as e:
        P.regime_name(pad, noise)
    assert says in str(e.value) and "pad2_poisson3" in str(e.value) and "--checkpoint" in str(e.value)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pad must be a number >= 1"):
        P.regime_name(0.5)
    with pytest.raises(ValueError, match="method must be one of"):
        P.shipped_path("unet", 1)


# --- magnitude error ---------------------------------------------------------

def test_magnitude_error_against_numpy_fft(digits):
    x = digits[:6].double()
    y = fourier_magnitude(x, 2)
    assert torch.all(P.magnitude_error(x, y, 2) < 1e-12)
    guess = torch.rand_like(x, generator=torch.Generator().manual_seed(0))
    got = P.magnitude_error(guess, y, 2).numpy()
    for i in range(len(x)):  # independent reference: numpy FFT of the zero-padded image
        padded = np.zeros((56, 56))
        padded[:28, :28] = guess[i, 0].numpy()
        mag = np.abs(np.fft.fft2(padded, norm="ortho"))
        want = np.linalg.norm(mag - y[i, 0].numpy()) / np.linalg.norm(y[i, 0].numpy())
        assert got[i] == pytest.approx(want, rel=1e-9)
    # the twin (180° rotation, shifted inside the pad) fits the same magnitude
    twin = torch.roll(torch.flip(torch.nn.functional.pad(x, (0, 28, 0, 28)), (-2, -1)), (1, 1), (-2, -1))
    assert torch.all(P.magnitude_error(twin, y, 1) < 1e-12)


def test_magnitude_error_shape_mismatch():
    with pytest.raises(ValueError, match="but y has shape"):
        P.magnitude_error(torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28), pad=2)


# --- refinement ----------------------------------------------------------------

def test_refine_from_the_truth_stays_there(digits):
    x = digits[:8]
    y = fourier_magnitude(x, 2)
    out, kept = P.refine(y, x, pad=2, hio_iters=20, er_iters=10, starts=1)
    assert out.shape == x.shape
    assert float((out - x).abs().max()) < 1e-4


def test_refine_improves_a_rough_start_and_never_worsens_the_fit(digits):
    x = digits[:16]
    y = fourier_magnitude(x, 2)
    g = torch.Generator().manual_seed(1)
    start = (x + 0.25 * torch.randn(x.shape, generator=g)).clamp(0, 1)   # a network-like rough guess
    out, kept = P.refine(y, start, pad=2, hio_iters=100, er_iters=50, starts=1)
    e0, e1 = P.magnitude_error(start, y, 2), P.magnitude_error(out, y, 2)
    assert torch.all(e1 <= e0 + 1e-7)
    assert float(e1.mean()) < 0.5 * float(e0.mean())
    m0 = evaluate_reconstructions(start, x, "uelwer")["mse"]
    m1 = evaluate_reconstructions(out, x, "uelwer")["mse"]
    assert m1 < 0.5 * m0
    # without keep_better it is exactly HIO then ER from the start
    from course_lib.phase.classical import error_reduction, hio
    plain, _ = P.refine(y, start, pad=2, hio_iters=30, er_iters=20, starts=1, keep_better=False)
    ref = error_reduction(y, pad=2, iters=20, init=hio(y, pad=2, iters=30, init=start, history=False).images,
                          history=False).images
    assert torch.allclose(plain, ref)


def test_refine_bad_input(digits):
    y = fourier_magnitude(digits[:4], 2)
    with pytest.raises(ValueError, match="start must be images"):
        P.refine(y, digits[:3], pad=2)
    with pytest.raises(ValueError, match="hio_iters must be an int >= 0"):
        P.refine(y, digits[:4], pad=2, hio_iters=-1)
    with pytest.raises(ValueError, match="negative"):
        P.refine(-y, digits[:4], pad=2)


# --- the shipped networks ------------------------------------------------------------

@pytest.mark.parametrize("regime", sorted(P.REGIMES))
@pytest.mark.parametrize("method", ["mlp", "prdad1", "prdad2"])
def test_shipped_network_matches_its_regime_and_its_sidecar(method, regime, digits):
    pad, noise = P.REGIMES[regime]
    model, info = P.pretrained(method, pad, noise)
    assert model.config.method == method and model.config.image_size == 28
    assert float(model.config.pad) == pad
    assert (info["noise"] is None) == (noise is None)
    assert P.regime_name(info["pad"], info["noise"]) == regime      # the sidecar says the same
    assert info["heldout"]["n"] == 1000 and "train split" in info["data"]  # trained on train, scored on held-out
    # the sidecar's held-out MSE is reproduced on the first 48 held-out digits (same protocol, same noise model)
    y = simulate_measurement(digits, pad, noise, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        pred = model(y)
    got = evaluate_reconstructions(pred, digits, "uelwer")
    assert got["mse"] < 2.0 * info["heldout"]["mse"] + 0.005
    # and it beats a constant guess, the mean training digit (MSE about 0.065, SSIM about 0.15 on these digits):
    # the networks alone are far from exact (MSE about 0.04 here) but their digits have the right structure
    mean_digit = load_images("mnist-offline", split="train", limit=1000).mean(0, keepdim=True).expand_as(digits)
    constant = evaluate_reconstructions(mean_digit, digits, "uelwer")
    assert got["mse"] < 0.75 * constant["mse"] and got["ssim"] > constant["ssim"] + 0.25


def test_evaluate_uses_the_shipped_network_of_the_regime(capsys):
    from course_lib.phase.__main__ import main

    assert main(["evaluate", "--data", "mnist-offline", "--method", "prdad1", "--pad", "2", "--noise", "poisson:3",
                 "--limit", "16", "--json", "--threads", "1", "--refine", "20", "--refine-starts", "2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "phase_prdad1_pad2_poisson3.pt" in out["how"] and P.regime_name(out["pad"], out["noise"]) == "pad2_poisson3"
    assert out["refine"]["hio_iters"] == 20 and out["refine"]["er_iters"] == 10 and out["refine"]["starts"] == 2
    assert out["n"] == 16 and 0 <= out["mse"] < 0.1


def test_refine_with_several_starts_picks_the_lowest_magnitude_error(digits):
    x = digits[:24]
    y = fourier_magnitude(x, 1)                      # no oversampling: one start often stagnates
    g = torch.Generator().manual_seed(3)
    start = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    one, _ = P.refine(y, start, pad=1, hio_iters=60, er_iters=30, starts=1)
    four, kept = P.refine(y, start, pad=1, hio_iters=60, er_iters=30, starts=4, seed=0)
    e1, e4 = P.magnitude_error(one, y, 1), P.magnitude_error(four, y, 1)
    assert torch.all(e4 <= e1 + 1e-6)               # the first of the four runs is the single-start run
    assert float(e4.mean()) < float(e1.mean())
    again, _ = P.refine(y, start, pad=1, hio_iters=60, er_iters=30, starts=4, seed=0)
    assert torch.equal(again, four)                  # seeded
    with pytest.raises(ValueError, match="starts must be an int >= 1"):
        P.refine(y, start, pad=1, starts=0)
    with pytest.raises(ValueError, match="jitter must be a finite number >= 0"):
        P.refine(y, start, pad=1, jitter=-1)
