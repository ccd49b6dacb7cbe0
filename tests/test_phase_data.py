"""Phase-retrieval data: IDX/npy readers (against hand-made files), data sets, forward model, noise."""
import gzip
import math
import socket
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from course_lib.core.datasets import DatasetUnavailableError
from course_lib.phase.data import (
    Augment, PhaseDataset, augment_image, load_images, offline_digit_split, padded_shape,
    parse_noise, read_array, read_idx, simulate_measurement,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _idx_bytes(arr: np.ndarray, magic=None) -> bytes:
    """The IDX format written out by hand: big-endian magic, dimensions, then uint8 data."""
    arr = np.asarray(arr, dtype=np.uint8)
    magic = (0x0800 | arr.ndim) if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _magnitude_np(x: np.ndarray, pad) -> np.ndarray:
    """Independent reference: zero-pad at the top left with numpy, then numpy.fft.fft2."""
    h, w = x.shape[-2:]
    big = np.zeros(x.shape[:-2] + (int(round(pad * h)), int(round(pad * w))))
    big[..., :h, :w] = x
    return np.abs(np.fft.fft2(big, norm="ortho"))


RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(5, 6, 7), dtype=np.uint8)


# --------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    for name, arr in (("images", IMAGES), ("labels", labels)):
        raw = _idx_bytes(arr)
        path = tmp_path / (name + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(raw) if compress else raw)
        got = read_idx(path)
        if name == "images":
            assert got.shape == (5, 1, 6, 7) and got.dtype == torch.float32
            np.testing.assert_allclose(got[:, 0].numpy(), IMAGES / 255.0, rtol=1e-6)
        else:
            assert got.dtype == torch.int64 and got.tolist() == [3, 1, 4, 1, 5]


def test_read_idx_wrong_magic_names_file_and_magic(tmp_path):
    path = tmp_path / "weird-idx3-ubyte"
    path.write_bytes(_idx_bytes(IMAGES, magic=0x00000D03))  # float data, not MNIST's uint8
    with pytest.raises(ValueError, match=r"weird-idx3-ubyte.*0x00000d03.*0x00000803"):
        read_idx(path)
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(ValueError, match=r"image\.png.*magic number is 0x89504e47"):
        read_idx(png)


def test_read_idx_truncated_and_empty(tmp_path):
    raw = _idx_bytes(IMAGES)
    cut = tmp_path / "cut"
    cut.write_bytes(raw[:-10])
    with pytest.raises(ValueError, match=r"cut is truncated.*\(5, 6, 7\).*210 bytes.*200"):
        read_idx(cut)
    header = tmp_path / "header"
    header.write_bytes(raw[:9])
    with pytest.raises(ValueError, match="truncated: the header needs 16 bytes"):
        read_idx(header)
    gz = tmp_path / "cut.gz"
    gz.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(ValueError, match="damaged or truncated gzip"):
        read_idx(gz)
    empty = tmp_path / "empty"
    empty.write_bytes(_idx_bytes(np.zeros((0, 28, 28))))
    with pytest.raises(ValueError, match="empty"):
        read_idx(empty)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


