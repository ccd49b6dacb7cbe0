"""A run checkpoint resumes only the training that wrote it (issue 16, item 1).

``fit`` records what defines a run (model, loss, optimiser, lr, batch size, seed, ... and the
caller's ``run_config``: data, schedule) and refuses, in one line, to resume a checkpoint of other
settings; the command lines name their default run checkpoint after a hash of those settings, and
refuse ``--checkpoint`` naming the ``--out`` file.
"""
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from course_lib.core.checkpoints import CheckpointError, atomic_save, load_checkpoint
from course_lib.core.training import data_fingerprint, fit, run_checkpoint_path


class Noisy(torch.utils.data.Dataset):
    def __init__(self, n=64):
        self.x = torch.randn(n, 4, generator=torch.Generator().manual_seed(1))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] + 0.01 * torch.randn(4)
        return x, x.sum(0, keepdim=True)


class Toy(nn.Module):
    """A model with a config, like the course's networks (``config_dict()``)."""

    def __init__(self, activation="relu"):
        super().__init__()
        torch.manual_seed(0)
        self.activation = activation
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 1)

    def config_dict(self):
        return {"width": 8, "activation": self.activation}

    def forward(self, x):
        return self.b(getattr(torch, self.activation)(self.a(x)))


def step_lr(opt):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)


BASE = dict(model=Toy, loss_fn=nn.functional.mse_loss, train_data=Noisy, lr=1e-2, batch_size=8, seed=3,
            shuffle=True, optimizer=None, scheduler=None, grad_clip=None,
            run_config={"data": "set A", "schedule": "constant"})


def train(ckpt, steps=4, **changes):
    kw = {**BASE, **changes}
    model, loss_fn, data = kw.pop("model"), kw.pop("loss_fn"), kw.pop("train_data")
    return fit(model(), loss_fn, data(), steps=steps, checkpoint=ckpt, device="cpu", progress=False, **kw)


@pytest.mark.parametrize("change, message", [
    ({"lr": 0.5}, "lr: 0.01 in the checkpoint, 0.5 now"),
    ({"batch_size": 4}, "batch_size: 8 in the checkpoint, 4 now"),
    ({"seed": 7}, "seed: 3 in the checkpoint, 7 now"),
    ({"shuffle": False}, "shuffle: True in the checkpoint, False now"),
    ({"optimizer": lambda p: torch.optim.SGD(p, lr=1e-2)}, "optimizer: 'Adam' in the checkpoint, 'SGD' now"),
    ({"optimizer": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1)},
     "weight_decay: 0 in the checkpoint, 0.1 now"),
    ({"scheduler": step_lr}, "scheduler: None in the checkpoint, 'StepLR' now"),
    ({"grad_clip": 1.0}, "grad_clip: None in the checkpoint, 1.0 now"),
    ({"loss_fn": nn.functional.l1_loss}, "loss: 'mse_loss' in the checkpoint, 'l1_loss' now"),
    ({"model": lambda: Toy("tanh")}, "model_config.activation: 'relu' in the checkpoint, 'tanh' now"),
    ({"train_data": lambda: Noisy(40)}, "train_size: 64 in the checkpoint, 40 now"),
    ({"run_config": {"data": "set B", "schedule": "constant"}}, "data: 'set A' in the checkpoint, 'set B' now"),
    ({"run_config": {"data": "set A", "schedule": "cosine over 8 steps"}},
     "schedule: 'constant' in the checkpoint, 'cosine over 8 steps' now"),
    ({"run_config": {"data": "set A"}}, "schedule: 'constant' in the checkpoint, (not recorded) now"),
])
def test_resuming_with_another_setting_is_refused_in_one_line(tmp_path, change, message):
    ckpt = tmp_path / "run.pt"
    train(ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(CheckpointError) as err:
        train(ckpt, **change)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"checkpoint {ckpt} belongs to a different training (")
    assert message in text
    assert "delete it, or pass another checkpoint path (--checkpoint), to train from scratch" in text
    assert ckpt.read_bytes() == before  # the other training's checkpoint is left alone


def test_every_difference_is_named(tmp_path):
    train(tmp_path / "run.pt")
    with pytest.raises(CheckpointError, match=r"\(lr: 0.01 in the checkpoint, 0.5 now; seed: 3 in the checkpoint, "
                                              r"7 now; data: 'set A' in the checkpoint, 'set B' now\)"):
        train(tmp_path / "run.pt", lr=0.5, seed=7, run_config={"data": "set B", "schedule": "constant"})


