"""Portrait data: mask decoding, paired folders, joint augmentation, synthetic data, EG1800 layout."""
import warnings

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from PIL import Image

from course_lib.core import datasets as ds
from course_lib.segmentation import portraits as P

H, W = 24, 32


def _blob(h=H, w=W, cy=0.5, cx=0.4):
    """An off-centre ellipse (asymmetric, so flips and shifts show)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return ((((yy - cy * h) / (0.3 * h)) ** 2 + ((xx - cx * w) / (0.25 * w)) ** 2) <= 1).astype(np.uint8)


def _photo(h=H, w=W, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


# --------------------------------------------------------------------------- load_mask
def test_load_mask_decodes_common_formats(tmp_path):
    m = _blob()
    files = {}
    Image.fromarray(m * 255).save(files.setdefault("0_255", tmp_path / "a.png"))
    Image.fromarray(m).save(files.setdefault("0_1", tmp_path / "b.png"))
    palette_img = Image.new("P", (W, H))  # indices 0 and 2 (black and white)
    palette_img.putpalette([0, 0, 0, 255, 0, 0, 255, 255, 255] + [0] * 759)
    palette_img.putdata((m * 2).ravel().tolist())
    palette_img.save(files.setdefault("palette", tmp_path / "c.png"))
    Image.fromarray(np.repeat((m * 255)[..., None], 3, 2)).save(files.setdefault("gray_rgb", tmp_path / "d.png"))
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[..., 3] = m * 255
    Image.fromarray(rgba, "RGBA").save(files.setdefault("alpha", tmp_path / "e.png"))
    opaque = np.concatenate([np.repeat((m * 255)[..., None], 3, 2), np.full((H, W, 1), 255, np.uint8)], 2)
    Image.fromarray(opaque, "RGBA").save(files.setdefault("opaque_rgba", tmp_path / "f.png"))
    Image.fromarray(m.astype(np.uint16) * 65535).save(files.setdefault("16bit", tmp_path / "g.png"))
    for kind, path in files.items():
        got = P.load_mask(path)
        assert got.dtype == np.uint8 and got.shape == (H, W), kind
        assert np.array_equal(got, m), kind
    assert Image.open(files["palette"]).mode == "P"
    assert np.array_equal(P.load_mask(files["palette"], foreground=2), m)
    assert P.load_mask(files["palette"], foreground=1).sum() == 0
    assert np.array_equal(P.load_mask(m.astype(bool)), m)
    assert np.array_equal(P.load_mask(torch.from_numpy(m).float()[None]), m)
    with pytest.raises(FileNotFoundError):
        P.load_mask(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        P.load_mask(tmp_path / "bad.png")


def test_load_mask_mat_files(tmp_path):
    m = _blob()
    scipy.io.savemat(tmp_path / "x_mask.mat", {"mask": m.astype(np.float64)})
    assert np.array_equal(P.load_mask(tmp_path / "x_mask.mat"), m)
    scipy.io.savemat(tmp_path / "two.mat", {"mask": m, "img": np.zeros((H, W))})
    with pytest.raises(ValueError, match="several 2-D arrays.*mat_key"):
        P.load_mask(tmp_path / "two.mat")
    assert np.array_equal(P.load_mask(tmp_path / "two.mat", mat_key="mask"), m)
    scipy.io.savemat(tmp_path / "none.mat", {"v": np.arange(5)})
    with pytest.raises(ValueError, match="no 2-D numeric array"):
        P.load_mask(tmp_path / "none.mat")


def test_non_binary_masks_are_thresholded_with_a_count(tmp_path):
    m = _blob()
    arr = m * 255
    arr[0, :5] = 100  # five pixels that are neither 0 nor 255
    with pytest.warns(UserWarning, match=r"5 of 768 pixels .*neither 0 nor 255"):
        got = P.load_mask(arr)
    assert np.array_equal(got, m)  # 100 < 127.5: background
    Image.fromarray(m * 255).save(tmp_path / "j.jpg", quality=60)
    with pytest.warns(UserWarning, match=r"j.jpg is not binary: \d+ of 768"):
        got = P.load_mask(tmp_path / "j.jpg")
    assert (got != m).mean() < 0.03
    matte = np.linspace(0, 1, H * W).reshape(H, W)
    with pytest.warns(UserWarning):
        assert np.array_equal(P.load_mask(matte, threshold=0.25), (matte >= 0.25).astype(np.uint8))


def test_label_maps_and_colour_masks_need_foreground():
    trimap = np.where(_blob() > 0, 1, 2).astype(np.uint8)
    trimap[0, 0] = 3
    with pytest.raises(ValueError, match="label map.*foreground="):
        P.load_mask(trimap)
    assert np.array_equal(P.load_mask(trimap, foreground=1), (trimap == 1).astype(np.uint8))
    colour = np.zeros((H, W, 3), np.uint8)
    colour[..., 2] = 255  # blue background
    colour[:8] = (255, 0, 0)  # hair
    colour[8:16, 5:20] = (0, 255, 0)  # skin
    with pytest.raises(ValueError, match="colour"):
        P.load_mask(colour)
    person = P.load_mask(colour, foreground=[(255, 0, 0), (0, 255, 0)])
    assert person.sum() == 8 * W + 8 * 15 and person[20].sum() == 0


# --------------------------------------------------------------------------- PortraitFolder
@pytest.fixture
def folder(tmp_path):
    """images/ and masks/ in every supported mask flavour, with the usual mistakes."""
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    m = _blob()
    for i, stem in enumerate(["a", "B", "c", "d", "e", "f", "g", "h", "bad"]):
        _photo(seed=i).save(img_dir / f"{stem}.jpg")
    Image.fromarray(m * 255).save(mask_dir / "a.png")
    Image.fromarray(m).save(mask_dir / "b_mask.png")  # case-insensitive stem, 0/1
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 3] = np.clip(m * 255 + 60 * (1 - m) * (np.arange(W) % 2), 0, 255)  # a soft matte
    Image.fromarray(rgba, "RGBA").save(mask_dir / "c_matte.png")
    scipy.io.savemat(mask_dir / "d_mask.mat", {"mask": m})
    Image.fromarray(np.zeros((H, W), np.uint8)).save(mask_dir / "e.png")  # all background
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(mask_dir / "g.png")  # all foreground
    Image.fromarray(m * 255).save(mask_dir / "h_mask.jpg", quality=70)  # JPEG: intermediate values
    Image.fromarray(m * 255).save(mask_dir / "bad.png")
    (img_dir / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # corrupt photo
    Image.fromarray(m * 255).save(mask_dir / "orphan_mask.png")  # no image
    return img_dir, mask_dir, m


def test_folder_pairs_by_stem_and_reports_mismatches(folder):
    img_dir, mask_dir, _ = folder
    with pytest.warns(UserWarning, match=r"images without mask: 1 \(e.g. f.jpg\).*"
                                          r"masks without image: 1 \(e.g. orphan_mask.png\)"):
        data = P.PortraitFolder(img_dir, mask_dir)
    assert data.names == ["a", "B", "bad", "c", "d", "e", "g", "h"]
    assert dict((s, m.name) for s, _, m in data.pairs)["B"] == "b_mask.png"
    assert data.unmatched_images == ["f.jpg"] and data.unmatched_masks == ["orphan_mask.png"]
    with pytest.raises(ValueError, match="strict=True"):
        P.PortraitFolder(img_dir, mask_dir, strict=True)
    with pytest.raises(ValueError, match="no image/mask pairs"):
        P.PortraitFolder(img_dir, mask_dir, mask_suffixes=("_nothing",))


def test_folder_samples_skip_bad_files_and_count_masks(folder):
    img_dir, mask_dir, m = folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = P.PortraitFolder(img_dir, mask_dir)
        samples = [data[i] for i in range(len(data))]  # a whole epoch, one corrupt photo inside
    messages = " | ".join(str(w.message) for w in caught)
    assert "skipping pair 'bad'" in messages and "all background" in messages
    assert list(data.skipped) == ["bad"]
    for image, mask in samples:
        assert image.shape == (3, H, W) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        assert mask.shape == (1, H, W) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(samples[data.names.index("a")][1][0], torch.from_numpy(m).float())
    assert torch.equal(samples[data.names.index("d")][1][0], torch.from_numpy(m).float())
    # the corrupt pair's index gives the next readable pair instead
    assert torch.equal(samples[data.names.index("bad")][0], samples[data.names.index("c")][0])
    assert data.empty_masks == {"e"} and data.full_masks == {"g"}
    assert data.thresholded_masks == {"c", "h"}
    report = data.report()
    for line in ("skipped (unreadable): 1", "all-background masks: 1 (e.g. e)", "all-foreground masks: 1",
                 "non-binary masks thresholded: 2", "images without mask: 1 (e.g. f.jpg)"):
        assert line in report, report


def test_folder_mask_size_mismatch(tmp_path):
    _photo().save(tmp_path / "x.jpg")
    Image.fromarray(np.zeros((H - 4, W - 2), np.uint8)).save(tmp_path / "x_mask.png")
    Image.fromarray(_blob() * 255).save(tmp_path / "y_mask.png")
    _photo(seed=1).save(tmp_path / "y.jpg")
    data = P.PortraitFolder(tmp_path)  # one folder: masks carry a suffix
    assert data.names == ["x", "y"]
    with pytest.raises(P.MaskSizeError, match=r"x_mask.png is 20x30.*x.jpg is 24x32.*resize_masks=True"), \
            pytest.warns(UserWarning, match="all background"):
        data[0]
    assert "size mismatches: 1 (e.g. x)" in data.scan()  # collected, not raised
    resized = P.PortraitFolder(tmp_path, resize_masks=True)
    with pytest.warns(UserWarning, match="all background"):
        image, mask = resized[0]
    assert mask.shape == (1, H, W) and image.shape == (3, H, W)


def test_folder_resize_and_augment(folder):
    img_dir, mask_dir, _ = folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = P.PortraitFolder(img_dir, mask_dir, size=(12, 16))
        image, mask = plain[0]
        assert image.shape == (3, 12, 16) and mask.shape == (1, 12, 16)
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        aug = P.PortraitFolder(img_dir, mask_dir, size=(20, 20), augment="train")
        torch.manual_seed(0)
        image, mask = aug[0]
        assert image.shape == (3, 20, 20) and mask.shape == (1, 20, 20)
        with pytest.raises(ValueError, match="needs size"):
            P.PortraitFolder(img_dir, mask_dir, augment="train")
        train, val = aug.split(val_fraction=0.5, seed=1)
    assert sorted(train.names + val.names) == sorted(aug.names)
    assert val.augment is None and isinstance(train.augment, P.PortraitAugment)


def test_split_is_deterministic_and_stable_when_files_are_added():
    names = [f"{i:05d}" for i in range(600)]
    train, val = P.train_val_split(names, val_fraction=0.15, seed=0)
    assert sorted(train + val) == names and not set(train) & set(val)
    assert 0.11 < len(val) / len(names) < 0.19
    assert P.train_val_split(names, val_fraction=0.15, seed=0) == (train, val)
    more = names + [f"{i:05d}" for i in range(600, 700)]
    _, val_more = P.train_val_split(more, val_fraction=0.15, seed=0)
    assert [n for n in val_more if n in set(names)] == val  # the old held-out set is unchanged
    assert P.train_val_split(names, val_fraction=0.15, seed=1)[1] != val
    # a name's side does not depend on case or file suffix
    assert P.train_val_split([n.upper() + ".JPG" for n in names[:50]], 0.15)[1] == \
        [n.upper() + ".JPG" for n in val if n in names[:50]]


# --------------------------------------------------------------------------- augmentation
def _coded(h=48, w=40, seed=0):
    """An image whose red channel is the mask: alignment can be read off the output."""
    m = _blob(h, w, cy=0.45, cx=0.35)
    g = np.random.default_rng(seed).random((h, w))
    img = torch.from_numpy(np.stack([m, g, np.full((h, w), 0.5)]).astype(np.float32))
    return img, torch.from_numpy(m).float()[None]


def test_augment_keeps_image_and_mask_aligned():
    img, m = _coded()
    aug = P.PortraitAugment((36, 30), scale=(0.7, 1.4), rotate=20, hflip=0.5, translate=0.15,
                            jitter=0.0, blur_p=0.0)
    moved = 0
    for seed in range(6):
        out_img, out_m = aug(img, m, generator=seed)
        assert out_img.shape == (3, 36, 30) and out_m.shape == (1, 36, 30)
        assert set(out_m.unique().tolist()) <= {0.0, 1.0}
        red = (out_img[0] > 0.5).float()
        # the mask is sampled nearest-neighbour (tv_tensors.Mask), the image bilinearly: within 2 px of the edge
        edge = (F.max_pool2d(out_m[None], 5, 1, 2) != -F.max_pool2d(-out_m[None], 5, 1, 2))[0, 0]
        wrong = out_m[0] != red
        assert not (wrong & ~edge).any(), f"seed {seed}: mask and image disagree away from the edge"
        assert wrong.float().mean() < 0.04
        still = F.interpolate(m[None], size=(36, 30), mode="nearest")[0]
        moved += int((out_m != still).float().mean() > 0.05)
    assert moved >= 4  # the geometry really changed


def test_augment_flip_and_identity_are_exact():
    img, m = _coded()
    flip = P.PortraitAugment(tuple(img.shape[-2:]), scale=(1, 1), rotate=0, hflip=1.0, translate=0,
                             jitter=0, blur_p=0)
    out_img, out_m = flip(img, m, generator=0)
    assert torch.equal(out_m, m.flip(-1))
    assert torch.allclose(out_img, img.flip(-1), atol=1e-5)
    same = P.PortraitAugment(tuple(img.shape[-2:]), scale=(1, 1), rotate=0, hflip=0.0, translate=0,
                             jitter=0, blur_p=0)
    assert torch.equal(same(img, m, generator=0)[1], m)


def test_augment_is_deterministic_and_photometry_leaves_the_mask_alone():
    img, m = _coded()
    aug = P.PortraitAugment((32, 32), blur_p=0.5)
    a, b = aug(img, m, generator=7), aug(img, m, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = aug(img, m, generator=8)
    assert not torch.equal(a[0], c[0])
    torch.manual_seed(3)
    d = aug(img, m)
    torch.manual_seed(3)
    assert torch.equal(aug(img, m)[0], d[0])
    calm = P.PortraitAugment((32, 32), jitter=0.0, blur_p=0.0)
    e = calm(img, m, generator=7)
    assert torch.equal(e[1], a[1]) and not torch.equal(e[0], a[0])  # same geometry, other colours
    with pytest.raises(ValueError, match="scale"):
        P.PortraitAugment(32, scale=(1.2, 0.8))
    with pytest.raises(ValueError, match=r"mask must be"):
        aug(img, m[:, :10])


# --------------------------------------------------------------------------- synthetic data
def test_synthetic_portraits_fraction_shapes_and_determinism():
    data = P.synthetic_portraits(6, size=(48, 40), seed=3, foreground_fraction=(0.3, 0.5), backgrounds="noise")
    images, masks = data.tensors()
    assert images.shape == (6, 3, 48, 40) and masks.shape == (6, 1, 48, 40)
    assert 0 <= images.min() and images.max() <= 1
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    fractions = masks.mean(dim=(1, 2, 3))
    assert ((fractions >= 0.3) & (fractions <= 0.5)).all(), fractions
    again = P.synthetic_portraits(6, size=(48, 40), seed=3, foreground_fraction=(0.3, 0.5),
                                  backgrounds="noise", cache=False)
    assert torch.equal(again[4][0], images[4]) and torch.equal(again[4][1], masks[4])
    other = P.synthetic_portraits(6, size=(48, 40), seed=4, foreground_fraction=(0.3, 0.5), backgrounds="noise")
    assert not torch.equal(other[4][1], masks[4])
    small = P.synthetic_portraits(4, size=(32, 32), seed=0, foreground_fraction=(0.12, 0.2), backgrounds="flat")
    fractions = small.tensors()[1].mean(dim=(1, 2, 3))
    assert ((fractions >= 0.12) & (fractions <= 0.2)).all(), fractions
    with pytest.raises(ValueError, match="foreground_fraction"):
        P.synthetic_portraits(2, foreground_fraction=(0.6, 0.2))


def test_synthetic_portraits_use_training_photos_only(monkeypatch):
    # stand-ins for the offline photos (loading the real ones takes seconds): each a distinct colour
    names = ds.OFFLINE_NATURAL_NAMES
    fakes = {n: Image.new("RGB", (90, 60), (10 * i, 255 - 10 * i, 128)) for i, n in enumerate(names)}
    monkeypatch.setattr(P._datasets, "offline_natural_images", lambda: dict(fakes))
    P._background_pool.cache_clear()
    try:
        data = P.synthetic_portraits(3, size=(40, 32), seed=0)
        train, holdout = ds.offline_split()
        assert data.background_names and set(data.background_names) <= set(train)
        assert "astronaut" not in data.background_names  # a person in the background would be label noise
        used = {tuple(fakes[n].getpixel((0, 0))) for n in data.background_names}
        for i in range(3):
            image, mask = data[i]
            assert image.shape == (3, 40, 32) and 0.2 <= mask.mean() <= 0.6
            corner = tuple(int(round(v)) for v in (image[:, 0, 0] * 255).tolist())
            assert min(sum(abs(a - b) for a, b in zip(corner, c)) for c in used) < 40, corner
    finally:
        P._background_pool.cache_clear()


def test_imbalanced_blobs():
    x, y = P.imbalanced_blobs(16, 32, seed=0)
    assert x.shape == y.shape == (16, 1, 32, 32)
    fractions = y.mean(dim=(1, 2, 3))
    assert ((fractions >= 0.02) & (fractions <= 0.10)).all(), fractions
    assert set(y.unique().tolist()) == {0.0, 1.0} and 0 <= x.min() and x.max() <= 1
    assert x[y > 0].mean() > x[y == 0].mean() + 0.1  # learnable: blobs are brighter
    x2, y2 = P.imbalanced_blobs(16, 32, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(P.imbalanced_blobs(16, 32, seed=1)[1], y)


# --------------------------------------------------------------------------- real data entry points
def test_shared_portraits_env_and_clear_error(folder, tmp_path, monkeypatch):
    img_dir, mask_dir, _ = folder
    monkeypatch.setenv(P.ENV_VAR, str(img_dir.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(P.shared_portraits()) == 8
    monkeypatch.setenv(P.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(ds.DatasetUnavailableError, match=r"(?s)nowhere.*fetch\('eg1800'\).*synthetic_portraits"):
        P.shared_portraits()


def test_eg1800_layout_and_testlist(tmp_path):
    data_dir = tmp_path / "AutoPortraitMatting-5c89932" / "data"
    (data_dir / "images_data_crop").mkdir(parents=True)
    (data_dir / "images_mask").mkdir()
    (data_dir / "images_data").mkdir()
    m = _blob()
    for i in (1, 2, 3, 5, 7, 8):
        _photo(seed=i).save(data_dir / "images_data_crop" / f"{i:05d}.jpg")
        scipy.io.savemat(data_dir / "images_mask" / f"{i:05d}_mask.mat", {"mask": m})
    scipy.io.savemat(data_dir / "testlist.mat", {"testlist": np.array([[2, 5, 9]], dtype=np.float64)})
    with pytest.warns(UserWarning, match="00009"):
        test = P.eg1800(tmp_path, split="test")
    assert test.names == ["00002", "00005"] and test.missing_names == ["00009"]
    train = P.eg1800(tmp_path / "AutoPortraitMatting-5c89932", split="train", size=(12, 16))
    assert train.names == ["00001", "00003", "00007", "00008"]
    image, mask = train[0]
    assert image.shape == (3, 12, 16) and mask.shape == (1, 12, 16)
    assert len(P.eg1800(data_dir, split="all")) == 6
    with pytest.raises(FileNotFoundError, match="images_data_crop"):
        P.eg1800(tmp_path / "AutoPortraitMatting-5c89932" / "data" / "images_data")


def test_registry_has_portrait_datasets():
    for name in ("eg1800", "lfw-parts-gt-images", "lfw-funneled", "lfw-parts-train-list",
                 "lfw-parts-test-list", "oxford-iiit-pet-annotations"):
        assert ds.get_info(name).url
    assert ds.get_info("lfw-parts-gt-images").url.endswith("/lfw/part_labels/parts_lfw_funneled_gt_images.tgz")
    assert "images_mask" in ds.get_info("eg1800").notes
    assert "trimap" in ds.get_info("oxford-iiit-pet-annotations").notes


@pytest.mark.skipif(not (P.SHARED_PORTRAITS / "images").is_dir(), reason="no shared EG1800 copy on this machine")
def test_shared_eg1800_copy_loads(monkeypatch):
    monkeypatch.delenv(P.ENV_VAR, raising=False)
    data = P.shared_portraits()
    assert len(data) > 1000 and not data.unmatched_images and not data.unmatched_masks
    for i in (0, len(data) // 2, len(data) - 1):
        image, mask = data[i]
        assert image.shape == (3, 400, 300) and mask.shape == (1, 400, 300)
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert 0.05 < mask.mean() < 0.98
    assert not data.skipped and not data.thresholded_masks
