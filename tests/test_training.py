"""fit(): training, validation, history, checkpoint/resume, errors."""
import math
import os
import random
import signal

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib.core.checkpoints import CheckpointError, atomic_save
from course_lib.core.training import evaluate, fit


class Noisy(torch.utils.data.Dataset):
    """Regression data whose samples draw fresh noise from the global RNG (like augmentation)."""

    def __init__(self, n=64):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 4, generator=g)
        self.w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] + 0.01 * torch.randn(4)
        return x, x @ self.w


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.ReLU(), nn.Linear(16, 1))


def sched(opt):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)


def run(ckpt, steps=40, callback=None, model=None):
    model = model or make_model()
    return fit(model, nn.functional.mse_loss, Noisy(), Noisy(16), steps=steps, batch_size=8, lr=1e-2,
               scheduler=sched, eval_every=10, checkpoint=ckpt, checkpoint_every=10, seed=3,
               device="cpu", progress=False, callback=callback,
               metrics={"mae": lambda p, t: (p - t).abs().mean(dim=1)})


def test_fit_learns_and_records_history():
    res = run(None, steps=60)
    train = res.history["train"]
    assert len(train) == 60 and train[0]["step"] == 1 and train[-1]["step"] == 60
    assert [r["step"] for r in res.history["val"]] == [10, 20, 30, 40, 50, 60]
    assert res.history["val"][-1]["loss"] < 0.5 * res.history["val"][0]["loss"]
    assert "mae" in res.history["val"][0]
    # the scheduler is stepped once per step: lr halves every 20 steps
    assert train[19]["lr"] == pytest.approx(1e-2) and train[20]["lr"] == pytest.approx(5e-3)
    assert res.samples_per_s > 0 and not res.interrupted


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    full = run(tmp_path / "full.pt")

    def interrupt(step, logs):
        if step == 23:  # not a multiple of checkpoint_every: the interrupt handler saves
            raise KeyboardInterrupt

    part = run(tmp_path / "part.pt", callback=interrupt)
    assert part.interrupted and part.step == 23
    resumed = run(tmp_path / "part.pt")  # a fresh model object, as after a kernel restart
    assert resumed.resumed_from == 23 and resumed.step == 40
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"parameter {k} differs after resume"
    assert [r["loss"] for r in full.history["train"]] == [r["loss"] for r in resumed.history["train"]]
    assert full.history["val"] == resumed.history["val"]


