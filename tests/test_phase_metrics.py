"""phase.metrics on hand-built ambiguous pairs, against skimage.metrics and brute force."""
import math

import numpy as np
import pytest
import torch
from skimage import metrics as skm

from course_lib.phase.fourier import fourier_magnitude
from course_lib.phase.metrics import (
    align_to_target, best_of_twins, circular_shift, evaluate_reconstructions, register_translation, rotate_180,
    rotation_invariant_mse,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def targets():
    """Four 16x16 images with a dark frame (like digits), in [0, 1], float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 16, 16, dtype=torch.float64)
    x[..., 3:13, 4:12] = torch.rand(4, 1, 10, 8, generator=g, dtype=torch.float64)
    return x


def test_rotate_180_is_rot90_twice_and_a_magnitude_twin(targets):
    assert torch.equal(rotate_180(targets), torch.rot90(targets, 2, (-2, -1)))
    for pad in (1, 2):
        torch.testing.assert_close(fourier_magnitude(rotate_180(targets), pad), fourier_magnitude(targets, pad))


def test_the_twin_scores_perfectly_under_both_protocols(targets):
    twin = rotate_180(targets)
    assert float(((twin - targets) ** 2).mean()) > 0.01  # plain MSE sees a difference
    assert float(rotation_invariant_mse(twin, targets).max()) == 0.0
    assert float(best_of_twins(twin, targets, "mae", register=True).max()) == 0.0
    assert torch.allclose(best_of_twins(twin, targets, "ssim"), torch.ones(4, dtype=torch.float64))
    assert bool(torch.isinf(best_of_twins(twin, targets, "psnr")).all())
    for protocol in ("uelwer", "prdad"):
        res = evaluate_reconstructions(twin, targets, protocol)
        assert res["mse"] == 0 and res["mae"] == 0 and res["ssim"] == pytest.approx(1) and res["psnr"] == math.inf
    assert evaluate_reconstructions(twin, targets, "none")["mse"] > 0.01


def test_registration_undoes_circular_shifts(targets):
    shifts = torch.tensor([[0, 0], [2, -3], [-5, 1], [7, 7]])
    moved = torch.stack([torch.roll(t, tuple(s.tolist()), (-2, -1)) for t, s in zip(targets, shifts)])
    torch.testing.assert_close(circular_shift(targets, shifts), moved)  # == torch.roll per image
    registered, found = register_translation(moved, targets)
    torch.testing.assert_close(registered, targets)
    assert torch.equal(circular_shift(moved, found), registered)
    # shifted only: 'prdad' (no registration) sees an error, 'uelwer' none
    assert evaluate_reconstructions(moved[1:], targets[1:], "prdad")["mse"] > 1e-3
    assert evaluate_reconstructions(moved, targets, "uelwer")["mse"] == pytest.approx(0, abs=1e-20)
    # shifted and rotated: the full set of trivial ambiguities of the unpadded magnitude
    both = rotate_180(moved)
    assert float(rotation_invariant_mse(both, targets, register=True).max()) == pytest.approx(0, abs=1e-20)


def test_registration_finds_the_best_circular_shift_by_brute_force():
    rng = np.random.default_rng(3)
    pred, target = rng.random((2, 1, 9, 11)), rng.random((2, 1, 9, 11))
    registered, _ = register_translation(torch.from_numpy(pred), torch.from_numpy(target))
    for i in range(2):
        best = min(((np.roll(pred[i], (a, b), (-2, -1)) - target[i]) ** 2).mean()
                   for a in range(9) for b in range(11))
        assert float(((registered[i] - torch.from_numpy(target[i])) ** 2).mean()) == pytest.approx(best, rel=1e-12)


def test_values_match_skimage_on_an_unrelated_pair(targets):
    rng = np.random.default_rng(1)
    pred = torch.from_numpy(np.clip(targets.numpy() + rng.normal(0, 0.1, targets.shape), 0, 1))
    p, t = pred[0, 0].numpy(), targets[0, 0].numpy()
    kw = dict(data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    ssim_ref = max(skm.structural_similarity(p, t, **kw), skm.structural_similarity(p[::-1, ::-1], t, **kw))
    mse_ref = min(skm.mean_squared_error(p, t), skm.mean_squared_error(p[::-1, ::-1], t))
    psnr_ref = max(skm.peak_signal_noise_ratio(t, p, data_range=1),
                   skm.peak_signal_noise_ratio(t, np.ascontiguousarray(p[::-1, ::-1]), data_range=1))
    assert float(best_of_twins(pred, targets, "ssim")[0]) == pytest.approx(ssim_ref, abs=1e-9)
    assert float(rotation_invariant_mse(pred, targets)[0]) == pytest.approx(mse_ref, rel=1e-12)
    assert float(best_of_twins(pred, targets, "psnr")[0]) == pytest.approx(psnr_ref, rel=1e-12)
    assert float(rotation_invariant_mse(pred[0], targets[0])) == pytest.approx(mse_ref, rel=1e-12)  # one image
    res = evaluate_reconstructions(pred, targets, "prdad", per_image=True)
    assert set(res) == {"mse", "mae", "ssim", "psnr"} and res["ssim"].shape == (4,)
    assert float(res["mse"][0]) == pytest.approx(mse_ref, rel=1e-12)


def test_best_of_twins_with_a_callable_and_align_to_target(targets):
    twin = rotate_180(targets)
    # a similarity: higher is better
    def corr(a, b):
        return (a * b).flatten(1).sum(1)
    got = best_of_twins(twin, targets, corr, higher_is_better=True)
    torch.testing.assert_close(got, corr(targets, targets))
    got_low = best_of_twins(twin, targets, corr)  # the default treats it as an error: the worse candidate
    torch.testing.assert_close(got_low, corr(twin, targets))
    moved = torch.roll(twin, (1, 2), (-2, -1))
    torch.testing.assert_close(align_to_target(moved, targets), targets)
    torch.testing.assert_close(align_to_target(twin, targets, register=False), targets)


def test_bad_inputs_raise_clear_errors(targets):
    with pytest.raises(ValueError, match="pred and target must have the same shape"):
        rotation_invariant_mse(targets[:2], targets)
    with pytest.raises(ValueError, match="protocol must be one of"):
        evaluate_reconstructions(targets, targets, "fienup")
    with pytest.raises(ValueError, match="metric must be one of"):
        best_of_twins(targets, targets, "lpips")
    with pytest.raises(ValueError, match="contradicts"):
        best_of_twins(targets, targets, "mse", higher_is_better=True)
    bad = targets.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="pred must be finite"):
        rotation_invariant_mse(bad, targets)
    with pytest.raises(ValueError, match=r"must have 2 or 3 or 4 dimensions \(H, W\)"):
        rotation_invariant_mse(targets[None], targets[None])