# --------------------------------------------------------------------------- npy / npz
def test_read_array_npy_and_npz(tmp_path):
    np.save(tmp_path / "a.npy", IMAGES)
    a = read_array(tmp_path / "a.npy")
    assert a.shape == (5, 1, 6, 7)
    np.testing.assert_allclose(a[:, 0].numpy(), IMAGES / 255.0, rtol=1e-6)

    floats = RNG.random((3, 8, 8, 1)).astype(np.float32)  # channels last, already in [0, 1]
    np.savez(tmp_path / "b.npz", labels=np.arange(3), images=floats)
    b = read_array(tmp_path / "b.npz")
    assert b.shape == (3, 1, 8, 8) and np.allclose(b[:, 0].numpy(), floats[..., 0])

    np.savez(tmp_path / "c.npz", whatever=IMAGES)  # the only array
    assert read_array(tmp_path / "c.npz").shape == (5, 1, 6, 7)

    np.savez(tmp_path / "d.npz", first=IMAGES, second=IMAGES)
    with pytest.raises(ValueError, match=r"'first', 'second'"):
        read_array(tmp_path / "d.npz")

    np.save(tmp_path / "e.npy", np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        read_array(tmp_path / "e.npy")


def test_read_array_float_range(tmp_path):
    np.save(tmp_path / "f.npy", np.array([[[0.0, 127.5], [255.0, 51.0]]]))
    with pytest.warns(UserWarning, match=r"\[0, 255\].*min-max"):
        x = read_array(tmp_path / "f.npy")
    assert x.flatten().tolist() == pytest.approx([0.0, 0.5, 1.0, 0.2])
    np.save(tmp_path / "g.npy", np.array([[[np.nan, 0.0]]]))
    with pytest.raises(ValueError, match="NaN"):
        read_array(tmp_path / "g.npy")


def test_load_images_from_file_resizes(tmp_path):
    path = tmp_path / "imgs-idx3-ubyte.gz"
    const = np.full((4, 28, 28), 128, np.uint8)
    path.write_bytes(gzip.compress(_idx_bytes(const)))
    x = load_images(path, size=32)
    assert x.shape == (4, 1, 32, 32)
    assert torch.allclose(x, torch.full_like(x, 128 / 255), atol=1e-6)  # antialiased: no ringing
    assert load_images(str(path), limit=2).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="neither a file nor a known data set"):
        load_images("mnist-onffline")


# --------------------------------------------------------------------------- data sets
def test_offline_digit_split_sizes_and_disjoint():
    train, test = offline_digit_split()
    assert train.shape == (4000, 1, 28, 28) and test.shape == (1000, 1, 28, 28)
    assert 0 <= float(train.min()) and float(train.max()) <= 1
    seen = {bytes(img.numpy().tobytes()) for img in (train * 255).round().to(torch.uint8)}
    assert not any(bytes(img.numpy().tobytes()) in seen for img in (test * 255).round().to(torch.uint8))
    assert torch.equal(load_images("mnist-offline", split="test"), test)
    assert load_images("mnist-offline", split="train", size=32, limit=3).shape == (3, 1, 32, 32)


def test_faces_are_only_faces_and_split():
    train, test = load_images("faces"), load_images("faces", split="test")
    assert train.shape == (80, 1, 32, 32) and test.shape == (20, 1, 32, 32)