def test_resume_from_periodic_checkpoint_with_dataloader(tmp_path):
    """With a user DataLoader (no shuffle, deterministic samples), resume skips the batches seen."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    ds = TensorDataset(x, x.sum(1, keepdim=True))

    def go(ckpt, callback=None):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        return fit(model, nn.functional.mse_loss, DataLoader(ds, batch_size=8), steps=20,
                   checkpoint=ckpt, checkpoint_every=5, seed=0, device="cpu", progress=False,
                   callback=callback)

    full = go(tmp_path / "a.pt")

    def stop(step, logs):
        if step == 13:
            raise KeyboardInterrupt

    go(tmp_path / "b.pt", callback=stop)
    resumed = go(tmp_path / "b.pt")
    assert resumed.resumed_from == 13
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_completed_checkpoint_is_not_retrained(tmp_path):
    run(tmp_path / "c.pt", steps=10)
    again = run(tmp_path / "c.pt", steps=10)
    assert again.step == 10 and again.resumed_from == 10 and len(again.history["train"]) == 10


def test_atomic_writes_get_an_ordinary_files_mode(tmp_path):
    """A temp file from mkstemp is 0600; what atomic writes leave must be readable like any file (umask 022)."""
    from course_lib.core.checkpoints import atomic_write_text
    from course_lib.core.images import save_image

    old = os.umask(0o022)
    try:
        paths = [atomic_save({"a": torch.ones(2)}, tmp_path / "a.pt"), atomic_write_text("{}", tmp_path / "a.json")]
        save_image(torch.zeros(3, 4, 4), tmp_path / "a.png")
        paths.append(tmp_path / "a.png")
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in paths] == [oct(0o644)] * 3


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    atomic_save({"a": torch.ones(2)}, path)
    before = path.read_bytes()

    def boom(obj, fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"a": torch.zeros(2)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # temp file cleaned up


def test_corrupt_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        run(path)
    trunc = tmp_path / "trunc.pt"
    run(tmp_path / "ok.pt", steps=10)
    data = (tmp_path / "ok.pt").read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt.*corrupt or truncated"):
        run(trunc)


def test_mismatched_checkpoint_says_what_differs(tmp_path):
    run(tmp_path / "m.pt", steps=10)
    torch.manual_seed(0)
    other = nn.Sequential(nn.Linear(4, 32), nn.Dropout(0.1), nn.ReLU(), nn.Linear(32, 1))
    with pytest.raises(CheckpointError, match=r"m.pt.*shape mismatches: 0.weight: checkpoint \(16, 4\) vs model \(32, 4\)"):
        run(tmp_path / "m.pt", model=other)


def test_checkpoint_refuses_arbitrary_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        run(path)


def test_nan_loss_stops_with_clear_message():
    model = nn.Linear(4, 1)
    with pytest.raises(FloatingPointError, match="loss became nan at step 1"):
        fit(model, lambda p, t: (p * float("nan")).mean(), Noisy(), steps=5, batch_size=8,
            device="cpu", progress=False)


def nan_after(n_good):
    """A loss that is finite for ``n_good`` calls, then NaN."""
    calls = []

    def loss(p, t):
        calls.append(1)
        value = nn.functional.mse_loss(p, t)
        return value if len(calls) <= n_good else value * float("nan")
    return loss


def test_nan_loss_says_the_checkpoint_is_intact_only_when_it_exists(tmp_path):
    # NaN at step 1: no checkpoint written yet, so none can be "intact"
    ckpt = tmp_path / "none_yet.pt"
    with pytest.raises(FloatingPointError, match="at step 1") as err:
        fit(make_model(), nan_after(0), Noisy(), steps=10, batch_size=8, checkpoint=ckpt, checkpoint_every=4,
            device="cpu", progress=False)
    assert not ckpt.exists()
    assert "intact" not in str(err.value) and "No checkpoint was written yet" in str(err.value)
    # NaN at step 6: the checkpoint of step 4 exists and is intact
    ckpt = tmp_path / "written.pt"
    with pytest.raises(FloatingPointError, match="at step 6") as err:
        fit(make_model(), nan_after(5), Noisy(), steps=10, batch_size=8, checkpoint=ckpt, checkpoint_every=4,
            device="cpu", progress=False)
    assert ckpt.is_file() and f"The last checkpoint {ckpt} is intact" in str(err.value)
    assert torch.load(ckpt, weights_only=True)["step"] == 4


class RandomCrops(torch.utils.data.Dataset):
    """Samples drawn like augmentation: a random crop (python, numpy) and noise (torch) per item.

    At the ``interrupt_at``-th item read, after its random draws, a real SIGINT is sent to this
    process (Ctrl-C); at the ``fail_at``-th it raises a RuntimeError instead (a crash or a kill:
    no handler runs, only the periodic checkpoints are left).
    """

    def __init__(self, n=48, interrupt_at=None, fail_at=None):
        self.images = torch.rand(n, 10, 10, generator=torch.Generator().manual_seed(2))
        self.reads, self.interrupt_at, self.fail_at = 0, interrupt_at, fail_at

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        top, left = random.randint(0, 2), int(np.random.randint(0, 3))
        x = self.images[i, top:top + 8, left:left + 8].flatten() + 0.05 * torch.randn(64)
        self.reads += 1
        if self.reads == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        if self.reads == self.fail_at:
            raise RuntimeError("the process died here")
        return x, x[:4].sum(0, keepdim=True)


def crops_run(ckpt, data):
    random.seed(0)  # fit seeds torch; the python and numpy generators are the caller's
    np.random.seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, 1))
    return fit(model, nn.functional.mse_loss, data, RandomCrops(8), steps=20, batch_size=8, lr=1e-2,
               scheduler=sched, eval_every=5, checkpoint=ckpt, checkpoint_every=5, seed=3, device="cpu",
               progress=False)


def assert_same_weights(a, b):
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), f"parameter {k} differs after resume"
    assert [r["loss"] for r in a.history["train"]] == [r["loss"] for r in b.history["train"]]


@pytest.fixture()
def sigint_raises():
    """Ctrl-C as a terminal or a Jupyter kernel delivers it. A process started in the background by a
    non-interactive shell (as CI may be) inherits SIGINT *ignored*, and Python then leaves it so."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigint_while_a_batch_is_drawn_resumes_exactly(tmp_path, sigint_raises):
    """Ctrl-C in the middle of drawing a batch (random crops and noise already drawn): the resumed run
    draws that batch again with the same random numbers and ends with the uninterrupted run's weights."""
    full = crops_run(tmp_path / "full.pt", RandomCrops())
    # read 107 = the 3rd item of step 14 (13 steps x 8 items before it), in the 3rd epoch (6 batches each)
    part = crops_run(tmp_path / "part.pt", RandomCrops(interrupt_at=8 * 13 + 3))
    assert part.interrupted and part.step == 13
    resumed = crops_run(tmp_path / "part.pt", RandomCrops())
    assert resumed.resumed_from == 13 and resumed.step == 20
    assert_same_weights(full, resumed)
    assert full.history["val"] == resumed.history["val"]


def test_killed_run_resumes_exactly_from_its_last_periodic_checkpoint(tmp_path):
    full = crops_run(tmp_path / "full.pt", RandomCrops())
    with pytest.raises(RuntimeError, match="died"):
        crops_run(tmp_path / "part.pt", RandomCrops(fail_at=8 * 17 + 5))  # in step 18; last checkpoint: step 15
    assert torch.load(tmp_path / "part.pt", weights_only=True)["step"] == 15
    resumed = crops_run(tmp_path / "part.pt", RandomCrops())
    assert resumed.resumed_from == 15 and resumed.step == 20
    assert_same_weights(full, resumed)