def test_more_steps_with_the_same_settings_resume_to_the_weights_of_a_straight_run(tmp_path):
    """Without a schedule over the total, a larger ``steps`` trains the same run longer."""
    first = train(tmp_path / "run.pt", steps=6, scheduler=step_lr)
    assert first.step == 6
    longer = train(tmp_path / "run.pt", steps=10, scheduler=step_lr)
    assert longer.resumed_from == 6 and longer.step == 10
    straight = train(None, steps=10, scheduler=step_lr)
    for (k, a), b in zip(straight.model.state_dict().items(), longer.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_checkpoint_without_recorded_settings_is_refused(tmp_path):
    ckpt = tmp_path / "old.pt"
    train(ckpt)
    state = load_checkpoint(ckpt)
    del state["run_config"]  # as written by course_lib before the settings were recorded
    atomic_save(state, ckpt)
    with pytest.raises(CheckpointError, match=r"old.pt does not record the settings of its training .*"
                                              r"delete it, or pass another checkpoint path"):
        train(ckpt)


def test_run_placeholder_gives_each_training_its_own_file(tmp_path):
    a = train(tmp_path / "r-{run}.ckpt")
    assert re.fullmatch(r"r-[0-9a-f]{8}\.ckpt", a.checkpoint.name) and a.checkpoint.is_file()
    same = train(tmp_path / "r-{run}.ckpt")
    assert same.checkpoint == a.checkpoint and same.resumed_from == 4
    other = train(tmp_path / "r-{run}.ckpt", lr=0.5)
    assert other.checkpoint != a.checkpoint and other.resumed_from == 0
    assert len(list(tmp_path.glob("r-*.ckpt"))) == 2


def test_data_fingerprint_follows_the_data(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"1234")
    first = data_fingerprint(folder)
    assert first.startswith(f"folder {folder.resolve()} (1 file), ")
    assert data_fingerprint(str(folder)) == first
    (folder / "a.png").write_bytes(b"12345")  # another size
    second = data_fingerprint(folder)
    (folder / "b.png").write_bytes(b"1")
    third = data_fingerprint(folder)
    assert len({first, second, third}) == 3 and "(2 files)" in third
    x = torch.rand(3, 8, 8)
    assert data_fingerprint({"x": x}) == data_fingerprint({"x": x.clone()}) != data_fingerprint({"x": x + 1})
    assert data_fingerprint([x, x]).startswith("2 tensors, ")
    assert data_fingerprint("offline photos") == "offline photos"
    assert data_fingerprint("n" * 5000) == "n" * 5000  # not a path (too long for one), no OSError


def test_trained_weights_are_not_taken_for_a_run_checkpoint(tmp_path):
    from course_lib.core.checkpoints import save_pretrained

    weights = save_pretrained(tmp_path / "model.pt", Toy(), arch="toy", config={})
    with pytest.raises(CheckpointError, match=r"model.pt holds trained weights \(save_pretrained's, like an --out "
                                              r"file\), not a run checkpoint of fit\(\); pass another checkpoint path"):
        train(weights)


def test_run_checkpoint_path(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))
    assert run_checkpoint_path(None, tmp_path / "m.pt", "espcn-{run}.ckpt") == tmp_path / "cache" / "runs" / "espcn-{run}.ckpt"
    assert run_checkpoint_path(tmp_path / "run.pt", tmp_path / "m.pt", "x") == tmp_path / "run.pt"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"^--checkpoint and --out are the same file sub/../m.pt: .* pass "
                                              r"another --checkpoint or leave it out$"):
        run_checkpoint_path("sub/../m.pt", tmp_path / "m.pt", "x")


# --- the command lines ---------------------------------------------------------------

def _noise_images(folder, n, size, seed):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return str(folder)


