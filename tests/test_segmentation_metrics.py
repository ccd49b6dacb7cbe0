"""segmentation.metrics against sklearn, scipy and hand-computed totals."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import accuracy_score, jaccard_score

from course_lib.segmentation.losses import soft_jaccard
from course_lib.segmentation.metrics import IoUMeter, boundary_f_score, iou, pixel_accuracy


def random_batch(seed, n=6, h=9, w=11):
    rng = np.random.default_rng(seed)
    prob = rng.random((n, 1, h, w))
    truth = (rng.random((n, 1, h, w)) < rng.uniform(0.1, 0.8, (n, 1, 1, 1))).astype(np.int64)
    return prob, truth


@pytest.mark.parametrize("seed", range(3))
def test_iou_matches_sklearn_per_image_and_hand_totals(seed):
    prob, truth = random_batch(seed)
    for threshold in (0.3, 0.5, 0.8):
        hard = prob > threshold
        expected = [jaccard_score(truth[i].ravel(), hard[i].ravel()) for i in range(len(prob))]
        got = iou(torch.from_numpy(prob), torch.from_numpy(truth), threshold=threshold)
        assert got.shape == (len(prob),) and got.dtype == torch.float64
        assert np.allclose(got.numpy(), expected, atol=1e-15)
        # dataset IoU: total intersection / total union, by hand
        inter = np.sum(hard & (truth == 1))
        union = np.sum(hard | (truth == 1))
        pooled = iou(torch.from_numpy(prob), torch.from_numpy(truth), threshold=threshold, per_image=False)
        assert pooled.shape == () and float(pooled) == pytest.approx(inter / union, abs=1e-15)
        assert float(pooled) == pytest.approx(jaccard_score(truth.ravel(), hard.ravel()), abs=1e-15)


def test_iou_hand_case_and_threshold_is_strict():
    target = torch.tensor([[[1, 1, 0], [0, 0, 0]], [[1, 1, 1], [1, 0, 0]]])
    pred = torch.tensor([[[0.9, 0.5, 0.6], [0.0, 0.0, 0.0]],      # 0.5 is not > 0.5: inter 1, union 3
                         [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])     # inter 3, union 4
    assert torch.allclose(iou(pred, target), torch.tensor([1 / 3, 3 / 4], dtype=torch.float64))
    assert float(iou(pred, target, per_image=False)) == pytest.approx(4 / 7)
    assert torch.allclose(iou(pred, target, threshold=0.45), torch.tensor([2 / 3, 3 / 4], dtype=torch.float64))


def test_iou_from_logits_and_hard_masks_agree():
    prob, truth = random_batch(4)
    p = torch.from_numpy(prob).clamp(1e-6, 1 - 1e-6)
    t = torch.from_numpy(truth)
    ref = iou(p, t)
    assert torch.equal(iou(torch.logit(p), t, from_logits=True), ref)
    assert torch.equal(iou(p > 0.5, t), ref)
    assert torch.equal(iou((p > 0.5).long()[:, 0], t.bool()), ref)
    # on binary masks the soft Jaccard of the losses is the same number
    hard = (p > 0.5).double()
    assert float(soft_jaccard(hard, t, from_logits=False, eps=1e-12)) == pytest.approx(float(ref.mean()), abs=1e-9)


def test_empty_mask_conventions():
    empty = torch.zeros(1, 4, 4)
    blob = empty.clone()
    blob[0, 1:3, 1:3] = 1
    assert iou(empty, empty).tolist() == [1.0]                       # nothing to find, nothing predicted
    assert iou(blob, empty).tolist() == [0.0]                        # false alarm on an empty image
    assert iou(empty, blob).tolist() == [0.0]                        # missed everything
    assert float(iou(torch.cat([empty, empty]), torch.cat([empty, empty]), per_image=False)) == 1.0
    # dataset IoU ignores the empty image, mean IoU counts it as 1
    both = iou(torch.cat([blob, empty]), torch.cat([blob, empty]))
    assert both.tolist() == [1.0, 1.0]
    half = torch.cat([blob, blob])
    truth = torch.cat([blob, empty])
    assert iou(half, truth).tolist() == [1.0, 0.0]
    assert float(iou(half, truth, per_image=False)) == pytest.approx(4 / 8)


def test_pixel_accuracy_matches_sklearn():
    prob, truth = random_batch(5)
    got = pixel_accuracy(torch.from_numpy(prob), torch.from_numpy(truth))
    expected = [accuracy_score(truth[i].ravel(), (prob[i] > 0.5).ravel()) for i in range(len(prob))]
    assert np.allclose(got.numpy(), expected, atol=1e-15)
    pooled = pixel_accuracy(torch.from_numpy(prob), torch.from_numpy(truth), per_image=False)
    assert float(pooled) == pytest.approx(accuracy_score(truth.ravel(), (prob > 0.5).ravel()))


def test_meter_accumulates_independently_of_batching():
    prob, truth = random_batch(6, n=7)
    p, t = torch.from_numpy(prob), torch.from_numpy(truth)
    one = IoUMeter()
    one.update(p, t)
    split = IoUMeter()
    for sl in (slice(0, 3), slice(3, 4), slice(4, 7)):
        split.update(p[sl], t[sl])
    a, b = one.compute(), split.compute()
    assert a["n"] == b["n"] == 7
    assert a["miou"] == pytest.approx(float(iou(p, t).mean()), abs=1e-12)
    assert a["dataset_iou"] == pytest.approx(float(iou(p, t, per_image=False)), abs=1e-15)
    assert a["pixel_accuracy"] == pytest.approx(float(pixel_accuracy(p, t, per_image=False)))
    for key in ("miou", "dataset_iou", "pixel_accuracy"):
        assert a[key] == pytest.approx(b[key], abs=1e-12)
    split.reset()
    with pytest.raises(ValueError, match="no images yet"):
        split.compute()


def test_meter_with_images_of_different_sizes_and_logits():
    meter = IoUMeter(from_logits=True)
    small_t = torch.zeros(1, 1, 2, 2)
    small_t[..., 0, :] = 1                                        # 2 person pixels
    big_t = torch.ones(1, 1, 4, 4)                                # 16 person pixels
    meter.update(torch.tensor([[[[5.0, -5.0], [-5.0, -5.0]]]]), small_t)   # inter 1, union 2
    big_pred = torch.full((1, 1, 4, 4), 5.0)
    big_pred[..., 0, 0] = -5.0                                    # inter 15, union 16
    meter.update(big_pred, big_t)
    out = meter.compute()
    assert out["n"] == 2
    assert out["miou"] == pytest.approx((1 / 2 + 15 / 16) / 2)
    assert out["dataset_iou"] == pytest.approx(16 / 18)
    assert out["pixel_accuracy"] == pytest.approx((3 + 15) / 20)


# ----------------------------------------------------------------------------- boundary F

def reference_boundary_f(pred, truth, tol):
    """Contours by scipy erosion (outside the frame counts as inside), matches by Euclidean distance transform."""
    cross = ndimage.generate_binary_structure(2, 1)

    def contour(m):
        return m & ~ndimage.binary_erosion(m, structure=cross, border_value=1)

    bp, bt = contour(pred), contour(truth)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    dist_to_t = ndimage.distance_transform_edt(~bt)
    dist_to_p = ndimage.distance_transform_edt(~bp)
    precision = np.mean(dist_to_t[bp] <= tol)
    recall = np.mean(dist_to_p[bt] <= tol)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_boundary_f_hand_case():
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1                 # contour: a ring of 12 pixels
    pred = torch.zeros(1, 8, 8)
    pred[0, 2:6, 3:7] = 1                   # shifted right: 6 of its 12 contour pixels lie on the true ring
    assert boundary_f_score(pred, target, tolerance_px=0).tolist() == [0.5]
    assert boundary_f_score(pred, target, tolerance_px=1).tolist() == [1.0]
    assert boundary_f_score(target, target, tolerance_px=0).tolist() == [1.0]
    empty = torch.zeros(1, 8, 8)
    assert boundary_f_score(empty, empty).tolist() == [1.0]
    assert boundary_f_score(pred, empty).tolist() == [0.0]
    # a person filling the frame has no contour: the frame is not a boundary
    assert boundary_f_score(torch.ones(1, 5, 5), torch.ones(1, 5, 5)).tolist() == [1.0]
    assert boundary_f_score(torch.ones(1, 5, 5), empty[:, :5, :5]).tolist() == [1.0]


@pytest.mark.parametrize("tol", [0, 1, 2, 3])
def test_boundary_f_matches_scipy_reference(tol):
    rng = np.random.default_rng(tol)
    noise = ndimage.gaussian_filter(rng.normal(size=(4, 24, 20)), sigma=(0, 2.5, 2.5))
    truth = noise > 0
    pred = ndimage.shift(noise, (0, 1, -1), order=0) + rng.normal(0, 0.05, noise.shape) > 0.02
    got = boundary_f_score(torch.from_numpy(pred), torch.from_numpy(truth), tolerance_px=tol)
    expected = [reference_boundary_f(pred[i], truth[i], tol) for i in range(4)]
    assert np.allclose(got.numpy(), expected, atol=1e-12)
    assert 0 < min(expected) < 1                       # the case is not trivial


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("fn", [iou, pixel_accuracy, boundary_f_score])
def test_bad_inputs_raise_clear_errors(fn):
    p = torch.rand(2, 1, 4, 4)
    t = torch.zeros(2, 1, 4, 4)
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"{name}: pred \(2, 1, 4, 4\) and target \(2, 4, 5\)"):
        fn(p, torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=rf"{name}: target must contain only 0 .*found \[2\]"):
        fn(p, torch.full((2, 4, 4), 2))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\] when from_logits=False.*from_logits=True"):
        fn(p * 4 - 2, t)
    with pytest.raises(TypeError, match="from_logits=True needs float logits, got pred of dtype torch.bool"):
        fn(p > 0.5, t, from_logits=True)
    with pytest.raises(ValueError, match=r"threshold must be a finite number >= 0 and < 1, got 1.5"):
        fn(p, t, threshold=1.5)
    nan = p.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="pred must be finite, found 1 NaN"):
        fn(nan, t)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="tolerance_px must be an int >= 0, got -1"):
        boundary_f_score(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), tolerance_px=-1)
    with pytest.raises(ValueError, match=r"IoUMeter: threshold must be a finite number >= 0 and < 1, got 2"):
        IoUMeter(threshold=2)
    with pytest.raises(ValueError, match=r"IoUMeter.update: pred must have shape"):
        IoUMeter().update(torch.zeros(3, 3), torch.zeros(3, 3))
