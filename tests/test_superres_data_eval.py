"""Paired patches, evaluation protocol, shipped checkpoints and the command line."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata, metrics as skm, color

from course_lib.core.checkpoints import CheckpointError, save_pretrained
from course_lib.core.images import save_image, to_tensor, rgb_to_y
from course_lib.superres import data as srdata
from course_lib.superres import pretrained, pretrained_deblock, CHECKPOINT_DIR
from course_lib.superres.degrade import degrade
from course_lib.superres.evaluate import evaluate_images, sr_methods
from course_lib.superres.models import ESPCN, espcn_paper

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def images():
    return {"astronaut": to_tensor(skdata.astronaut()[:120, :150]), "coffee": to_tensor(skdata.coffee()[:99, :130])}


def test_patches_are_aligned_and_equal_the_whole_image_lr(images):
    ds = srdata.PairedPatches(images, 3, 30, patches_per_image=5, augment=False, lr_cache="memory")
    torch.manual_seed(0)
    for i in range(len(ds)):
        lr, hr = ds[i]
        assert lr.shape == (3, 10, 10) and hr.shape == (3, 30, 30)
        full = images[list(images)[i // 5]]
        full = full[:, : full.shape[1] // 3 * 3, : full.shape[2] // 3 * 3]
        lr_full = degrade(full, 3, "bicubic", seed=i // 5)
        # find the HR crop position, then check the LR crop is the same block of the whole-image LR
        hits = [(t, l) for t in range(0, full.shape[1] - 29, 3) for l in range(0, full.shape[2] - 29, 3)
                if torch.equal(full[:, t:t + 30, l:l + 30], hr)]
        assert hits, "HR patch is not an aligned crop"
        t, l = hits[0]
        assert torch.allclose(lr, lr_full[:, t // 3: t // 3 + 10, l // 3: l // 3 + 10], atol=1e-6)


def test_on_the_fly_patches_are_reproducible_and_y_only(images):
    ds = srdata.PairedPatches(images, 2, 33, patches_per_image=3, y_only=True)
    torch.manual_seed(1)
    a = [ds[i] for i in range(len(ds))]
    torch.manual_seed(1)
    b = [ds[i] for i in range(len(ds))]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    lr, hr = a[0]
    assert hr.shape == (1, 32, 32) and lr.shape == (1, 16, 16)  # patch rounded down to a multiple of 2


def test_folder_is_listed_lazily_and_bad_files_are_skipped(tmp_path, monkeypatch):
    for i in range(3):
        save_image(to_tensor(skdata.astronaut()[i * 50: i * 50 + 90, :90]), tmp_path / f"ok{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    save_image(torch.rand(3, 20, 20), tmp_path / "tiny.png")
    calls = []
    real = srdata.load_tensor
    monkeypatch.setattr(srdata, "load_tensor", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    ds = srdata.PairedPatches(tmp_path, 3, 48, patches_per_image=2)
    assert calls == [] and len(ds) == 10  # nothing decoded when the dataset is made
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = [ds[i] for i in range(len(ds))]  # never raises
    assert all(hr.shape == (3, 48, 48) for _, hr in samples)
    assert set(Path(k).name for k in ds.skipped) == {"broken.jpg", "tiny.png"}
    assert any("skipping" in str(w.message) for w in caught)


def test_all_unusable_images_is_a_clear_error(tmp_path):
    save_image(torch.rand(3, 20, 20), tmp_path / "tiny.png")
    ds = srdata.PairedPatches(tmp_path, 2, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="none of the 1 images is usable"):
            ds[0]


def test_lr_cache_on_disk_is_reused(images, tmp_path):
    ds = srdata.PairedPatches(images, 2, 32, lr_cache=tmp_path / "lr", augment=False)
    torch.manual_seed(0)
    first = ds[0]
    files = list((tmp_path / "lr").glob("*.png"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    torch.manual_seed(0)
    assert torch.equal(ds[0][0], first[0]) and files[0].stat().st_mtime_ns == mtime


def test_bad_arguments(images):
    with pytest.raises(ValueError, match="scale must be an int >= 1"):
        srdata.PairedPatches(images, 0)
    with pytest.raises(ValueError, match="degradation must be one of"):
        srdata.PairedPatches(images, 2, degradation="blurry")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        srdata.PairedPatches("/nonexistent/folder", 2)
    with pytest.raises(ValueError, match="split must be"):
        srdata.offline_images("test")


def test_zone_plate_shows_aliasing_only_without_antialiasing():
    from course_lib.superres.degrade import downscale

    zp = srdata.zone_plate(128)
    assert zp.shape == (3, 128, 128) and 0 <= zp.min() and zp.max() <= 1
    assert float(zp[0, 64, 64]) == pytest.approx(np.cos(np.pi * 0.5 / 128) * 0.5 + 0.5, abs=1e-6)
    c = torch.arange(32) - 15.5
    outer = (c[None] ** 2 + c[:, None] ** 2).sqrt() > 8  # beyond the new Nyquist radius (a quarter of 128 -> 8 LR px)
    good = downscale(zp, 4, "bicubic", antialias=True)[0][outer]
    bad = downscale(zp, 4, "bicubic", antialias=False)[0][outer]
    assert good.std() < 0.05 and bad.std() > 0.15  # false rings survive only without the low-pass


def test_evaluation_follows_the_protocol(images):
    res = evaluate_images(images, 3, sr_methods(None))
    hr = images["coffee"][:, :99, :129]
    lr = degrade(hr, 3, "bicubic", seed=1)
    from course_lib.superres.interpolate import upscale_interpolate
    sr = upscale_interpolate(lr, 3, "bicubic").permute(1, 2, 0).double().numpy()
    ref_y = color.rgb2ycbcr(hr.permute(1, 2, 0).double().numpy())[3:-3, 3:-3, 0] / 255
    sr_y = color.rgb2ycbcr(sr)[3:-3, 3:-3, 0] / 255
    expected = skm.peak_signal_noise_ratio(ref_y, sr_y, data_range=1)
    row = [r for r in res["per_image"] if r["image"] == "coffee"][0]
    assert row["psnr_y"] == pytest.approx(expected, abs=1e-6)
    assert res["mean"]["bicubic"]["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in res["per_image"]]))


def test_shipped_checkpoints_load_with_their_provenance():
    for r in (2, 3, 4):
        model, info = pretrained(r, with_info=True)
        assert isinstance(model, ESPCN) and model.scale == r and not model.training
        assert info["command"].startswith("python -m course_lib.superres train")
        assert info["steps"] > 0 and "espcn" in info["heldout_metrics"]
        assert (CHECKPOINT_DIR / f"espcn_x{r}.pt").stat().st_size < 20e6
    deblock, info = pretrained_deblock(with_info=True)
    assert "--deblock" in info["command"]
    with pytest.raises(ValueError, match="scale must be one of"):
        pretrained(5)


def test_shipped_checkpoints_give_their_held_out_numbers():
    """The readable models load the shipped weights (same state_dict keys) and give the sidecars' numbers."""
    from course_lib.superres.models import DeblockThenSR

    holdout = srdata.offline_images("holdout")
    for r in (2, 3, 4):
        model, info = pretrained(r, with_info=True)
        mean = evaluate_images(holdout, r, sr_methods(model))["mean"]
        for key in ("psnr_y", "ssim_y"):
            assert mean["espcn"][key] == pytest.approx(info["heldout_metrics"]["espcn"][key], abs=1e-3), (r, key)
    sr = pretrained(3)
    mean = evaluate_images(holdout, 3, sr_methods(sr, DeblockThenSR(pretrained_deblock(), sr).eval()),
                           degradation="jpeg30")["mean"]
    # measured before the issue-13 redesign (the sidecar's 28.6121 was with an earlier espcn_x3.pt)
    assert mean["deblock+espcn"]["psnr_y"] == pytest.approx(28.6450, abs=1e-3)
    assert mean["deblock+espcn"]["ssim_y"] == pytest.approx(0.78878, abs=1e-4)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    from course_lib.core.checkpoints import load_pretrained
    from course_lib.superres.models import DeblockNet

    save_pretrained(tmp_path / "x.pt", ESPCN(espcn_paper(2)), arch="espcn", config=ESPCN(espcn_paper(2)).config_dict())
    with pytest.raises(CheckpointError, match="holds a 'espcn' model, expected 'deblock'"):
        load_pretrained(tmp_path / "x.pt", DeblockNet, arch="deblock")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "course_lib.superres", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_cli_evaluate_json_and_errors(tmp_path, images):
    for name, img in images.items():
        save_image(img, tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    out = run_cli("evaluate", "--images", str(tmp_path), "--scale", "3", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["n_images"] == 2 and set(res["mean"]) == {"bicubic", "espcn"}
    assert res["mean"]["espcn"]["psnr_y"] > res["mean"]["bicubic"]["psnr_y"]
    jp = json.loads(run_cli("evaluate", "--images", str(tmp_path), "--scale", "3", "--degradation", "jpeg30", "--json").stdout)
    assert set(jp["mean"]) == {"bicubic", "espcn", "deblock+espcn"}
    bad = run_cli("evaluate", "--images", str(tmp_path), "--scale", "3", "--checkpoint",
                  str(CHECKPOINT_DIR / "espcn_x2.pt"))
    assert bad.returncode == 2 and "x2 model, but --scale 3" in bad.stderr
    bad = run_cli("evaluate", "--images", str(tmp_path), "--degradation", "fuzzy")
    assert bad.returncode == 2 and "must be one of" in bad.stderr
    bad = run_cli("train", "--images", str(tmp_path), "--workers", "-1")
    assert bad.returncode == 2 and "--workers must be >= 0" in bad.stderr


def test_cli_upscale(tmp_path):
    img = Image.fromarray(skdata.coffee()[:40, :50])
    img.save(tmp_path / "in.jpg")
    out = run_cli("upscale", str(tmp_path / "in.jpg"), str(tmp_path / "out.png"), "--scale", "2")
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "out.png").size == (100, 80)
    missing = run_cli("upscale", str(tmp_path / "nope.jpg"), str(tmp_path / "o.png"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_train_espcn_and_deblock_learn_and_resume(images, tmp_path):
    """Both trainings lower their validation loss, run with DataLoader workers, and resume from their checkpoint."""
    from course_lib.superres.train import train_deblock, train_espcn

    torch.manual_seed(0)  # train_espcn(seed=0) builds its network after the same seeding: the same initial weights
    start = ESPCN(espcn_paper(2))
    res = train_espcn(images, 2, val_images=images, steps=60, batch_size=8, lr=3e-3, eval_every=30,
                      checkpoint=tmp_path / "sr.pt", progress=False)
    assert res.step == 60 and not res.interrupted and len(res.history["val"]) == 2
    first = evaluate_images(images, 2, sr_methods(start))["mean"]["espcn"]["psnr_y"]
    assert evaluate_images(images, 2, sr_methods(res.model.cpu()))["mean"]["espcn"]["psnr_y"] > first + 3
    again = train_espcn(images, 2, val_images=images, steps=60, batch_size=8, lr=3e-3, eval_every=30,
                        checkpoint=tmp_path / "sr.pt", progress=False)
    assert again.resumed_from == 60 and again.step == 60
    with pytest.raises(CheckpointError, match="schedule: 'cosine over 60 steps, warm-up 3' in the checkpoint"):
        train_espcn(images, 2, val_images=images, steps=70, batch_size=8, lr=3e-3, eval_every=35,
                    checkpoint=tmp_path / "sr.pt", progress=False)  # the cosine spans the steps: another run
    db = train_deblock(images, quality=(10, 20), val_images=images, steps=4, batch_size=4, patch_size=32,
                       eval_every=2, checkpoint=tmp_path / "db.pt", num_workers=1, progress=False)
    assert db.step == 4 and len(db.history["val"]) == 2 and all(np.isfinite(r["loss"]) for r in db.history["val"])
    # the net starts as the identity (last layer zero); four steps from a worker's batches moved it away from that
    last = [m for m in db.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.weight.abs().sum() > 0