@pytest.mark.parametrize("unit, args", [
    ("superres", ["train", "--scale", "2", "--steps", "1", "--images", "nowhere"]),
    ("superres", ["train", "--deblock", "--steps", "1", "--images", "nowhere"]),
    ("segmentation", ["train", "--images", "nowhere", "--masks", "nowhere", "--preset", "light", "--steps", "1"]),
    ("style", ["train", "--style", "nowhere.png", "--images", "nowhere", "--steps", "1"]),
    ("phase", ["train", "--method", "mlp", "--data", "nowhere.npy", "--steps", "1"]),
])
def test_train_refuses_checkpoint_that_is_the_out_file(tmp_path, monkeypatch, capsys, unit, args):
    import importlib

    main = importlib.import_module(f"course_lib.{unit}.__main__").main
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(args + ["--checkpoint", "runs/../model.pt", "--out", str(tmp_path / "model.pt")]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --checkpoint and --out are the same file runs/../model.pt: the run checkpoint (for "
                   "resuming) and the trained weights must be two files; pass another --checkpoint or leave it out\n")
    assert not (tmp_path / "model.pt").exists()


def test_superres_train_with_other_settings_does_not_reuse_the_run(tmp_path, monkeypatch, capsys):
    """The issue's reproduction: a second training with other data, lr and seed got the first one's weights."""
    from course_lib.core.checkpoints import load_pretrained
    from course_lib.superres.__main__ import main
    from course_lib.superres.models import ESPCN

    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))
    photos_a = _noise_images(tmp_path / "a", 2, 60, seed=1)
    photos_b = _noise_images(tmp_path / "b", 2, 60, seed=2)
    holdout = _noise_images(tmp_path / "holdout", 1, 96, seed=3)  # validation patches are 32 x scale
    common = ["train", "--scale", "3", "--steps", "3", "--batch-size", "4", "--eval-images", holdout, "--threads", "1"]
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"

    assert main(common + ["--images", photos_a, "--out", str(a)]) == 0
    assert main(common + ["--images", photos_b, "--lr", "0.5", "--seed", "7", "--out", str(b)]) == 0
    assert "nothing to train" not in capsys.readouterr().out
    wa, wb = (load_pretrained(p, ESPCN, arch="espcn")[0].state_dict() for p in (a, b))
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)  # b was trained, not copied from a's run
    runs = sorted(p.name for p in (tmp_path / "cache" / "runs").iterdir())
    assert len(runs) == 2 and all(re.fullmatch(r"espcn_x3_paper-[0-9a-f]{8}\.ckpt", r) for r in runs)

    # the same command again finds its own run checkpoint (the hash does not change between calls)
    assert main(common + ["--images", photos_a, "--out", str(tmp_path / "a2.pt")]) == 0
    assert "already holds 3 >= 3 steps; nothing to train" in capsys.readouterr().out
    wa2 = load_pretrained(tmp_path / "a2.pt", ESPCN, arch="espcn")[0].state_dict()
    assert all(torch.equal(wa[k], wa2[k]) for k in wa)

    # an explicit --checkpoint of another training: one line naming what differs, nothing written
    run = tmp_path / "run.ckpt"
    assert main(common + ["--images", photos_a, "--checkpoint", str(run), "--out", str(tmp_path / "c.pt")]) == 0
    capsys.readouterr()
    assert main(common + ["--images", photos_b, "--lr", "0.5", "--seed", "7", "--checkpoint", str(run),
                          "--out", str(tmp_path / "d.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: checkpoint {run} belongs to a different training (")
    assert "lr: 0.001 in the checkpoint, 0.5 now" in err and "seed: 0 in the checkpoint, 7 now" in err
    assert f"data: 'folder {tmp_path / 'a'} (2 files)" in err and "delete it" in err
    assert not (tmp_path / "d.pt").exists()


def test_unit_trainings_record_their_settings(tmp_path):
    """Each unit's training function adds what defines its run: another loss weight is refused."""
    from course_lib.segmentation.pspnet import pspnet
    from course_lib.segmentation.train import train_segmentation
    from course_lib.style.fast import train_fast

    contents = [torch.rand(3, 20, 22, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    style = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(9))

    def fast(style_weight, **kw):
        return train_fast(contents, style, size=16, steps=2, batch_size=2, style_weight=style_weight,
                          features=_TinyFeatures(), width=0.125, progress=False, checkpoint=tmp_path / "fast.pt", **kw)

    fast(1e3)
    with pytest.raises(CheckpointError, match=r"loss_weights.style: 1000.0 in the checkpoint, 10000.0 now"):
        fast(1e4)
    with pytest.raises(CheckpointError, match=r"content: '4 tensors, [0-9a-f]{8}' in the checkpoint, "
                                              r"'3 tensors, [0-9a-f]{8}' now"):
        train_fast(contents[:3], style, size=16, steps=2, batch_size=2, style_weight=1e3, features=_TinyFeatures(),
                   width=0.125, progress=False, checkpoint=tmp_path / "fast.pt")

    data = torch.utils.data.TensorDataset(torch.rand(4, 3, 32, 32), (torch.rand(4, 1, 32, 32) > 0.5).float())

    def seg(jaccard_weight):
        torch.manual_seed(0)
        return train_segmentation(pspnet("light"), data, steps=1, batch_size=2, jaccard_weight=jaccard_weight,
                                  checkpoint=tmp_path / "seg.pt", progress=False, device="cpu")

    seg(0.5)
    with pytest.raises(CheckpointError, match=r"loss_weights.jaccard: 0.5 in the checkpoint, 0.9 now"):
        seg(0.9)


class _TinyFeatures(nn.Module):
    """Stand-in for VGG16's style layers (relu1_2 ... relu4_3), small and seeded."""

    def __init__(self):
        super().__init__()
        from course_lib.style.fast import STYLE_LAYERS

        g = torch.Generator().manual_seed(0)
        self.names = STYLE_LAYERS
        self.convs = nn.ModuleList(nn.Conv2d(c, d, 3, padding=1) for c, d in ((3, 4), (4, 6), (6, 8), (8, 8)))
        with torch.no_grad():
            for c in self.convs:
                c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.5)

    def forward(self, x):
        out = {}
        for i, (conv, name) in enumerate(zip(self.convs, self.names)):
            x = torch.relu(conv(nn.functional.avg_pool2d(x, 2) if i else x))
            out[name] = x
        return out
