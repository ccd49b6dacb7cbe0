"""core.images: loading (EXIF, modes, 16-bit, bad files), conversions, YCbCr."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color, data

from course_lib.core import images as im


def png_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # white stripe on the left of a landscape image
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    loaded = im.load_image(path)
    assert loaded.size == (20, 40)  # portrait after applying the tag
    top = np.asarray(loaded)[:5].mean()
    assert top > 200  # the left stripe is now at the top


def test_modes_become_rgb_or_l():
    rgba = Image.new("RGBA", (4, 3), (255, 0, 0, 0))  # fully transparent red
    assert np.all(np.asarray(im.load_image(png_bytes(rgba))) == 255)  # over white
    assert np.all(np.asarray(im.load_image(png_bytes(rgba), background=(0, 0, 0))) == 0)
    la = Image.new("LA", (4, 3), (100, 255))
    assert np.asarray(im.load_image(png_bytes(la), mode="L")).max() == 100
    pal = Image.new("P", (4, 3))
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((0, 0), 1)
    assert tuple(np.asarray(im.load_image(png_bytes(pal)))[0, 0]) == (10, 20, 30)
    gray = Image.new("L", (4, 3), 77)
    t = im.load_tensor(png_bytes(gray))
    assert t.shape == (3, 3, 4) and torch.allclose(t, torch.full_like(t, 77 / 255))


def test_16bit_keeps_precision():
    arr = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000 + 7)
    img = Image.fromarray(arr)
    t = im.load_tensor(png_bytes(img), mode="L")
    assert t.shape == (1, 3, 4)
    assert torch.allclose(t[0].double(), torch.from_numpy(arr / 65535.0), atol=1e-6)
    eight = np.asarray(im.load_image(png_bytes(img), mode="L"))
    assert np.array_equal(eight, np.round(arr / 65535.0 * 255).astype(np.uint8))


def test_bad_files_raise_value_error_naming_the_file(tmp_path):
    txt = tmp_path / "notes.png"
    txt.write_text("hello")
    with pytest.raises(ValueError, match="notes.png is not a readable image"):
        im.load_image(txt)
    good = png_bytes(Image.fromarray(data.astronaut()), format="JPEG", quality=90)
    trunc = tmp_path / "cut.jpg"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="cut.jpg"):
        im.load_image(trunc)
    with pytest.raises(FileNotFoundError, match="missing.png does not exist"):
        im.load_image(tmp_path / "missing.png")
    with pytest.raises(TypeError, match="source must be"):
        im.load_image(3.5)


def test_tensor_pil_round_trip():
    arr = data.astronaut()[:32, :48]
    t = im.to_tensor(arr)
    assert t.shape == (3, 32, 48) and t.dtype == torch.float32
    assert np.array_equal(np.asarray(im.to_pil(t)), arr)
    with pytest.raises(ValueError, match=r"float arrays must lie in \[0, 1\]"):
        im.to_tensor(np.full((2, 2), 3.0))
    with pytest.raises(ValueError, match=r"shape \(C, H, W\)"):
        im.to_pil(torch.zeros(5, 5))


def test_save_and_load(tmp_path):
    t = im.to_tensor(data.chelsea()[:20, :30])
    p = im.save_image(t, tmp_path / "c.png")
    assert torch.equal(im.load_tensor(p), t)
    with pytest.raises(ValueError, match="no known image suffix"):
        im.save_image(t, tmp_path / "c.txt")


def test_ycbcr_matches_skimage():
    rgb = data.astronaut()[:64, :64]
    ref = color.rgb2ycbcr(rgb) / 255.0  # MATLAB-compatible BT.601
    t = im.to_tensor(rgb).double()
    ours = im.rgb_to_ycbcr(t).permute(1, 2, 0).numpy()
    assert np.allclose(ours, ref, atol=1e-10)
    assert torch.allclose(im.ycbcr_to_rgb(im.rgb_to_ycbcr(t)), t, atol=1e-10)
    assert torch.allclose(im.rgb_to_y(t)[0], torch.from_numpy(ref[..., 0]), atol=1e-10)
    batch = t.unsqueeze(0).repeat(2, 1, 1, 1)
    assert im.rgb_to_y(batch).shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="3 channel"):
        im.rgb_to_ycbcr(torch.zeros(1, 4, 4))
