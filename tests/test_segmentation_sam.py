"""The optional SAM comparison: status messages, prompts from masks, and the plumbing, with a stand-in SAM.

The real ``segment_anything`` package and its weights are not here (offline); a fake module with the same API
(``sam_model_registry``, ``SamPredictor.set_image/predict``) checks what course_lib does around it.
"""
import sys
import types

import numpy as np
import pytest
import torch

from course_lib.segmentation import sam as S
from course_lib.segmentation.train import evaluate_segmentation


class FakePredictor:
    """Returns, for a box prompt, three masks: the box itself (score 0.9), its left half and an empty one."""

    def __init__(self, model=None):
        self.model, self.image, self.calls = model, None, []

    def set_image(self, image):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.image = image

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):
        self.calls.append({"box": box, "point": point_coords, "labels": point_labels})
        h, w = self.image.shape[:2]
        full = np.zeros((h, w), bool)
        if box is not None:
            x0, y0, x1, y1 = np.round(box).astype(int)
            full[y0:y1, x0:x1] = True
        else:
            x, y = point_coords[0].astype(int)
            full[max(0, y - 2):y + 3, max(0, x - 2):x + 3] = True
        half = full.copy()
        half[:, w // 2:] = False
        return np.stack([half, full, np.zeros_like(full)]), np.array([0.5, 0.9, 0.1]), None


@pytest.fixture
def fake_sam(monkeypatch, tmp_path):
    mod = types.ModuleType("segment_anything")
    built = []

    def build(checkpoint=None):
        built.append(checkpoint)
        return torch.nn.Linear(1, 1)

    mod.sam_model_registry = {"vit_b": build, "vit_l": build, "vit_h": build}
    mod.SamPredictor = FakePredictor
    monkeypatch.setitem(sys.modules, "segment_anything", mod)
    ckpt = tmp_path / S.SAM_CHECKPOINTS["vit_b"]
    ckpt.write_bytes(b"weights")
    monkeypatch.setenv("COURSE_SAM_CHECKPOINT", str(ckpt))
    return built, ckpt


def test_status_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "segment_anything", None)  # import fails
    ok, msg = S.sam_status()
    assert not ok and "pip install segment-anything" in msg and "skipped" in msg
    with pytest.raises(RuntimeError, match="load_sam: SAM is not available"):
        S.load_sam()


