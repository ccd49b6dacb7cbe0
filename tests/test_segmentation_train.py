"""Segmentation training, evaluation at the masks' resolution, portrait effects and the command line."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import jaccard_score

from course_lib.segmentation import losses as L
from course_lib.segmentation.effects import blur_background, replace_background, soft_alpha
from course_lib.segmentation.portraits import imbalanced_blobs, synthetic_portraits
from course_lib.segmentation.train import (PreloadedPortraits, evaluate_segmentation, make_loss, poly_schedule,
                                           predict_logits, train_segmentation)


class Oracle(torch.nn.Module):
    """Logits +-8 from masks it was given: a 'network' whose IoU is known."""

    def __init__(self, masks):
        super().__init__()
        self.masks = masks
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.i = 0

    def forward(self, x):
        m = self.masks[self.i % len(self.masks)]
        self.i += 1
        m = torch.nn.functional.interpolate(m[None].float(), size=x.shape[-2:], mode="nearest")
        return (m - 0.5) * 16 + self.w


def test_make_loss_adds_aux_with_weight():
    out, aux = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    t = (torch.rand(2, 1, 8, 8) > 0.6).float()
    loss, logs = make_loss("combined", jaccard_weight=0.3, aux_weight=0.4)({"out": out, "aux": aux}, t)
    expected = L.combined_loss(out, t, 0.3) + 0.4 * L.combined_loss(aux, t, 0.3)
    assert torch.isclose(loss, expected)
    assert logs["main"] == pytest.approx(float(L.combined_loss(out, t, 0.3)), rel=1e-6)
    bce, _ = make_loss("bce")(out, t)
    assert torch.isclose(bce, torch.nn.functional.binary_cross_entropy_with_logits(out, t))
    with pytest.raises(ValueError, match="name must be one of"):
        make_loss("hinge")


def test_poly_schedule_matches_formula():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = poly_schedule(100, power=0.9, warmup=10)(opt)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[50] == pytest.approx((1 - 50 / 100) ** 0.9)


def test_preloaded_portraits_round_trip_and_errors():
    images = torch.rand(3, 3, 20, 16)
    masks = (torch.rand(3, 1, 20, 16) > 0.5).float()
    data = PreloadedPortraits((images, masks), (20, 16), progress=False)
    img, mask = data[1]
    assert torch.allclose(img, images[1], atol=0.5 / 255 + 1e-6)
    assert torch.equal(mask, masks[1])
    assert data.foreground_fraction == pytest.approx(float(masks.mean()))
    with pytest.raises(ValueError, match="N, H, W"):
        PreloadedPortraits((images, masks[:2]), 8, progress=False)
    with pytest.raises(ValueError, match="size"):
        PreloadedPortraits((images, masks), (4, 200), progress=False)


def test_evaluate_at_mask_resolution_matches_sklearn():
    rng = np.random.default_rng(0)
    masks = [torch.tensor(rng.random((1, 30, 22)) > 0.7, dtype=torch.float32) for _ in range(3)]
    preds = [torch.tensor(rng.random((1, 30, 22)) > 0.6, dtype=torch.float32) for _ in range(3)]
    data = [(torch.rand(3, 30, 22), m) for m in masks]
    res = evaluate_segmentation(Oracle(preds), data, progress=False)
    ref = [jaccard_score(m.numpy().ravel(), p.numpy().ravel()) for m, p in zip(masks, preds)]
    assert res["per_image"] == pytest.approx(ref)
    assert res["miou"] == pytest.approx(np.mean(ref))
    inter = sum(float((m * p).sum()) for m, p in zip(masks, preds))
    union = sum(float(((m + p) > 0).sum()) for m, p in zip(masks, preds))
    assert res["dataset_iou"] == pytest.approx(inter / union)
    # the network may run at another size: logits come back at the mask's size
    assert predict_logits(Oracle(preds), torch.rand(1, 3, 30, 22), size=(16, 12)).shape == (1, 1, 30, 22)
    with pytest.raises(ValueError, match="differ in size"):
        evaluate_segmentation(Oracle(preds), [(torch.rand(3, 30, 22), torch.zeros(1, 29, 22))], progress=False)
    with pytest.raises(ValueError, match="no images"):
        evaluate_segmentation(Oracle(preds), [], progress=False)


def test_training_raises_iou_on_an_imbalanced_task():
    torch.manual_seed(0)
    x, y = imbalanced_blobs(32, 32, seed=1)
    x = x.repeat(1, 3, 1, 1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 1, 1))
    before = evaluate_segmentation(net, (x[24:], y[24:]), progress=False)["miou"]
    result = train_segmentation(net, torch.utils.data.TensorDataset(x[:24], y[:24]),
                                torch.utils.data.TensorDataset(x[24:], y[24:]), steps=120, loss="jaccard",
                                batch_size=8, lr=3e-3, progress=False, eval_every=60)
    after = evaluate_segmentation(result.model, (x[24:], y[24:]), progress=False)["miou"]
    assert after > before + 0.15 and after > 0.2, (before, after)
    assert result.history["val"][-1]["miou"] == pytest.approx(after, abs=0.05)


def test_portrait_effects():  # the blur itself is core.filters.gaussian_blur, tested against scipy there
    img = torch.rand(3, 40, 30)
    mask = torch.zeros(40, 30)
    mask[10:30, 8:22] = 1
    out = blur_background(img, mask, sigma=4, feather=0)
    assert torch.equal(out[:, 10:30, 8:22], img[:, 10:30, 8:22])  # the person stays sharp
    assert out[:, :5].std() < img[:, :5].std() / 2  # the background is blurred
    bg = torch.zeros(3, 20, 15)
    rep = replace_background(img, mask, bg, feather=0)
    assert torch.equal(rep[:, 10:30, 8:22], img[:, 10:30, 8:22]) and rep[:, :5].abs().max() == 0
    soft = soft_alpha(mask, feather=2)
    assert 0 < float(soft[9, 15]) < 1 and float(soft[20, 15]) == pytest.approx(1, abs=1e-6)
    with pytest.raises(ValueError, match="differ in size"):
        blur_background(img, torch.zeros(10, 10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        replace_background(img, mask * 3, bg)


def test_cli_train_evaluate_predict(tmp_path, capsys, monkeypatch):
    from course_lib.segmentation.__main__ import main

    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))  # the decoded-portrait cache goes there

    data = synthetic_portraits(10, size=(48, 40), seed=3, backgrounds="noise")
    (tmp_path / "img").mkdir(), (tmp_path / "mask").mkdir()
    for i in range(len(data)):
        img, mask = data[i]
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / "img" / f"p{i}.png")
        Image.fromarray((mask[0].numpy() * 255).astype(np.uint8)).save(tmp_path / "mask" / f"p{i}.png")
    model = tmp_path / "m.pt"
    assert main(["train", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "mask"), "--preset",
                 "light", "--size", "48", "40", "--steps", "3", "--batch-size", "2", "--val-fraction",
                 "0.3", "--eval-every", "3", "--out", str(model), "--checkpoint", str(tmp_path / "run.pt"),
                 "--warmup", "0"]) == 0
    side = json.loads((tmp_path / "m.pt.json").read_text())
    assert side["steps"] == 3 and side["input_size_hw"] == [48, 40] and 0 <= side["val_miou"] <= 1
    assert 0 <= side["val_miou_tta"] <= 1 and "flip True" in side["tta"]
    assert side["train_images"] + side["val_images"] == 10 and not side["synthetic_data"]
    capsys.readouterr()
    assert main(["evaluate", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "mask"), "--checkpoint",
                 str(model), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["n"] == 10 and 0 <= res["mean_per_image_iou"] <= 1 and "dataset_iou" in res and res["tta"] == "none"
    assert main(["evaluate", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "mask"), "--checkpoint",
                 str(model), "--json", "--tta", "--limit", "2"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["n"] == 2 and "flip True" in res["tta"]
    out = tmp_path / "pred.png"
    assert main(["predict", str(tmp_path / "img" / "p0.png"), str(out), "--checkpoint", str(model)]) == 0
    pred = np.asarray(Image.open(out))
    assert pred.shape == (48, 40) and set(np.unique(pred)) <= {0, 255}
    assert main(["predict", str(tmp_path / "img" / "p0.png"), str(out), "--checkpoint", str(model),
                 "--effect", "replace"]) == 2
    assert "--background" in capsys.readouterr().err
    assert main(["evaluate", "--images", str(tmp_path / "nowhere"), "--checkpoint", str(model)]) == 2
    # fine-tuning: --init starts from the saved weights (a fresh optimiser and schedule)
    tuned = tmp_path / "tuned.pt"
    assert main(["train", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "mask"), "--init", str(model),
                 "--size", "48", "40", "--steps", "2", "--batch-size", "2", "--val-fraction", "0.3",
                 "--eval-every", "2", "--out", str(tuned), "--checkpoint", str(tmp_path / "run2.pt"),
                 "--warmup", "0", "--workers", "1"]) == 0  # the augmentation in a DataLoader worker process
    side2 = json.loads((tmp_path / "tuned.pt.json").read_text())
    assert side2["init"].startswith(str(model)) and side2["steps"] == 2 and side2["device"] == "cpu"
    assert main(["train", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "mask"), "--workers", "-1",
                 "--out", str(tuned)]) == 2
    assert "--workers must be >= 0" in capsys.readouterr().err
    assert main(["train", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "mask"), "--init",
                 str(tmp_path / "missing.pt"), "--out", str(tuned)]) == 2
    assert "--init: no checkpoint at" in capsys.readouterr().err


def test_preloaded_cache_is_reused_only_for_the_same_files(tmp_path):
    from course_lib.segmentation.portraits import PortraitFolder

    data = synthetic_portraits(3, size=(24, 20), seed=5, backgrounds="noise")
    (tmp_path / "img").mkdir(), (tmp_path / "mask").mkdir()
    for i in range(3):
        img, mask = data[i]
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / "img" / f"p{i}.png")
        Image.fromarray((mask[0].numpy() * 255).astype(np.uint8)).save(tmp_path / "mask" / f"p{i}.png")
    cache = tmp_path / "cache.pt"
    first = PreloadedPortraits(PortraitFolder(tmp_path / "img", tmp_path / "mask"), (24, 20), cache=cache,
                               progress=False)
    assert cache.is_file()
    again = PreloadedPortraits(PortraitFolder(tmp_path / "img", tmp_path / "mask"), (24, 20), cache=cache,
                               progress=False)
    assert torch.equal(first.images, again.images)
    # a photo changes on disk (same name): the cache must not be used
    Image.fromarray(np.zeros((24, 20, 3), np.uint8)).save(tmp_path / "img" / "p0.png")
    import os
    os.utime(tmp_path / "img" / "p0.png", ns=(1, 10**18))
    changed = PreloadedPortraits(PortraitFolder(tmp_path / "img", tmp_path / "mask"), (24, 20), cache=cache,
                                 progress=False)
    assert changed.images[0].max() == 0 and not torch.equal(changed.images, first.images)


def test_test_time_augmentation_averages_mirrored_and_rescaled_runs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 1, 3, padding=1)).eval()
    x = torch.rand(2, 3, 24, 16)
    with torch.no_grad():
        plain = net(x)
        mirrored = net(x.flip(-1)).flip(-1)
    assert torch.allclose(predict_logits(net, x), plain, atol=1e-6)
    assert torch.allclose(predict_logits(net, x, flip=True), (plain + mirrored) / 2, atol=1e-6)
    assert not torch.allclose(plain, mirrored, atol=1e-3)          # the net is not mirror-symmetric itself
    # a mirror-symmetric image: the flipped run adds nothing new
    sym = torch.cat([x[..., :8], x[..., :8].flip(-1)], -1)
    sym_net = lambda t: net(t) + net(t.flip(-1)).flip(-1)  # noqa: E731  a mirror-equivariant model
    wrapped = torch.nn.Module()
    wrapped.forward = sym_net
    wrapped.p = torch.nn.Parameter(torch.zeros(()))
    assert torch.allclose(predict_logits(wrapped, sym, flip=True), predict_logits(wrapped, sym), atol=1e-5)
    # scale 1.25 of (24, 16): the network runs at (32, 24) (multiples of 8) and the logits come back to 24 x 16
    seen = []
    hook = net[0].register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[-2:])))
    out = predict_logits(net, x, size=(24, 16), scales=(1.0, 1.25), flip=True)
    hook.remove()
    assert out.shape == (2, 1, 24, 16) and seen == [(24, 16), (24, 16), (32, 24), (32, 24)]
    big = torch.nn.functional.interpolate(x, size=(32, 24), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        runs = [plain, mirrored] + [torch.nn.functional.interpolate(r, size=(24, 16), mode="bilinear",
                                                                    align_corners=False)
                                    for r in (net(big), net(big.flip(-1)).flip(-1))]
    assert torch.allclose(out, sum(runs) / 4, atol=1e-5)
    with pytest.raises(ValueError, match="scales must be"):
        predict_logits(net, x, scales=())
    with pytest.raises(ValueError, match="flip must be True or False"):
        evaluate_segmentation(net, (x, torch.zeros(2, 1, 24, 16)), flip="yes", progress=False)


def test_streamed_portraits_serve_the_preloaded_values(tmp_path):
    """A folder too large for memory is read per sample (issue 15) with exactly the values preloading keeps."""
    from PIL import Image

    from course_lib.segmentation.portraits import PortraitAugment, PortraitFolder
    from course_lib.segmentation.train import StreamedPortraits

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    for k in range(5):
        Image.fromarray(rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)).save(tmp_path / "img" / f"p{k}.png")
        Image.fromarray((rng.random((37, 29)) > 0.5).astype(np.uint8) * 255).save(tmp_path / "mask" / f"p{k}.png")
    folder = PortraitFolder(tmp_path / "img", tmp_path / "mask")
    pre = PreloadedPortraits(folder, (20, 16), progress=False)
    streamed = StreamedPortraits(folder, (20, 16))
    assert len(streamed) == len(pre) == 5
    for k in range(5):
        for a, b in zip(streamed[k], pre[k]):
            assert torch.equal(a, b)
    aug = PortraitAugment((20, 16))
    pre.augment, streamed.augment = aug, aug
    torch.manual_seed(3)
    first = streamed[2]
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(first, pre[2]))