def test_grad_clip_bounds_the_update():
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False)
    w0 = model.weight.detach().clone()
    big = TensorDataset(torch.full((8, 4), 100.0), torch.zeros(8, 1))
    fit(model, nn.functional.mse_loss, big, steps=1, batch_size=8, grad_clip=1.0,
        optimizer=lambda p: torch.optim.SGD(p, lr=1.0), device="cpu", progress=False)
    assert torch.linalg.vector_norm(model.weight - w0).item() == pytest.approx(1.0, rel=1e-5)


def test_bad_arguments():
    model = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        fit(model, nn.functional.mse_loss, Noisy(), steps=0, progress=False)
    with pytest.raises(ValueError, match="fewer than batch_size=128"):
        fit(model, nn.functional.mse_loss, Noisy(), steps=1, batch_size=128, progress=False)
    with pytest.raises(TypeError, match="train_data must be a torch Dataset"):
        fit(model, nn.functional.mse_loss, 42, steps=1, progress=False)
    w0 = model.weight.detach().clone()
    with pytest.raises(TypeError, match="fit: val_data must be a torch Dataset"):  # before any training
        fit(model, nn.functional.mse_loss, Noisy(), 42, steps=5, progress=False)
    assert torch.equal(model.weight, w0)
    with pytest.raises(TypeError, match=r"evaluate: data \(fit's val_data\) must be a torch Dataset"):
        evaluate(model, 42)
    with pytest.raises(ValueError, match="must be a pair"):
        fit(model, nn.functional.mse_loss, TensorDataset(torch.zeros(16, 4)), steps=1, batch_size=8,
            progress=False)


def test_evaluate_averages_per_sample():
    model = nn.Identity()
    x = torch.arange(10.0).reshape(10, 1)
    out = evaluate(model, TensorDataset(x, torch.zeros(10, 1)), nn.functional.mse_loss,
                   {"abs": lambda p, t: (p - t).abs()[:, 0]}, batch_size=3, device="cpu")
    assert out["abs"] == pytest.approx(4.5)
    assert out["loss"] == pytest.approx(float((x ** 2).mean()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_on_cuda():
    res = fit(make_model(), nn.functional.mse_loss, Noisy(), steps=20, batch_size=8, device="cuda",
              progress=False)
    assert math.isfinite(res.history["train"][-1]["loss"])


def test_save_pretrained_int8_storage_round_trip(tmp_path):
    from course_lib.core.checkpoints import load_pretrained, save_pretrained

    torch.manual_seed(0)
    build = lambda **cfg: torch.nn.Sequential(torch.nn.Conv2d(cfg["c"], 64, 3), torch.nn.BatchNorm2d(64),
                                              torch.nn.Conv2d(64, 8, 1))  # noqa: E731
    model = build(c=16)
    path = save_pretrained(tmp_path / "q.pt", model, arch="toy", config={"c": 16}, int8=True)
    half = save_pretrained(tmp_path / "h.pt", model, arch="toy", config={"c": 16})
    assert path.stat().st_size < 0.7 * half.stat().st_size  # int8 is about half of float16
    back, sidecar = load_pretrained(path, build, arch="toy")
    assert "int8" in sidecar["dtype"]
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        if a.is_floating_point() and a.dim() >= 2 and a.numel() >= 4096:
            # per output channel the error is at most half a quantisation step, max|w| / 254
            step = a.reshape(a.shape[0], -1).abs().amax(1) / 127
            err = (a - b).reshape(a.shape[0], -1).abs().amax(1)
            assert torch.all(err <= step / 2 + 1e-7), name
        elif a.is_floating_point():
            assert torch.allclose(a, b, atol=1e-3, rtol=1e-3), name  # float16 storage
        else:
            assert torch.equal(a, b)


@pytest.mark.parametrize("int8", [False, True])
def test_as_stored_gives_exactly_the_weights_that_come_back_from_the_file(tmp_path, int8):
    from course_lib.core.checkpoints import as_stored, load_pretrained, save_pretrained

    torch.manual_seed(1)
    build = lambda **cfg: torch.nn.Sequential(torch.nn.Conv2d(cfg["c"], 64, 3), torch.nn.BatchNorm2d(64),
                                              torch.nn.Conv2d(64, 8, 1))  # noqa: E731
    model = build(c=16)
    model[1].running_mean.uniform_(-1, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = save_pretrained(tmp_path / "m.pt", model, arch="toy", config={"c": 16}, int8=int8)
    back, _ = load_pretrained(path, build, arch="toy")
    assert as_stored(model, int8=int8) is model
    changed = False
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name
        changed |= not torch.equal(a, before[name])
    assert changed  # the rounding did happen (float16 / int8), it is not a no-op
    with pytest.raises(TypeError, match="as_stored: model must be an nn.Module"):
        as_stored({"w": torch.zeros(1)})
