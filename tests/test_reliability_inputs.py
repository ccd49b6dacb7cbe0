"""Inputs and loaders that used to fail silently or with a traceback (issue 16).

* unreadable segmentation pairs are skipped and counted, never replaced by a readable one;
* ``--limit`` follows one rule in every command line (an int >= 1);
* NaN and empty images into the metrics, ``upscale`` and ``to_pil`` raise a clear ``ValueError``;
* decompression bombs give a one-line error, and are skipped inside training/evaluation folders;
* very large images are upscaled block by block (same result, bounded memory);
* unreadable content photos are skipped in style training; too-small images give the minimum size.
"""
import io
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bomb_png(path, width=100_000, height=100_000):
    """A valid 8x8 PNG whose header claims ``width x height`` (PIL refuses to open it)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, "PNG")
    b = bytearray(buf.getvalue())
    assert b[12:16] == b"IHDR"
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    return path


def _noise_png(path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture()
def portraits(tmp_path):
    """12 readable portrait pairs + 3 pairs whose photo is not an image (the q* stems sort last)."""
    from course_lib.segmentation.portraits import synthetic_portraits

    img, mask = tmp_path / "img", tmp_path / "mask"
    img.mkdir(), mask.mkdir()
    data = synthetic_portraits(12, size=(48, 40), seed=3, backgrounds="noise")
    for i in range(12):
        x, m = data[i]
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(img / f"p{i:02d}.png")
        Image.fromarray((m[0].numpy() * 255).astype(np.uint8)).save(mask / f"p{i:02d}.png")
    for j in range(3):
        (img / f"q{j}.png").write_bytes(b"not an image")
        shutil.copy(mask / "p00.png", mask / f"q{j}.png")
    return img, mask


# --- 2. segmentation: unreadable pairs are skipped and counted, not replaced ------------------

def test_portrait_folder_readable_view_has_distinct_readable_pairs(portraits):
    from course_lib.segmentation.portraits import PortraitFolder

    with pytest.warns(UserWarning, match="skipped 3 unreadable"):
        view = PortraitFolder(*portraits).readable()
    assert len(view) == 12 and sorted(view.skipped) == ["q0", "q1", "q2"]
    images = [view[i][0] for i in range(len(view))]
    assert all(not torch.equal(images[i], images[j]) for i in range(12) for j in range(i))  # no stand-ins
    assert "skipped (unreadable): 3" in view.report()
    assert len(PortraitFolder(*portraits).readable(limit=5)) == 5


def test_segmentation_evaluate_scores_only_readable_pairs(portraits, tmp_path, capsys):
    from course_lib.segmentation.__main__ import main

    img, mask = portraits
    args = ["evaluate", "--masks", str(mask), "--size", "64", "48", "--json"]
    assert main(["evaluate", "--images", str(img), *args[1:]]) == 0
    with_bad = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    good = tmp_path / "good"
    good.mkdir()
    for p in img.glob("p*.png"):
        shutil.copy(p, good / p.name)
    assert main(["evaluate", "--images", str(good), *args[1:]]) == 0
    only_good = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert with_bad["n"] == only_good["n"] == 12
    assert with_bad["n_skipped"] == 3 and sorted(with_bad["skipped"]) == ["q0", "q1", "q2"]
    assert with_bad["mean_per_image_iou"] == pytest.approx(only_good["mean_per_image_iou"], abs=1e-12)
    assert with_bad["dataset_iou"] == pytest.approx(only_good["dataset_iou"], abs=1e-12)


def test_library_evaluation_and_preloading_never_count_a_stand_in(portraits):
    """evaluate_segmentation and PreloadedPortraits given the folder itself (as a notebook would)."""
    from course_lib.segmentation.portraits import PortraitFolder
    from course_lib.segmentation.train import PreloadedPortraits, evaluate_segmentation

    class Threshold(torch.nn.Module):  # a fixed "model": logit = brightness - offset
        def __init__(self):
            super().__init__()
            self.offset = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, x):
            return x.mean(1, keepdim=True) - self.offset

    img, mask = portraits
    with pytest.warns(UserWarning):
        folder = PortraitFolder(img, mask)
        res = evaluate_segmentation(Threshold(), folder, progress=False)
    assert res["n"] == 12 and res["n_skipped"] == 3 and len(res["per_image"]) == 12
    with pytest.warns(UserWarning):
        pre = PreloadedPortraits(PortraitFolder(img, mask), (32, 24), progress=False)
    assert len(pre) == 12
    assert all(not torch.equal(pre.images[i], pre.images[j]) for i in range(12) for j in range(i))


@pytest.mark.parametrize("stream", [[], ["--stream"]], ids=["preloaded", "streamed"])
def test_segmentation_train_counts_unreadable_pairs_in_the_sidecar(portraits, tmp_path, monkeypatch, capsys, stream):
    from course_lib.segmentation.__main__ import main

    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))
    img, mask = portraits
    out = tmp_path / "m.pt"
    assert main(["train", "--images", str(img), "--masks", str(mask), "--preset", "light", "--size", "48", "40",
                 "--steps", "1", "--batch-size", "2", "--val-fraction", "0.3", "--eval-every", "1",
                 "--warmup", "0", "--out", str(out), "--checkpoint", str(tmp_path / "run.pt"), *stream]) == 0
    side = json.loads((tmp_path / "m.pt.json").read_text())
    assert side["train_images"] + side["val_images"] == 12  # not 15: no readable pair stands in twice
    assert side["skipped_unreadable"] == 3
    assert "3 unreadable pair(s) skipped" in capsys.readouterr().out


# --- 3. one rule for --limit ----------------------------------------------------------------

def test_positive_int_is_the_one_rule():
    import argparse

    from course_lib.core.cli import positive_int

    assert positive_int("3") == 3
    for bad in ("0", "-2", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be an int >= 1"):
            positive_int(bad)


def test_library_limits_follow_the_same_rule(tmp_path, portraits):
    from course_lib.segmentation.portraits import PortraitFolder
    from course_lib.superres.data import load_folder

    _noise_png(tmp_path / "a.png", 8, 8)
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        load_folder(tmp_path, limit=0)
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        PortraitFolder(*portraits).readable(limit=0)


@pytest.mark.parametrize("unit, argv", [
    ("superres", ["train", "--images", "nowhere", "--limit", "0"]),
    ("segmentation", ["train", "--images", "nowhere", "--out", "m.pt", "--limit", "0"]),
    ("segmentation", ["evaluate", "--images", "nowhere", "--limit", "0"]),
    ("segmentation", ["train", "--images", "nowhere", "--out", "m.pt", "--val-limit", "0"]),
    ("phase", ["evaluate", "--data", "mnist-offline", "--limit", "0"]),
    ("phase", ["train", "--out", "m.pt", "--limit", "0"]),
    ("style", ["train", "--style", "s.png", "--out", "m.pt", "--coco", "0"]),
])
def test_limit_zero_is_a_usage_error_everywhere(unit, argv, capsys):
    import importlib

    main = importlib.import_module(f"course_lib.{unit}.__main__").main
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "must be an int >= 1, got '0'" in err and "Traceback" not in err


# --- 4. NaN and empty images ------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["psnr", "ssim"])
def test_metrics_reject_nan_and_empty_images(fn):
    from course_lib.core import metrics

    f = getattr(metrics, fn)
    a = torch.rand(3, 16, 16)
    b = a.clone()
    b[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=rf"{fn}: target must be finite, found 1 NaN"):
        f(a, b)
    with pytest.raises(ValueError, match=rf"{fn}: pred must be finite"):
        f(b, a)
    with pytest.raises(ValueError, match=rf"{fn}: pred is empty"):
        f(torch.zeros(1, 3, 0, 16), torch.zeros(1, 3, 0, 16))
    assert torch.isfinite(f(a, a * 0.9))  # finite inputs still work


def test_to_pil_rejects_nan():
    from course_lib.core.images import save_image, to_pil

    x = torch.rand(3, 8, 8)
    x[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="to_pil: x must be finite, found 1 NaN"):
        to_pil(x)
    with pytest.raises(ValueError, match="must be finite"):
        save_image(x, "never_written.png")
    with pytest.raises(ValueError, match="empty"):
        to_pil(torch.rand(3, 0, 8))


def test_upscale_rejects_nan_and_empty_images():
    from course_lib.superres import pretrained
    from course_lib.superres.inference import upscale

    model = pretrained(2)
    x = torch.rand(3, 12, 12)
    x[2, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="upscale: image must be finite, found 1 NaN"):
        upscale(model, x)
    with pytest.raises(ValueError, match="empty"):
        upscale(model, torch.rand(3, 0, 12))
    with pytest.raises(ValueError, match="empty"):
        upscale(model, Image.new("RGB", (0, 5)))


# --- 5. decompression bombs -------------------------------------------------------------------

def test_loader_turns_a_bomb_into_a_one_line_error(tmp_path):
    from course_lib.core.images import ImageTooLargeError, load_image, load_tensor

    bomb = _bomb_png(tmp_path / "bomb.png")
    for load in (load_image, load_tensor):
        with pytest.raises(ImageTooLargeError) as exc:
            load(bomb)
        msg = str(exc.value)
        assert isinstance(exc.value, ValueError) and "\n" not in msg
        assert str(bomb) in msg and "100000x100000" in msg and "MAX_IMAGE_PIXELS" in msg
    with pytest.raises(ImageTooLargeError):
        load_image(bomb.read_bytes())


def test_every_cli_reports_a_bomb_in_one_line(tmp_path, capsys):
    from course_lib.segmentation.__main__ import main as seg
    from course_lib.style.__main__ import main as style
    from course_lib.superres.__main__ import main as sr

    bomb = _bomb_png(tmp_path / "bomb.png")
    photo = _noise_png(tmp_path / "photo.png", 40, 48)
    runs = [
        (sr, ["upscale", str(bomb), str(tmp_path / "o.png")]),
        (seg, ["predict", str(bomb), str(tmp_path / "o.png")]),
        (style, ["stylize", str(bomb), str(photo), str(tmp_path / "o.png"), "--quiet"]),
        (style, ["stylize", str(photo), str(bomb), str(tmp_path / "o.png"), "--quiet"]),
        (style, ["train", "--style", str(bomb), "--out", str(tmp_path / "m.pt"), "--images", str(tmp_path)]),
    ]
    for main, argv in runs:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1, (argv, err)
        assert "bomb.png claims 100000x100000" in err


def test_folders_skip_and_count_a_bomb(tmp_path):
    from course_lib.segmentation.portraits import PortraitFolder
    from course_lib.style.fast import StyleContentData
    from course_lib.superres.data import PairedPatches, load_folder

    sr = tmp_path / "sr"
    sr.mkdir()
    for i in range(2):
        _noise_png(sr / f"a{i}.png", 40, 44, seed=i)
    _bomb_png(sr / "a0b.png")
    # the lazily read training folder of superres: every sample is served, the bomb is skipped and counted
    data = PairedPatches(sr, 2, patch_size=16, patches_per_image=2)
    with pytest.warns(UserWarning, match="skipping unreadable"):
        samples = [data[i] for i in range(len(data))]
    assert len(samples) == 6 and list(data.skipped) == [str(sr / "a0b.png")]
    assert "100000x100000" in data.skipped[str(sr / "a0b.png")]
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        assert sorted(load_folder(sr)) == ["a0.png", "a1.png"]
    content = StyleContentData(sr, 16)
    with pytest.warns(UserWarning, match="skipping unreadable"):
        [content[i] for i in range(len(content))]
    assert list(content.skipped) == [str(sr / "a0b.png")]
    # a bomb as a portrait photo, and as a mask
    img, mask = tmp_path / "img", tmp_path / "mask"
    img.mkdir(), mask.mkdir()
    for stem in ("a", "b", "c"):
        _noise_png(img / f"{stem}.png", 20, 16)
        Image.fromarray(np.full((20, 16), 255, np.uint8)).save(mask / f"{stem}.png")
    _bomb_png(img / "b.png")
    _bomb_png(mask / "c.png")
    with pytest.warns(UserWarning):
        view = PortraitFolder(img, mask).readable()
    assert view.names == ["a"] and sorted(view.skipped) == ["b", "c"]
    assert all("100000x100000" in reason for reason in view.skipped.values())
    folder = PortraitFolder(img, mask)
    folder.scan(decode_images=False)  # the header-only scan too
    assert sorted(folder.skipped) == ["b", "c"]


# --- 6. very large images: blocks ---------------------------------------------------------------

def _spy_blocks(monkeypatch):
    from course_lib.superres import inference

    calls = []
    real = inference._by_blocks

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inference, "_by_blocks", spy)
    return calls


def test_large_images_are_upscaled_in_blocks_with_the_same_result(monkeypatch):
    from course_lib.superres import inference, pretrained
    from course_lib.superres.inference import upscale

    model = pretrained(3)
    g = torch.Generator().manual_seed(0)
    rgb = torch.nn.functional.interpolate(torch.rand(1, 3, 30, 35, generator=g), size=(90, 105), mode="bilinear",
                                          align_corners=False)[0]
    photo = Image.fromarray((rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    whole = upscale(model, rgb, clamp=False)
    whole_pil = np.asarray(upscale(model, photo, optimized=True)).astype(int)
    whole_gray = np.asarray(upscale(model, photo.convert("L"))).astype(int)

    calls = _spy_blocks(monkeypatch)
    monkeypatch.setattr(inference, "BLOCK", 32)  # everything here counts as large: several blocks, ragged edges
    blocks = upscale(model, rgb, clamp=False)
    assert blocks.shape == whole.shape == (3, 270, 315)
    assert (blocks - whole).abs().max() < 1e-4  # float32 rounding of the bicubic chroma's coordinates
    blocks_pil = np.asarray(upscale(model, photo, optimized=True)).astype(int)  # FastESPCN's strips in blocks
    assert blocks_pil.shape == whole_pil.shape == (270, 315, 3)
    assert np.abs(blocks_pil - whole_pil).max() <= 1 and (blocks_pil != whole_pil).mean() < 1e-3
    blocks_gray = np.asarray(upscale(model, photo.convert("L"))).astype(int)  # a Y model on a gray image
    assert blocks_gray.shape == whole_gray.shape == (270, 315) and np.abs(blocks_gray - whole_gray).max() <= 1
    batch = torch.stack([rgb, rgb.flip(-1)])
    assert (upscale(model, batch) - torch.stack([upscale(model, t) for t in batch])).abs().max() < 1e-5
    assert len(calls) == 6  # every call above took the block path
    # too little context per block would show at the block borders: the test can see a wrong margin
    assert (upscale(model, rgb, clamp=False, overlap=0) - whole).abs().max() > 1e-3


def test_upscale_cli_takes_the_block_path_for_large_images(tmp_path, monkeypatch, capsys):
    from course_lib.superres import inference
    from course_lib.superres.__main__ import main

    photo = _noise_png(tmp_path / "in.png", 50, 60)
    calls = _spy_blocks(monkeypatch)
    assert main(["upscale", str(photo), str(tmp_path / "small.png"), "--scale", "2"]) == 0
    assert not calls  # 50x60 LR pixels: one pass
    monkeypatch.setattr(inference, "BLOCK", 24)
    assert main(["upscale", str(photo), str(tmp_path / "large.png"), "--scale", "2"]) == 0
    assert calls == [1]
    small = np.asarray(Image.open(tmp_path / "small.png")).astype(int)
    large = np.asarray(Image.open(tmp_path / "large.png")).astype(int)
    assert small.shape == large.shape == (100, 120, 3) and np.abs(small - large).max() <= 1


# --- 7. style: unreadable content photos and too-small images -----------------------------------

def test_style_content_folder_skips_unreadable_files(tmp_path):
    from course_lib.style.fast import StyleContentData

    for i in range(2):
        _noise_png(tmp_path / f"p{i}.png", 30, 36, seed=i)
    (tmp_path / "p1b.png").write_bytes(b"\x89PNG truncated")
    data = StyleContentData(tmp_path, 16)
    with pytest.warns(UserWarning, match=r"skipping unreadable image \(1 skipped so far\)"):
        crops = [data[i][0] for i in range(len(data))]
    assert len(crops) == 3 and all(c.shape == (3, 16, 16) for c in crops)
    assert list(data.skipped) == [str(tmp_path / "p1b.png")]
    (tmp_path / "p0.png").write_bytes(b"")
    (tmp_path / "p1.png").write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 3 image files"):
        with pytest.warns(UserWarning):
            StyleContentData(tmp_path, 16)[0]


def test_style_train_skips_and_counts_unreadable_photos(tmp_path, monkeypatch, capsys):
    from course_lib.style.__main__ import main

    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        _noise_png(photos / f"p{i}.png", 30, 36, seed=i)
    (photos / "p2.png").write_text("not an image")
    style = _noise_png(tmp_path / "style.png", 32, 32, seed=5)
    out = tmp_path / "m.pt"
    assert main(["train", "--style", str(style), "--out", str(out), "--images", str(photos), "--steps", "2",
                 "--size", "16", "--batch-size", "3", "--width", "0.125",
                 "--checkpoint", str(tmp_path / "run.pt")]) == 0
    side = json.loads((tmp_path / "m.pt.json").read_text())
    assert side["steps"] == 2 and side["skipped_unreadable"] == 1
    assert "skipped 1 unreadable content image(s)" in capsys.readouterr().out


def test_style_minimum_sizes_come_from_the_networks(tmp_path, capsys):
    from course_lib.style.__main__ import main
    from course_lib.style.fast import STYLE_LAYERS
    from course_lib.style.features import min_input_side
    from course_lib.style.gatys import CONTENT_LAYERS
    from course_lib.style.gatys import STYLE_LAYERS as GATYS_LAYERS

    assert min_input_side(CONTENT_LAYERS + GATYS_LAYERS, "vgg19") == 16  # four poolings before conv5_1
    assert min_input_side(STYLE_LAYERS, "vgg16") == 8                    # three before relu4_3
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (200, 30, 30)).save(tiny)
    photo = _noise_png(tmp_path / "photo.png", 40, 48)
    assert main(["stylize", str(tiny), str(photo), str(tmp_path / "o.png"), "--size", "32", "--steps", "1",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: stylize: the content image is 1x1 pixels; each side needs >= 16 pixels "
                   "(VGG pools 4 time(s) before conv5_1)")
    assert main(["train", "--style", str(photo), "--out", str(tmp_path / "m.pt"), "--images", str(tmp_path),
                 "--size", "1", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: train: --size 1 is too small") and ">= 8 pixels" in err
    assert len(err.splitlines()) == 1


def test_fast_style_library_checks_crop_and_style_sizes():
    from course_lib.style.fast import PerceptualLoss, train_fast
    from course_lib.style.features import VGGFeatures

    feats = VGGFeatures(["relu1_2", "relu2_2", "relu3_3", "relu4_3"], arch="vgg16", weights="random",
                        verbose=False)
    assert feats.min_side == 8
    with pytest.raises(ValueError, match="style image is 5x4 pixels; each side needs >= 8"):
        PerceptualLoss(feats, torch.rand(3, 4, 5))
    with pytest.raises(ValueError, match=r"crops of 4x4 pixels are too small .* >= 8 pixels"):
        train_fast([torch.rand(3, 20, 20)], torch.rand(3, 16, 16), size=4, steps=1, features=feats,
                   progress=False)
