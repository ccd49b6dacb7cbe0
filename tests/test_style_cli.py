"""The style unit's command line: stylize, train, apply, and clear errors."""
import json

import numpy as np
import pytest
from PIL import Image

from course_lib.style.__main__ import main


@pytest.fixture()
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    content = tmp_path / "content.png"
    style = tmp_path / "style.png"
    Image.fromarray((rng.random((40, 56, 3)) * 255).astype(np.uint8)).save(content)
    stripes = np.zeros((48, 48, 3), np.uint8)
    stripes[:, ::6] = (230, 40, 20)
    Image.fromarray(stripes).save(style)
    return content, style


def test_stylize_writes_image_and_lowers_style_loss(pictures, tmp_path, capsys):
    content, style = pictures
    out = tmp_path / "out" / "styled.png"
    assert main(["stylize", str(content), str(style), str(out), "--size", "48", "--steps", "6", "--quiet"]) == 0
    img = Image.open(out)
    assert img.size == (48, round(48 * 40 / 56))  # longer side = --size, aspect kept
    text = capsys.readouterr().out
    assert "VGG19 weights:" in text
    before, after = text.split("style loss ")[1].split(" (")[0].split(" -> ")
    assert float(after) < float(before)


def test_train_then_apply_round_trip(pictures, tmp_path, capsys):
    content, style = pictures
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.open(content).save(photos / f"p{i}.png")
    model = tmp_path / "m.pt"
    assert main(["train", "--style", str(style), "--out", str(model), "--images", str(photos), "--steps", "3",
                 "--size", "32", "--batch-size", "2", "--width", "0.25",
                 "--checkpoint", str(tmp_path / "run.pt")]) == 0
    sidecar = json.loads((tmp_path / "m.pt.json").read_text())
    assert sidecar["steps"] == 3 and sidecar["arch"] == "transformer_net"
    assert "--steps 3" in sidecar["command"] and str(photos) in sidecar["data"]
    assert sidecar["loss_network_weights"]
    out = tmp_path / "applied.png"
    assert main(["apply", str(content), str(out), "--checkpoint", str(model)]) == 0
    assert Image.open(out).size == Image.open(content).size


def test_clear_errors(pictures, tmp_path, capsys):
    content, style = pictures
    assert main(["stylize", str(content), str(tmp_path / "missing.png"), str(tmp_path / "o.png")]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert main(["apply", str(content), str(tmp_path / "o.png"), "--checkpoint", str(style)]) == 2
    assert "style.png" in capsys.readouterr().err
    assert main(["train", "--style", str(style), "--out", str(tmp_path / "m.pt"), "--images",
                 str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
