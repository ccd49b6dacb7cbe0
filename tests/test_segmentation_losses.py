"""segmentation.losses against torch/torchvision/sklearn, numpy hand formulas and brute-force references."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import jaccard_score
from torchvision.ops import sigmoid_focal_loss

from course_lib.segmentation.losses import (
    BCELoss, CombinedLoss, DiceLoss, FocalLoss, LovaszHingeLoss, SoftJaccardLoss,
    bce_loss, combined_loss, dice_loss, focal_loss, lovasz_hinge_loss, soft_jaccard, soft_jaccard_loss,
)


def rand_pair(seed, shape=(3, 1, 5, 6), dtype=torch.float64, density=0.4):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(shape, generator=g, dtype=dtype)
    target = (torch.rand(shape, generator=g) < density).to(dtype)
    return logits, target


# ----------------------------------------------------------------------------- BCE

def test_bce_equals_torch_and_the_lecture_formula():
    x, t = rand_pair(0)
    assert torch.allclose(bce_loss(x, t), F.binary_cross_entropy_with_logits(x, t), atol=1e-12)
    assert torch.allclose(bce_loss(x, t, reduction="sum"),
                          F.binary_cross_entropy_with_logits(x, t, reduction="sum"), atol=1e-10)
    per_pixel = bce_loss(x, t, reduction="none")
    assert per_pixel.shape == (3, 5, 6)
    assert torch.allclose(per_pixel, F.binary_cross_entropy_with_logits(x, t, reduction="none")[:, 0])
    # the lecture: -1/M sum [p log p̂ + (1 - p) log(1 - p̂)] in plain numpy
    xn, pn = x.numpy(), t.numpy()
    q = 1 / (1 + np.exp(-xn))
    hand = -np.mean(pn * np.log(q) + (1 - pn) * np.log(1 - q))
    assert float(bce_loss(x, t)) == pytest.approx(hand, rel=1e-10)
    # from probabilities: same value, and torch's binary_cross_entropy
    prob = torch.sigmoid(x)
    assert float(bce_loss(prob, t, from_logits=False)) == pytest.approx(hand, rel=1e-9)
    assert float(bce_loss(prob, t, from_logits=False)) == pytest.approx(float(F.binary_cross_entropy(prob, t)))


def test_target_dtypes_and_layouts_are_equivalent():
    x, t = rand_pair(1)
    ref = bce_loss(x, t)
    for target in (t.bool(), t.long(), t[:, 0], t[:, 0].to(torch.uint8), t.float()):
        assert torch.allclose(bce_loss(x, target), ref)
        assert torch.allclose(bce_loss(x[:, 0], target), ref)
        assert torch.allclose(soft_jaccard(x, target), soft_jaccard(x, t))


def test_bce_from_probabilities_clamps_zero_and_one():
    t = torch.tensor([[[1.0, 0.0]]])
    wrong = bce_loss(torch.tensor([[[0.0, 1.0]]]), t, from_logits=False)
    assert torch.isfinite(wrong) and float(wrong) == pytest.approx(-np.log(1e-7), rel=1e-3)
    assert float(bce_loss(torch.tensor([[[1.0, 0.0]]]), t, from_logits=False)) < 1e-6


# ----------------------------------------------------------------------------- Jaccard / Dice

def test_soft_jaccard_hand_case():
    p_hat = torch.tensor([[[0.5, 1.0], [0.0, 0.25]]])
    p = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    # <p, p̂> = 1.5, |p| = 2, |p̂| = 1.75, J = 1.5 / (2 + 1.75 - 1.5) = 2/3
    assert float(soft_jaccard(p_hat, p, from_logits=False)) == pytest.approx(2 / 3, abs=1e-6)
    assert float(soft_jaccard_loss(p_hat, p, from_logits=False)) == pytest.approx(1 / 3, abs=1e-6)
    # from logits: σ(logit(q)) = q
    logits = torch.logit(torch.tensor([[[0.5, 0.9], [0.1, 0.25]]], dtype=torch.float64))
    inter, sp, sq = 0.5 + 0.9, 2.0, 0.5 + 0.9 + 0.1 + 0.25
    assert float(soft_jaccard(logits, p.double())) == pytest.approx(inter / (sp + sq - inter), abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_soft_jaccard_on_binary_predictions_is_the_hard_iou(seed):
    rng = np.random.default_rng(seed)
    pred = (rng.random((5, 12, 10)) < rng.uniform(0.2, 0.7)).astype(np.float64)
    truth = (rng.random((5, 12, 10)) < rng.uniform(0.2, 0.7)).astype(np.int64)
    per_image = [jaccard_score(truth[i].ravel(), pred[i].ravel()) for i in range(5)]
    j = soft_jaccard(torch.from_numpy(pred), torch.from_numpy(truth), from_logits=False, eps=1e-9)
    assert float(j) == pytest.approx(np.mean(per_image), abs=1e-8)
    pooled = soft_jaccard(torch.from_numpy(pred), torch.from_numpy(truth), from_logits=False,
                          per_image=False, eps=1e-9)
    assert float(pooled) == pytest.approx(jaccard_score(truth.ravel(), pred.ravel()), abs=1e-8)
    # Dice = 2J / (1 + J) per image on binary masks
    dice = 1 - dice_loss(torch.from_numpy(pred), torch.from_numpy(truth), from_logits=False, eps=1e-9)
    assert float(dice) == pytest.approx(np.mean([2 * a / (1 + a) for a in per_image]), abs=1e-8)


def test_per_image_and_pooled_jaccard_differ_as_documented():
    target = torch.zeros(2, 10, 10)
    target[0] = 1                      # a big person, found exactly
    target[1, 0, 0] = 1                # one pixel, missed
    pred = target.clone()
    pred[1, 0, 0] = 0
    assert float(soft_jaccard(pred, target, from_logits=False)) == pytest.approx(0.5, abs=1e-6)
    assert float(soft_jaccard(pred, target, from_logits=False, per_image=False)) == pytest.approx(100 / 101, abs=1e-6)


def test_empty_mask_conventions():
    empty = torch.zeros(2, 1, 4, 4)
    # nothing to find, nothing predicted: J = 1, loss 0 (probabilities and confident logits)
    for fn in (soft_jaccard_loss, dice_loss):
        assert float(fn(empty, empty, from_logits=False)) == 0.0
        assert float(fn(torch.full_like(empty, -100.0), empty)) == pytest.approx(0.0, abs=1e-6)
        # nothing to find but something predicted: J ~ 0, loss ~ 1
        blob = empty.clone()
        blob[..., :2, :2] = 1
        assert float(fn(blob, empty, from_logits=False)) == pytest.approx(1.0, abs=1e-6)
        # something to find, nothing predicted: loss 1
        assert float(fn(empty, blob, from_logits=False)) == pytest.approx(1.0, abs=1e-6)
    # Lovász: empty truth costs the largest hinge error, 0 once every logit <= -1
    x = torch.full((1, 1, 3, 3), -2.0)
    assert float(lovasz_hinge_loss(x, torch.zeros_like(x))) == 0.0
    x[0, 0, 1, 1] = 0.5
    x[0, 0, 0, 0] = -0.5
    assert float(lovasz_hinge_loss(x, torch.zeros_like(x))) == pytest.approx(1.5)
    # BCE and focal have no special case: confident right logits give ~0
    assert float(bce_loss(torch.full_like(empty, -100.0), empty)) == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------- combined / focal

@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_combined_is_the_documented_convex_combination(w):
    x, t = rand_pair(2)
    expected = (1 - w) * bce_loss(x, t) + w * (1 - soft_jaccard(x, t))
    assert torch.allclose(combined_loss(x, t, w), expected, atol=1e-12)
    assert torch.allclose(combined_loss(x, t, w, per_image=False),
                          (1 - w) * bce_loss(x, t) + w * (1 - soft_jaccard(x, t, per_image=False)), atol=1e-12)
    loss, parts = combined_loss(x, t, w, return_parts=True)
    assert torch.allclose(loss, expected)
    assert parts["bce"] == pytest.approx(float(bce_loss(x, t)))
    assert parts["jaccard_loss"] == pytest.approx(float(soft_jaccard_loss(x, t)))


def test_focal_matches_torchvision_and_hand_formula():
    x, t = rand_pair(3)
    for gamma, alpha in ((2.0, 0.25), (0.5, 0.75), (3.0, None)):
        ref = sigmoid_focal_loss(x, t, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction="mean")
        assert torch.allclose(focal_loss(x, t, gamma=gamma, alpha=alpha), ref, atol=1e-12)
    # -α_t (1 - p_t)^γ log p_t in numpy
    q = 1 / (1 + np.exp(-x.numpy()))
    p = t.numpy()
    pt = np.where(p == 1, q, 1 - q)
    at = np.where(p == 1, 0.25, 0.75)
    hand = -at * (1 - pt) ** 2 * np.log(pt)
    assert np.allclose(focal_loss(x, t, reduction="none").numpy(), hand[:, 0], atol=1e-12)
    assert float(focal_loss(torch.sigmoid(x), t, from_logits=False)) == pytest.approx(hand.mean(), rel=1e-6)
    # γ = 0 without α is the BCE
    assert torch.allclose(focal_loss(x, t, gamma=0, alpha=None), bce_loss(x, t), atol=1e-12)
    # focusing: easy pixels are down-weighted, so focal <= BCE (α = None)
    assert (focal_loss(x, t, alpha=None, reduction="none") <= bce_loss(x, t, reduction="none") + 1e-15).all()


# ----------------------------------------------------------------------------- Lovász hinge

def lovasz_by_sorting(logits, labels):
    """Definition (Berman et al. eq. 9) with the set function evaluated on explicit Python sets."""
    errors = np.maximum(0.0, 1.0 - logits * (2 * labels - 1))
    positives = set(np.flatnonzero(labels).tolist())

    def jaccard_loss_of_wrong(m):
        return 0.0 if not m else 1.0 - len(positives - m) / len(positives | m)

    total, wrong, previous = 0.0, set(), 0.0
    for i in sorted(range(len(errors)), key=lambda k: -errors[k]):
        wrong.add(i)
        d = jaccard_loss_of_wrong(wrong)
        total += errors[i] * (d - previous)
        previous = d
    return total


def lovasz_by_level_sets(logits, labels):
    """The Lovász extension as a Choquet integral: ∫_0^∞ Δ({i : e_i >= s}) ds, exact on the step levels."""
    errors = np.maximum(0.0, 1.0 - logits * (2 * labels - 1))
    pos = labels.astype(bool)
    total, below = 0.0, 0.0
    for level in np.unique(errors[errors > 0]):
        wrong = errors >= level
        inter = np.sum(pos & ~wrong)
        union = np.sum(pos | wrong)
        total += (level - below) * (1.0 - inter / union)
        below = level
    return total


@pytest.mark.parametrize("seed", range(6))
def test_lovasz_matches_brute_force_references(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (3, 3, 3))
    labels = (rng.random((3, 3, 3)) < 0.5).astype(np.float64)
    labels[0] = 0 if seed % 2 else labels[0]          # an empty truth now and then
    per_image = [lovasz_by_sorting(logits[i].ravel(), labels[i].ravel()) for i in range(3)]
    levels = [lovasz_by_level_sets(logits[i].ravel(), labels[i].ravel()) for i in range(3)]
    assert np.allclose(per_image, levels)
    got = lovasz_hinge_loss(torch.from_numpy(logits), torch.from_numpy(labels))
    assert float(got) == pytest.approx(np.mean(per_image), abs=1e-12)
    pooled = lovasz_hinge_loss(torch.from_numpy(logits), torch.from_numpy(labels), per_image=False)
    assert float(pooled) == pytest.approx(lovasz_by_sorting(logits.ravel(), labels.ravel()), abs=1e-12)


def test_lovasz_is_the_jaccard_loss_on_hard_errors():
    """Margins 0 or >= 1 make the errors an indicator of the wrong pixels M: loss = 1 - IoU with M flipped."""
    rng = np.random.default_rng(7)
    for _ in range(5):
        labels = (rng.random(20) < 0.4).astype(np.float64)
        wrong = rng.random(20) < 0.3
        signs = 2 * labels - 1
        logits = np.where(wrong, 0.0, signs * rng.uniform(1, 3, 20))
        predicted = np.where(wrong, 1 - labels, labels)
        expected = 1 - jaccard_score(labels, predicted, zero_division=1.0)
        got = lovasz_hinge_loss(torch.from_numpy(logits).view(1, 4, 5), torch.from_numpy(labels).view(1, 4, 5))
        assert float(got) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- gradients and stability

def _away_from_ties(seed):
    """Logits whose hinge errors are distinct and away from the kink at 0 (gradcheck steps 1e-6)."""
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(2, 1, 3, 4, generator=g) < 0.5).double()
    errors = torch.linspace(-0.9, 1.9, 24, dtype=torch.float64)
    errors = errors[torch.randperm(24, generator=g)].view(2, 1, 3, 4)
    errors = torch.where(errors.abs() < 0.05, errors + 0.1, errors)
    logits = (1 - errors) * (2 * target - 1)            # e = 1 - x s  =>  x = (1 - e) s
    return logits.requires_grad_(), target


@pytest.mark.parametrize("name, fn", [
    ("bce", lambda x, t: bce_loss(x, t)),
    ("soft_jaccard", lambda x, t: soft_jaccard_loss(x, t)),
    ("soft_jaccard_pooled", lambda x, t: soft_jaccard_loss(x, t, per_image=False)),
    ("soft_jaccard_probs", lambda x, t: soft_jaccard_loss(torch.sigmoid(x), t, from_logits=False)),
    ("combined", lambda x, t: combined_loss(x, t, 0.4)),
    ("dice", lambda x, t: dice_loss(x, t)),
    ("focal", lambda x, t: focal_loss(x, t, gamma=2.0, alpha=0.25)),
    ("focal_gamma_half", lambda x, t: focal_loss(x, t, gamma=0.5, alpha=None)),
    ("lovasz", lambda x, t: lovasz_hinge_loss(x, t)),
    ("lovasz_pooled", lambda x, t: lovasz_hinge_loss(x, t, per_image=False)),
])
def test_gradcheck(name, fn):
    x, t = _away_from_ties(0)
    assert torch.autograd.gradcheck(lambda z: fn(z, t), (x,), eps=1e-6, atol=1e-7)


ALL_LOSSES = {
    "bce": bce_loss, "soft_jaccard": soft_jaccard_loss, "combined": combined_loss, "dice": dice_loss,
    "focal": focal_loss, "focal_gamma_half": lambda x, t: focal_loss(x, t, gamma=0.5),
    "lovasz": lovasz_hinge_loss,
}


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_stable_at_extreme_logits(name):
    fn = ALL_LOSSES[name]
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    right = (100 * (2 * target - 1)).requires_grad_()
    wrong = (-100 * (2 * target - 1)).requires_grad_()
    for x in (right, wrong):
        loss = fn(x, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), (name, loss, x.grad)
    right, wrong = right.detach(), wrong.detach()
    assert float(fn(right, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(fn(wrong, target)) > 0.5
    if name == "bce":
        assert float(fn(wrong, target)) == pytest.approx(100.0)
    # float16 logits (autocast) are computed in float32
    assert fn(right.half(), target).dtype == torch.float32


# ----------------------------------------------------------------------------- modules

@pytest.mark.parametrize("module, fn", [
    (BCELoss(), bce_loss),
    (SoftJaccardLoss(per_image=False), lambda x, t: soft_jaccard_loss(x, t, per_image=False)),
    (CombinedLoss(0.7), lambda x, t: combined_loss(x, t, 0.7)),
    (DiceLoss(), dice_loss),
    (FocalLoss(gamma=1.0, alpha=0.6), lambda x, t: focal_loss(x, t, gamma=1.0, alpha=0.6)),
    (LovaszHingeLoss(per_image=False), lambda x, t: lovasz_hinge_loss(x, t, per_image=False)),
])
def test_modules_wrap_the_functions(module, fn):
    x, t = rand_pair(5, dtype=torch.float32)
    x.requires_grad_()
    out = module(x, t)
    assert out.shape == () and torch.equal(out, fn(x, t))
    out.backward()
    assert x.grad.shape == x.shape
    assert type(module).__name__ in repr(module)


def test_combined_module_can_return_logs_for_fit():
    x, t = rand_pair(6)
    loss, logs = CombinedLoss(0.5, return_parts=True)(x, t)
    assert loss.shape == () and set(logs) == {"bce", "jaccard_loss"}


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("fn", [bce_loss, soft_jaccard_loss, combined_loss, dice_loss, focal_loss, lovasz_hinge_loss])
def test_bad_inputs_raise_clear_errors(fn):
    x = torch.zeros(2, 1, 4, 4)
    t = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"pred \(2, 1, 4, 4\) and target \(2, 1, 4, 5\)"):
        fn(x, torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match=r"pred must be a single-channel map .*got shape \(2, 3, 4, 4\)"):
        fn(torch.zeros(2, 3, 4, 4), t)
    with pytest.raises(ValueError, match=r"target must have shape .*got \(4, 4\).*unsqueeze"):
        fn(x, torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"target must contain only 0 .* and 1 .*found \[0.5\]"):
        fn(x, torch.full((2, 1, 4, 4), 0.5))
    mask255 = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    mask255[0, 0, 0, 0] = 255
    with pytest.raises(ValueError, match=r"found \[255\].*divide by 255"):
        fn(x, mask255)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    bad[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"pred must be finite, found 1 NaN and 1 infinite"):
        fn(bad, t)
    with pytest.raises(TypeError, match="pred must be a float tensor.*torch.int64"):
        fn(torch.zeros(2, 1, 4, 4, dtype=torch.long), t)
    with pytest.raises(TypeError, match="target must be a torch.Tensor, got ndarray"):
        fn(x, np.zeros((2, 1, 4, 4)))


@pytest.mark.parametrize("fn", [bce_loss, soft_jaccard_loss, combined_loss, dice_loss, focal_loss])
def test_probabilities_out_of_range_point_to_from_logits(fn):
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\] when from_logits=False.*\[-2, 3\].*from_logits=True"):
        fn(torch.tensor([[[-2.0, 3.0]]]), torch.tensor([[[0.0, 1.0]]]), from_logits=False)


def test_bad_options_raise():
    x, t = rand_pair(8)
    with pytest.raises(ValueError, match="reduction must be one of .*got 'avg'"):
        bce_loss(x, t, reduction="avg")
    with pytest.raises(ValueError, match=r"jaccard_weight must be a finite number >= 0.0 and <= 1.0, got 1.5"):
        combined_loss(x, t, 1.5)
    with pytest.raises(ValueError, match=r"jaccard_weight .* got -0.1"):
        CombinedLoss(-0.1)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0, got -1"):
        focal_loss(x, t, gamma=-1)
    with pytest.raises(ValueError, match=r"alpha \(or None\) must be a finite number >= 0.0 and <= 1.0, got 2"):
        focal_loss(x, t, alpha=2)
    with pytest.raises(ValueError, match="eps must be a finite number > 0, got 0"):
        soft_jaccard(x, t, eps=0)
    with pytest.raises(ValueError, match="empty"):
        bce_loss(torch.zeros(0, 1, 4, 4), torch.zeros(0, 1, 4, 4))