def test_status_without_weights(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "segment_anything", types.ModuleType("segment_anything"))
    monkeypatch.delenv("COURSE_SAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    ok, msg = S.sam_status("vit_b")
    assert not ok and S.SAM_URL + "sam_vit_b_01ec64.pth" in msg and "COURSE_SAM_CHECKPOINT" in msg
    # a file under its official name in the course cache is found
    (tmp_path / "cache" / "sam").mkdir(parents=True)
    (tmp_path / "cache" / "sam" / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    assert S.find_sam_checkpoint("vit_b") == tmp_path / "cache" / "sam" / "sam_vit_b_01ec64.pth"
    assert S.sam_status("vit_b")[0]
    # a path the user gave that does not exist is an error, not a silent fallback
    monkeypatch.setenv("COURSE_SAM_CHECKPOINT", str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match="COURSE_SAM_CHECKPOINT"):
        S.find_sam_checkpoint()
    with pytest.raises(ValueError, match="model_type must be one of"):
        S.sam_status("vit_x")


def test_box_and_point_from_mask():
    m = torch.zeros(1, 20, 30)
    m[0, 5:12, 8:20] = 1
    ys, xs = np.nonzero(m[0].numpy())
    assert S.box_from_mask(m).tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == [8, 5, 20, 12]
    # margin widens by a fraction of the size, clipped at the border
    assert S.box_from_mask(m, margin=0.5).tolist() == [2.0, 1.5, 26.0, 15.5]
    assert S.box_from_mask(m, margin=1.0).tolist() == [0.0, 0.0, 30.0, 19.0]
    # a ring: the centroid is not foreground, the point returned is
    ring = torch.zeros(21, 21)
    ring[2:19, 2:19] = 1
    ring[5:16, 5:16] = 0
    x, y = S.center_point(ring)
    assert ring[int(y), int(x)] == 1
    with pytest.raises(ValueError, match="mask is empty"):
        S.box_from_mask(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"mask must be \(H, W\)"):
        S.center_point(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="margin"):
        S.box_from_mask(m, margin=2)


def test_sam_segment_keeps_the_best_scored_mask(fake_sam):
    built, ckpt = fake_sam
    predictor = S.load_sam("vit_b", device="cpu")
    assert built == [str(ckpt)] and isinstance(predictor, FakePredictor)
    img = torch.rand(3, 16, 24)
    out = S.sam_segment(predictor, img, box=[4, 2, 20, 10])
    assert out.shape == (1, 16, 24) and out.sum() == 16 * 8  # the full box (score 0.9), not its half
    assert np.allclose(predictor.image, (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    S.sam_segment(predictor, img, point=[5, 6])
    assert predictor.calls[-1]["labels"].tolist() == [1] and predictor.calls[-1]["point"].tolist() == [[5, 6]]
    with pytest.raises(ValueError, match="give a box"):
        S.sam_segment(predictor, img)
    with pytest.raises(ValueError, match="x1 > x0"):
        S.sam_segment(predictor, img, box=[5, 2, 5, 10])
    with pytest.raises(ValueError, match=r"image must be a tensor \(3, H, W\)"):
        S.sam_segment(predictor, img[0], box=[4, 2, 20, 10])


class _Const(torch.nn.Module):
    """A 'segmentation network' whose logits are fixed: +5 inside a rectangle, -5 elsewhere."""

    def __init__(self, rect):
        super().__init__()
        self.rect = rect
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        y0, y1, x0, x1 = self.rect
        out = torch.full((x.shape[0], 1, *x.shape[-2:]), -5.0) + 0 * self.p
        out[..., y0:y1, x0:x1] = 5.0
        return out


def test_compare_with_sam_against_hand_computed_ious(fake_sam):
    predictor = S.load_sam("vit_b", device="cpu")
    truth = torch.zeros(1, 20, 20)
    truth[0, 4:16, 4:16] = 1                                  # 144 pixels
    data = [(torch.rand(3, 20, 20), truth)]
    model = _Const((4, 16, 4, 10))                            # the PSPNet finds the left half: 72 pixels
    res = S.compare_with_sam(model, data, predictor, prompts=("pspnet_box", "true_box", "center_point"))
    assert res["n"] == 1 and res["n_no_prompt"] == 0
    assert res["pspnet"] == pytest.approx(72 / 144)
    assert res["pspnet"] == pytest.approx(evaluate_segmentation(model, data, progress=False)["miou"])
    assert res["sam_pspnet_box"] == pytest.approx(72 / 144)   # the fake SAM returns the prompt box
    assert res["sam_true_box"] == pytest.approx(1.0)
    assert res["sam_center_point"] == pytest.approx(25 / 144)  # a 5x5 square around the click, inside the truth
    # an empty prediction gives no automatic prompt: counted, and SAM scores 0 there
    res = S.compare_with_sam(_Const((0, 0, 0, 0)), data, predictor, prompts=("pspnet_box",))
    assert res["n_no_prompt"] == 1 and res["sam_pspnet_box"] == 0.0 and res["pspnet"] == 0.0
    with pytest.raises(ValueError, match="prompts must be a non-empty subset"):
        S.compare_with_sam(model, data, predictor, prompts=("scribble",))
    with pytest.raises(ValueError, match="non-empty dataset"):
        S.compare_with_sam(model, [], predictor)
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        S.compare_with_sam(model, data, predictor, limit=0)
    assert S.compare_with_sam(model, data * 3, predictor, limit=2)["n"] == 2
    with pytest.raises(ValueError, match="item 0 must be"):
        S.compare_with_sam(model, [(torch.rand(3, 20, 20), torch.zeros(1, 10, 10))], predictor)
    with pytest.raises(ValueError, match="item 0 must be"):
        S.compare_with_sam(model, [(torch.rand(3, 20, 20), [[0, 1]])], predictor)  # a mask that is not a tensor