def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    def no_socket(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", no_socket)


@pytest.mark.parametrize("name, url_part", [("mnist", "train-images-idx3-ubyte.gz"),
                                            ("kmnist", "codh.rois.ac.jp"),
                                            ("emnist-balanced", "EMNIST/gzip.zip")])
def test_real_sets_offline_raise_a_clear_error(monkeypatch, tmp_path, name, url_part):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(DatasetUnavailableError) as err:
        load_images(name, root=tmp_path / "tv")
    msg = str(err.value)
    assert f"the real {name} data set" in msg and url_part in msg and "mnist-offline" in msg


def test_celeba_offline_raises_a_clear_error(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(DatasetUnavailableError, match=r"celeba.*torchvision\.datasets\.CelebA"):
        load_images("celeba", root=tmp_path / "tv", limit=2)


def test_real_sets_use_files_already_on_disk(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(IMAGES[:, :6, :6])))
    x = load_images("mnist", split="test", root=tmp_path / "tv", size=6)
    np.testing.assert_allclose(x[:, 0].numpy(), IMAGES[:, :6, :6] / 255.0, rtol=1e-6)
    assert load_images("mnist", split="test", root=tmp_path / "tv").shape == (5, 1, 32, 32)
    emnist = tmp_path / "tv" / "EMNIST" / "raw"
    emnist.mkdir(parents=True)
    (emnist / "emnist-balanced-test-images-idx3-ubyte").write_bytes(_idx_bytes(IMAGES))
    e = load_images("emnist-balanced", split="test", root=tmp_path / "tv", size=(7, 6))
    np.testing.assert_allclose(e[:, 0].numpy(), IMAGES.transpose(0, 2, 1) / 255.0, rtol=1e-6)


# --------------------------------------------------------------------------- forward model
@pytest.mark.parametrize("pad", [1, 2, 1.5])
def test_dataset_magnitude_equals_numpy_fft(pad):
    x = torch.rand(3, 1, 10, 12, generator=torch.Generator().manual_seed(2))
    ds = PhaseDataset(x, pad=pad)
    ref = _magnitude_np(x.double().numpy(), pad)
    assert ds.mag_shape == ref.shape[-2:] == padded_shape((10, 12), pad)
    for i in range(3):
        y, img = ds[i]
        assert torch.equal(img, x[i])
        np.testing.assert_allclose(y.numpy(), ref[i], rtol=1e-5, atol=1e-6)
    y = simulate_measurement(x, pad)
    assert torch.allclose((y ** 2).sum(dim=(-2, -1)), (x ** 2).sum(dim=(-2, -1)), rtol=1e-5)  # Parseval


def test_poisson_noise_statistics():
    # one image, many noise draws, unnormalised DFT scale Y = sqrt(H'W') y:
    # E[Y_noisy^2] = Y^2, Var[Y_noisy^2] = alpha^2 Y^2 (orthonormal: alpha^2 y^2 / (H'W'))
    alpha, n = 2.0, 4000
    x = torch.zeros(n, 1, 8, 8, dtype=torch.float64)
    x[:, :, 2:6, 1:7] = torch.linspace(0.2, 1.0, 6, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    y = simulate_measurement(x[:1], 2)[0, 0]
    noisy = simulate_measurement(x, 2, noise=f"poisson:{alpha}", generator=g)[:, 0]
    m = 16 * 16
    counts = noisy ** 2 * m / alpha ** 2
    assert torch.allclose(counts, counts.round(), atol=1e-6)  # whole photon counts
    big = y ** 2 * m / alpha ** 2 > 5  # frequencies with enough photons for a tight estimate
    assert big.sum() > 20
    intensity, clean = noisy ** 2 * m, y ** 2 * m  # Y_noisy^2 and Y^2
    mean, var = intensity.mean(0), intensity.var(0)
    assert torch.allclose(mean[big], clean[big], rtol=0.08)
    assert torch.allclose(var[big], alpha ** 2 * clean[big], rtol=0.15)


def test_noise_is_the_fourier_module_model():
    from course_lib.phase.fourier import add_noise, fourier_magnitude

    x = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    for pad in (1, 2):
        y = fourier_magnitude(x, pad)
        torch.testing.assert_close(simulate_measurement(x, pad), y)
        a = simulate_measurement(x, pad, "poisson:3", generator=torch.Generator().manual_seed(5))
        b = add_noise(y, "poisson", 3.0, seed=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
    ds = PhaseDataset(x, pad=2, noise="poisson:1", seed=0)
    g = ds._generator(1)
    assert torch.equal(ds[1][0], add_noise(fourier_magnitude(x[1], 2), "poisson", 1.0, seed=g))


def test_poisson_snr_on_offline_digits_matches_the_references():
    # REFERENCE_RESULTS / PRCGAN: alpha 1 is about 24 dB, alpha 3 about 16 dB (measured: 24.4 and 15.4)
    x = load_images("mnist-offline", split="test", limit=500).double()
    for pad in (1, 2):
        y = simulate_measurement(x, pad)
        for alpha, reference in ((1, 24.0), (3, 16.0)):
            noisy = simulate_measurement(x, pad, f"poisson:{alpha}", generator=torch.Generator().manual_seed(0))
            snr = 10 * torch.log10((y ** 2).sum((1, 2, 3)) / ((noisy - y) ** 2).sum((1, 2, 3)))
            assert float(snr.mean()) == pytest.approx(reference, abs=1.5), (pad, alpha, float(snr.mean()))


def test_noise_snr_scales_with_the_level():
    g = torch.Generator().manual_seed(0)
    x = 0.5 + 0.5 * torch.rand(16, 1, 32, 32, generator=g)
    y = simulate_measurement(x, 2)

    def snr(noisy):
        return 10 * math.log10(float((y ** 2).sum() / ((noisy - y) ** 2).sum()))

    gauss = simulate_measurement(x, 2, "gaussian:0.05", generator=g)
    assert snr(gauss) == pytest.approx(-20 * math.log10(0.05), abs=1.0)
    assert float(gauss.min()) >= 0
    # many photons per frequency (small alpha): the noise std of y grows like alpha
    p1 = snr(simulate_measurement(x, 2, "poisson:0.1", generator=g))
    p3 = snr(simulate_measurement(x, 2, "poisson:0.3", generator=g))
    assert p1 - p3 == pytest.approx(20 * math.log10(3), abs=0.5)
    # unnormalised Y_noisy ~ Y + N(0, alpha^2 / 4) per frequency; on the orthonormal scale
    # that is a noise energy of alpha^2 / 4 per image
    expected = 10 * math.log10(float((y ** 2).sum()) / (len(x) * 0.1 ** 2 / 4))
    assert p1 == pytest.approx(expected, abs=0.5)


def test_parse_noise():
    assert parse_noise(None) is None
    assert parse_noise("poisson:3") == ("poisson", 3.0)
    assert parse_noise("Gaussian: 0.05") == ("gaussian", 0.05)
    for bad in ("poisson", "poisson:-1", "speckle:1", "gaussian:abc", 3):
        with pytest.raises(ValueError):
            parse_noise(bad)


def test_dataset_is_deterministic_per_seed_and_index():
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    a = PhaseDataset(x, pad=2, noise="poisson:1", augment=Augment(p=0.5), seed=7)
    b = PhaseDataset(x, pad=2, noise="poisson:1", augment=Augment(p=0.5), seed=7)
    c = PhaseDataset(x, pad=2, noise="poisson:1", augment=Augment(p=0.5), seed=8)
    for i in reversed(range(6)):  # reading order does not matter
        ya, xa = a[i]
        yb, xb = b[i]
        assert torch.equal(ya, yb) and torch.equal(xa, xb) and torch.equal(a[i][0], ya)
    assert all(not torch.equal(a[i][0], c[i][0]) for i in range(6))  # another seed, other noise
    same = PhaseDataset(x[:1].expand(2, 1, 16, 16).clone(), noise="poisson:1", seed=7)
    assert not torch.equal(same[0][0], same[1][0])  # same image, another index: other noise
    first = a[0][0]
    a.set_epoch(1)
    assert not torch.equal(a[0][0], first)
    a.set_epoch(0)
    assert torch.equal(a[0][0], first)


def test_augmentation():
    x = torch.zeros(1, 16, 16)
    x[:, 4:12, 6:9] = 0.8
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment_image(x, Augment(p=0.0), g), x)
    out = augment_image(x, Augment(p=1.0, rotation=30), g)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    # only a horizontal flip
    flip = Augment(p=1.0, rotation=0, scale=(1, 1), sharpness=(1, 1), blur=(1e-3, 1e-3),
                   gamma=(1, 1))
    assert torch.allclose(augment_image(x, flip, g), x.flip(-1), atol=1e-6)
    ds = PhaseDataset(x.expand(4, 1, 16, 16).clone(), augment=True)
    assert all(0 <= float(ds[i][1].min()) and float(ds[i][1].max()) <= 1 for i in range(4))
    with pytest.raises(ValueError, match="probability"):
        Augment(p=1.5)


def test_dataset_validation():
    with pytest.raises(ValueError, match=r"\(N, 1, h, w\)"):
        PhaseDataset(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PhaseDataset(torch.rand(2, 1, 8, 8) * 255)
    with pytest.raises(ValueError, match="pad must be a number >= 1"):
        PhaseDataset(torch.rand(2, 1, 8, 8), pad=0.5)
    with pytest.raises(ValueError, match="pad=1.3 times the image height 8 is 10.4"):
        PhaseDataset(torch.rand(2, 1, 8, 8), pad=1.3)
    with pytest.raises(IndexError):
        PhaseDataset(torch.rand(2, 1, 8, 8))[2]
