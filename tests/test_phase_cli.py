"""The phase-retrieval command line: evaluate (classical and networks), train + resume, clear errors."""
import json
import struct

import numpy as np
import pytest
import torch

from course_lib.phase.__main__ import main


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    """40 held-out offline digits (uint8, 28x28) as an .npy file."""
    from course_lib.phase.data import load_images

    x = load_images("mnist-offline", split="test", limit=40)
    path = tmp_path_factory.mktemp("phase_cli") / "digits.npy"
    np.save(path, (x[:, 0].numpy() * 255).round().astype(np.uint8))
    return path


def _json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_evaluate_hio_oversampled_digits_is_nearly_exact(capsys):
    assert main(["evaluate", "--data", "mnist-offline", "--method", "hio", "--limit", "8", "--pad", "2",
                 "--iters", "300", "--restarts", "2", "--threads", "1", "--json"]) == 0
    r = _json(capsys)
    assert r["n"] == 8 and r["image_size"] == [28, 28] and r["magnitude_size"] == [56, 56]
    assert r["protocol"] == "uelwer" and r["noise"] == "none" and r["iters"] == 300
    assert r["mse"] < 0.005 and r["ssim"] > 0.9


def test_evaluate_without_oversampling_from_an_npy_file(digits_file, capsys):
    assert main(["evaluate", "--data", str(digits_file), "--method", "hio", "--limit", "8", "--iters", "100",
                 "--restarts", "1", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "8 images 28x28, pad 1 (magnitudes 28x28)" in text and "MSE " in text and "PSNR " in text
    assert main(["evaluate", "--data", str(digits_file), "--method", "raar", "--limit", "8", "--iters", "100",
                 "--restarts", "1", "--noise", "poisson:3", "--threads", "1", "--json"]) == 0
    r = _json(capsys)
    assert r["pad"] == 1 and r["noise"] == "poisson:3" and 0 < r["mse"] < 0.2
    assert set(r) >= {"mse", "mae", "ssim", "psnr", "seconds", "data", "how"}


def test_train_mlp_then_evaluate_with_the_checkpoint(digits_file, tmp_path, capsys):
    out, run = tmp_path / "mlp.pt", tmp_path / "run.pt"
    common = ["train", "--method", "mlp", "--data", str(digits_file), "--pad", "2", "--batch-size", "4",
              "--hidden", "32", "--out", str(out), "--checkpoint", str(run), "--heldout-limit", "16",
              "--threads", "1"]
    assert main(common + ["--steps", "5"]) == 0
    sidecar = json.loads((tmp_path / "mlp.pt.json").read_text())
    assert sidecar["arch"] == "phase_mlp" and sidecar["steps"] == 5 and sidecar["pad"] == 2
    assert sidecar["noise"] is None and "--steps 5" in sidecar["command"] and str(digits_file) in sidecar["data"]
    held = sidecar["heldout"]
    assert held["n"] == 16 and held["protocol"] == "uelwer" and 0 <= held["mse"] <= 1
    capsys.readouterr()
    # the same command resumes from the run checkpoint
    assert main(common + ["--steps", "5"]) == 0
    assert "resumed from" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "mlp.pt.json").read_text())
    assert sidecar["steps"] == 5
    # more steps is another training (the cosine schedule spans them): refused in one line, not continued
    assert main(common + ["--steps", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different training" in err and "'cosine to 0 over 7 steps' now" in err
    # evaluate reproduces the sidecar's held-out numbers
    assert main(["evaluate", "--data", "mnist-offline", "--method", "mlp", "--checkpoint", str(out),
                 "--limit", "16", "--threads", "1", "--json"]) == 0
    r = _json(capsys)
    assert r["pad"] == 2 and r["image_size"] == [28, 28]
    assert r["mse"] == pytest.approx(sidecar["heldout"]["mse"], abs=1e-4)
    # a network on another file size: resized to the model's size
    small = tmp_path / "small.npy"
    np.save(small, np.random.default_rng(0).random((3, 20, 20)).astype(np.float32))
    assert main(["evaluate", "--data", str(small), "--method", "mlp", "--checkpoint", str(out), "--threads", "1",
                 "--json"]) == 0
    assert _json(capsys)["image_size"] == [28, 28]
    # mismatches with the checkpoint
    assert main(["evaluate", "--data", str(digits_file), "--method", "mlp", "--checkpoint", str(out),
                 "--pad", "1"]) == 2
    assert "does not match the checkpoint" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(digits_file), "--method", "prdad1", "--checkpoint", str(out)]) == 2
    assert "phase_mlp" in capsys.readouterr().err


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_gives_one_line_errors(digits_file, tmp_path, capsys):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    assert "empty" in _error(capsys, ["evaluate", "--data", str(empty), "--method", "hio"])
    no_images = tmp_path / "none.npy"
    np.save(no_images, np.zeros((0, 28, 28), np.uint8))
    assert "empty" in _error(capsys, ["evaluate", "--data", str(no_images), "--method", "hio"])
    idx = tmp_path / "images-idx3-ubyte"
    idx.write_bytes(struct.pack(">I", 0x00000999) + struct.pack(">3I", 1, 2, 2) + bytes(4))
    assert "magic number" in _error(capsys, ["evaluate", "--data", str(idx), "--method", "hio"])
    assert "neither a file nor a known data set" in _error(
        capsys, ["evaluate", "--data", str(tmp_path / "missing.npy"), "--method", "hio"])
    # measured magnitudes: NaN, negative, the wrong size
    base = ["evaluate", "--data", str(digits_file), "--method", "hio", "--limit", "3", "--iters", "10"]
    bad = np.ones((3, 56, 56), np.float32)
    bad[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert "NaN" in _error(capsys, base + ["--magnitudes", str(tmp_path / "nan.npy")])
    np.save(tmp_path / "neg.npy", -np.ones((3, 56, 56), np.float32))
    assert "negative" in _error(capsys, base + ["--magnitudes", str(tmp_path / "neg.npy")])
    np.save(tmp_path / "odd.npy", np.ones((3, 56, 50), np.float32))
    assert "do not match images of size 28x28" in _error(capsys, base + ["--magnitudes", str(tmp_path / "odd.npy")])
    np.save(tmp_path / "more.npy", np.ones((50, 56, 56), np.float32))
    assert "must match" in _error(capsys, ["evaluate", "--data", str(digits_file), "--method", "hio",
                                           "--magnitudes", str(tmp_path / "more.npy")])
    np.save(tmp_path / "good.npy", np.ones((3, 56, 56), np.float32))
    assert "--pad is 1" in _error(capsys, base + ["--magnitudes", str(tmp_path / "good.npy"), "--pad", "1"])
    # other mistakes
    assert "not a whole number" in _error(capsys, base + ["--pad", "1.3"])
    assert "poisson:ALPHA" in _error(capsys, base + ["--noise", "poisson:-1"])
    err = _error(capsys, ["evaluate", "--data", str(digits_file), "--method", "prdad1", "--pad", "1.5"])
    assert "no shipped phase-retrieval network for pad 1.5" in err and "python -m course_lib.phase train" in err
    assert "square" in _error(capsys, ["train", "--method", "mlp", "--data", str(tmp_path / "odd.npy"),
                                       "--out", str(tmp_path / "m.pt")])
